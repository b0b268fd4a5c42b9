//! What the host and the hub spend per voucher line besides I/O and compression:
//! decoding a batch as borrowed lines, validating them against the master data,
//! adding them to a trial balance, and (the hub) checking that every voucher's
//! lines are one run. Prints one row per step, in CPU-seconds
//! per million lines (median of `BENCH_ROUNDS`, default 5; `BENCH_LINES` lines,
//! default 1 000 000, in batches of 10 000 as the plugins send them).
//!
//! `cargo bench -p ledgerlink-plugin-api --bench validate_lines`

use ledgerlink_plugin_api::canonical::{
    decode_borrowed_voucher_lines, encode_batch, Account, BorrowedVoucherLine, Customer, Decimal,
    DimensionRef, DimensionType, NaiveDate, RunOrder, SnapshotValidator, StretchRuns, Supplier, TaxCode,
    TrialBalance, VoucherLine,
};
use ledgerlink_plugin_api::RecordBatch;
use std::hint::black_box;
use std::time::{Duration, Instant};

const BATCH_LINES: usize = 10_000;
const ACCOUNTS: u64 = 400;
const PARTIES: u64 = 2_000;
const TAX_CODES: u64 = 12;

fn main() {
    // Whole vouchers only, so that every one balances.
    let lines: usize = env_number("BENCH_LINES", 1_000_000) / 3 * 3;
    let rounds: usize = env_number("BENCH_ROUNDS", 5);
    let master = master_data();
    let batches: Vec<Vec<u8>> = (0..lines)
        .step_by(BATCH_LINES)
        .map(|first| {
            let batch = (first..(first + BATCH_LINES).min(lines)).map(line).collect();
            encode_batch(&RecordBatch::VoucherLines(batch))
        })
        .collect();
    let decoded: Vec<Vec<BorrowedVoucherLine<'_>>> =
        batches.iter().map(|b| decode_borrowed_voucher_lines(b).unwrap().expect("voucher lines")).collect();

    let decode = median(rounds, || {
        for bytes in &batches {
            black_box(decode_borrowed_voucher_lines(bytes).unwrap());
        }
    });
    let validate = median(rounds, || {
        let mut validator = SnapshotValidator::new(100);
        master.iter().for_each(|batch| validator.observe(batch));
        decoded.iter().flatten().for_each(|line| validator.observe_borrowed_line(line));
        let report = validator.finish();
        assert_eq!(report.total_problems, 0, "{:?}", report.problems.first());
    });
    let balance = median(rounds, || {
        let mut trial_balance = TrialBalance::default();
        decoded.iter().flatten().for_each(|line| trial_balance.add_amount(&line.account_id, line.amount));
        assert_eq!(trial_balance.accounts.len() as u64, ACCOUNTS);
    });

    let runs = median(rounds, || {
        let mut stretch = StretchRuns::default();
        decoded.iter().flatten().for_each(|line| stretch.observe(&line.voucher_id));
        let mut order = RunOrder::default();
        order.absorb(stretch);
        assert!(!order.may_repeat());
    });

    let per_million = |d: Duration| d.as_secs_f64() * 1e6 / lines as f64;
    println!("{lines} voucher lines in batches of {BATCH_LINES}, median of {rounds} rounds\n");
    println!("| step | s per M lines | lines/s |");
    println!("|---|---:|---:|");
    let steps = [
        ("decode (borrowed)", decode),
        ("validate", validate),
        ("trial balance", balance),
        ("voucher runs (hub)", runs),
    ];
    for (step, took) in steps {
        println!("| {step} | {:.3} | {:.0} |", per_million(took), lines as f64 / took.as_secs_f64());
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

fn median(rounds: usize, mut step: impl FnMut()) -> Duration {
    let mut took: Vec<Duration> = (0..rounds.max(1))
        .map(|_| {
            let start = Instant::now();
            step();
            start.elapsed()
        })
        .collect();
    took.sort();
    took[took.len() / 2]
}

/// Master data the generated lines refer to, as a plugin would send it.
fn master_data() -> Vec<RecordBatch> {
    let party = |kind: &str, id: u64| Customer {
        id: id.to_string(),
        name: format!("{kind} {id}"),
        organisation_number: None,
        street: None,
        postal_code: None,
        city: None,
        country: Some("NO".into()),
        email: None,
        phone: None,
        currency: None,
        source_key: format!("Actor:{id}"),
    };
    vec![
        RecordBatch::Accounts(
            (0..ACCOUNTS)
                .map(|n| Account {
                    id: account_id(n),
                    name: format!("Konto {n}"),
                    grouping_category: None,
                    grouping_code: None,
                    standard_account: None,
                    default_tax_code: None,
                    source_key: format!("Ac:{n}"),
                })
                .collect(),
        ),
        RecordBatch::Customers((0..PARTIES).map(|n| party("Kunde", 10_000 + n)).collect()),
        RecordBatch::Suppliers(
            (0..PARTIES).map(|n| -> Supplier { party("Leverandør", 50_000 + n) }).collect(),
        ),
        RecordBatch::TaxCodes(
            (0..TAX_CODES)
                .map(|n| TaxCode {
                    id: n.to_string(),
                    description: format!("MVA {n}"),
                    rate: Some(Decimal::new(25, 0)),
                    standard_tax_code: None,
                    source_key: format!("TaxCd:{n}"),
                })
                .collect(),
        ),
        RecordBatch::DimensionTypes(
            ["R1", "R2"]
                .iter()
                .map(|id| DimensionType {
                    id: (*id).into(),
                    name: format!("Dimensjon {id}"),
                    source_key: id.to_string(),
                })
                .collect(),
        ),
    ]
}

fn account_id(n: u64) -> String {
    (1000 + n * 20).to_string()
}

/// The n-th line: vouchers of three lines that balance, Visma Business-shaped.
fn line(n: usize) -> VoucherLine {
    let (voucher, position) = (n / 3, n % 3);
    let cents = (voucher % 100_000) as i64 * 7 + 100;
    let amount = match position {
        0 => Decimal::new(cents * 2, 2),
        _ => Decimal::new(-cents, 2),
    };
    let party = (voucher as u64 * 7919) % PARTIES;
    VoucherLine {
        voucher_id: (10_000 + voucher).to_string(),
        line_no: position as u32 + 1,
        account_id: account_id((n as u64 * 31) % ACCOUNTS),
        date: NaiveDate::from_ymd_opt(2025, 1 + (voucher % 12) as u32, 1 + (voucher % 28) as u32).unwrap(),
        description: Some(format!("Faktura {voucher}")),
        amount,
        currency: Some("NOK".into()),
        amount_currency: Some(amount),
        tax_code: Some(((n as u64) % TAX_CODES).to_string()),
        tax_amount: None,
        dimensions: vec![
            DimensionRef { dimension_type: "R1".into(), value: (voucher % 40).to_string() },
            DimensionRef { dimension_type: "R2".into(), value: (voucher % 7).to_string() },
        ],
        customer_id: (position == 1).then(|| (10_000 + party).to_string()),
        supplier_id: (position == 2).then(|| (50_000 + party).to_string()),
        source_key: format!("AcTr:{}:{}", 100 + voucher / 500, n % 1500),
    }
}
