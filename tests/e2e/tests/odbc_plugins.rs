//! The ODBC plugins against real ERP-shaped databases: PostgreSQL through
//! psqlODBC and SQLite through sqliteodbc, compared with SQL aggregates that the
//! fixture crate computes over the same databases through native clients.

use ledgerlink_e2e::{erp_plugin, plugins_check, reader_password, settings_for};
use ledgerlink_fixtures::{Backend, Erp, Fixture, FixtureSpec};
use ledgerlink_host::plugins::{probe, LoadedPlugin, PluginSource};
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_plugin_api::canonical::{Decimal, DimensionRef, NaiveDate, RecordBatch, Voucher, VoucherLine};
use ledgerlink_plugin_api::{Entity, ErrorKind};
use serde_json::Value;

fn fixture(erp: Erp, backend: Backend) -> Fixture {
    Fixture::create(FixtureSpec::new(erp, backend)).unwrap_or_else(|e| {
        panic!("creating the {erp} fixture on {backend} failed: {e}. Run scripts/setup first.")
    })
}

fn open(erp: Erp, fixture: &Fixture) -> PluginSource {
    let path = erp_plugin(erp);
    probe(&ledgerlink_e2e::binary("ledgerlink"), &path).expect("the plugin passes the probe");
    let plugin = LoadedPlugin::load_vetted(&path).expect("plugin loads");
    plugin.open(&settings_for(erp, fixture, &reader_password())).expect("source opens")
}

fn decimal(value: &Value) -> Decimal {
    value.as_str().unwrap_or_else(|| panic!("{value} is not a decimal string")).parse().expect("decimal")
}

/// `plugins check` passes and its counts and trial balances equal the fixture's SQL.
fn check_matches_sql(erp: Erp, fixture: &Fixture) {
    let (output, report) = plugins_check(&erp_plugin(erp), &settings_for(erp, fixture, &reader_password()));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{erp}: {report:#}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["passed"], true);
    let companies = report["companies"].as_array().expect("companies");
    assert_eq!(companies.len(), fixture.companies().len(), "{erp}: company count");
    for info in fixture.companies() {
        let company = companies
            .iter()
            .find(|c| c["id"] == info.id.as_str())
            .unwrap_or_else(|| panic!("{erp}: company {}", info.id));
        assert_eq!(company["name"], info.name.as_str(), "{erp}: names with æøå survive");
        for &year in &info.years {
            let expected = fixture.expected(&info.id, year).expect("expected values");
            let got = company["years"]
                .as_array()
                .unwrap()
                .iter()
                .find(|y| y["year"] == year)
                .expect("year reported");
            for (entity, count) in &expected.counts {
                let reported = &got["counts"][entity.as_str()];
                let reported = reported.as_u64().unwrap_or(0);
                assert_eq!(reported, *count, "{erp} company {} {year}: {entity} count", info.id);
            }
            let tb = got["trial_balance"].as_object().expect("trial balance");
            assert_eq!(
                tb.len(),
                expected.trial_balance.accounts.len(),
                "{erp} {} {year}: accounts in TB",
                info.id
            );
            for (account, row) in &expected.trial_balance.accounts {
                let reported = &tb[account.as_str()];
                assert_eq!(
                    decimal(&reported["debit"]),
                    row.debit,
                    "{erp} {} {year} {account} debit",
                    info.id
                );
                assert_eq!(
                    decimal(&reported["credit"]),
                    row.credit,
                    "{erp} {} {year} {account} credit",
                    info.id
                );
            }
        }
    }
}

fn extract(source: &PluginSource, company: &str, entity: Entity, year: i32) -> Vec<RecordBatch> {
    source
        .extract(company, entity, year, CancelFlag::new())
        .expect("extract starts")
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("extract {entity}: {e}"))
}

fn lines(batches: Vec<RecordBatch>) -> Vec<VoucherLine> {
    batches
        .into_iter()
        .flat_map(|b| match b {
            RecordBatch::VoucherLines(l) => l,
            other => panic!("expected voucher lines, got {:?}", other.entity()),
        })
        .collect()
}

/// Names are trimmed, foreign-currency amounts kept, and change tokens behave.
fn records_and_change_tokens(erp: Erp, fixture: &mut Fixture) {
    let source = open(erp, fixture);
    let company = fixture.companies()[0].clone();
    for kind in [Entity::Customers, Entity::Suppliers] {
        for batch in extract(&source, &company.id, kind, 2025) {
            let names: Vec<String> = match batch {
                RecordBatch::Customers(p) | RecordBatch::Suppliers(p) => {
                    p.into_iter().map(|p| p.name).collect()
                }
                _ => unreachable!(),
            };
            assert!(!names.is_empty());
            for name in names {
                assert_eq!(name.trim(), name, "{erp}: CHAR padding is trimmed");
            }
        }
    }
    let year_lines = lines(extract(&source, &company.id, Entity::VoucherLines, 2025));
    let foreign: Vec<&VoucherLine> = year_lines.iter().filter(|l| l.currency.is_some()).collect();
    assert!(!foreign.is_empty(), "{erp}: the fixture has foreign-currency lines");
    for line in foreign {
        assert_ne!(line.currency.as_deref(), Some(company.currency.as_str()));
        let amount = line.amount_currency.expect("currency amount kept");
        assert!(!amount.is_zero() && amount.is_sign_negative() == line.amount.is_sign_negative(), "{line:?}");
    }

    let token_2025 = source.change_token(&company.id, 2025).unwrap();
    let token_2024 = source.change_token(&company.id, 2024).unwrap();
    assert_eq!(source.change_token(&company.id, 2025).unwrap(), token_2025, "{erp}: stable token");
    fixture.touch_one_line(&company.id, 2025).expect("update one line");
    assert_ne!(
        source.change_token(&company.id, 2025).unwrap(),
        token_2025,
        "{erp}: token changes after an update"
    );
    assert_eq!(
        source.change_token(&company.id, 2024).unwrap(),
        token_2024,
        "{erp}: the other year's token stays"
    );
}

fn vouchers(batches: Vec<RecordBatch>) -> Vec<Voucher> {
    batches
        .into_iter()
        .flat_map(|b| match b {
            RecordBatch::Vouchers(v) => v,
            other => panic!("expected vouchers, got {:?}", other.entity()),
        })
        .collect()
}

/// Visma Business folds voucher headers out of the line pass (the host extracts
/// lines first): the same vouchers as its `GROUP BY` query, without a second pass.
fn vouchers_fold_out_of_the_line_pass(fixture: &Fixture) {
    let source = open(Erp::VismaBusiness, fixture);
    let company = fixture.companies()[0].id.clone();
    let by_query = vouchers(extract(&source, &company, Entity::Vouchers, 2025));
    assert!(by_query.len() > 1, "the fixture has vouchers");
    let _ = extract(&source, &company, Entity::VoucherLines, 2025);
    // Only a query run after this sees the new texts.
    let renamed = "UPDATE AcTr SET Txt = 'renamed' WHERE AcYrPr BETWEEN 202500 AND 202599";
    fixture.query(&company, renamed).expect("rename the texts");
    let folded = vouchers(extract(&source, &company, Entity::Vouchers, 2025));
    assert_eq!(folded, by_query, "headers folded from the line pass equal the query's");
    let renamed_only = |v: &[Voucher]| v.iter().all(|v| v.description.as_deref() == Some("renamed"));
    let again = vouchers(extract(&source, &company, Entity::Vouchers, 2025));
    assert!(renamed_only(&again), "folded headers are used once; then the query runs");
    // A line pass that did not reach its end is never used.
    let mut partial =
        source.extract(&company, Entity::VoucherLines, 2025, CancelFlag::new()).expect("starts");
    assert!(partial.next().is_some());
    drop(partial);
    let after_partial = vouchers(extract(&source, &company, Entity::Vouchers, 2025));
    assert_eq!(after_partial.len(), by_query.len());
    assert!(renamed_only(&after_partial), "an unfinished line pass falls back to the query");
}

/// A sink for the host's log lines, to see what a plugin reported.
#[derive(Clone, Default)]
struct LogLines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogLines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every field of every Visma Business line of a year is its `AcTr` row's, read
/// here with plain SQL and mapped as docs/plugins/visma-business.md describes.
fn lines_are_their_transactions(fixture: &Fixture) {
    let company = fixture.companies()[0].clone();
    let got = lines(extract(&open(Erp::VismaBusiness, fixture), &company.id, Entity::VoucherLines, 2025));
    let dims: Vec<String> = (1..=12).map(|n| format!("t.R{n}")).collect();
    let sql = format!(
        "SELECT t.VoNo, t.JNo, t.EntNo, t.AcNo, t.VoDt, t.Txt, t.AcAm, c.ISO, t.CurAm, t.TxCd, t.Cust, t.Sup, {}
         FROM AcTr t LEFT JOIN Cur c ON c.CurNo = t.Cur
         WHERE t.AcYrPr BETWEEN 202500 AND 202599 ORDER BY t.VoNo, t.JNo, t.EntNo",
        dims.join(", ")
    );
    let rows = fixture.query(&company.id, &sql).expect("the year's transactions");
    assert_eq!(got.len(), rows.len(), "one line per transaction");
    let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let int =
        |v: &Option<String>| text(v).map(|s| s.trim_end_matches(".0").parse::<i64>().expect("a number"));
    let positive = |v: &Option<String>| int(v).filter(|&n| n > 0).map(|n| n.to_string());
    // SQLite keeps DECIMAL(19,2) as a float: its text may carry noise digits.
    let money = |v: &Option<String>| text(v).map(|a| a.parse::<Decimal>().expect("an amount").round_dp(2));
    let (mut voucher, mut line_no) = (None, 0);
    let mut with_dimensions = 0;
    for (index, (row, line)) in rows.iter().zip(&got).enumerate() {
        if voucher != int(&row[0]) {
            (voucher, line_no) = (int(&row[0]), 0);
        }
        line_no += 1;
        let day = int(&row[4]).expect("VoDt");
        let currency = text(&row[7]).filter(|c| *c != company.currency);
        let mut dimensions = Vec::new();
        for n in 1..=12 {
            let value = match n {
                1..=6 => int(&row[11 + n]).filter(|&v| v != 0).map(|v| v.to_string()),
                _ => text(&row[11 + n]).filter(|v| v != "0"),
            };
            if let Some(value) = value {
                dimensions.push(DimensionRef { dimension_type: format!("R{n}"), value });
            }
        }
        with_dimensions += usize::from(!dimensions.is_empty());
        let expected = VoucherLine {
            voucher_id: voucher.expect("VoNo").to_string(),
            line_no,
            account_id: int(&row[3]).expect("AcNo").to_string(),
            date: NaiveDate::from_ymd_opt(
                (day / 10_000) as i32,
                (day / 100 % 100) as u32,
                (day % 100) as u32,
            )
            .expect("a date"),
            description: text(&row[5]),
            amount: money(&row[6]).expect("AcAm"),
            amount_currency: currency.as_ref().and_then(|_| money(&row[8])),
            currency,
            tax_code: positive(&row[9]),
            tax_amount: None,
            dimensions,
            customer_id: positive(&row[10]),
            supplier_id: positive(&row[11]),
            source_key: format!("AcTr/JNo={}/EntNo={}", int(&row[1]).unwrap(), int(&row[2]).unwrap()),
        };
        assert_eq!(*line, expected, "line {index}");
    }
    assert!(with_dimensions > 0, "the fixture has lines with dimensions");
    assert!(got.iter().any(|l| l.currency.is_some()), "and lines in a foreign currency");
    assert!(got.iter().any(|l| l.customer_id.is_some()) && got.iter().any(|l| l.supplier_id.is_some()));
}

/// Visma Business reads a year's lines in lanes (voucher-number ranges over
/// parallel connections): the lines and the folded vouchers are exactly, in order,
/// what one connection reads.
fn lanes_read_what_one_connection_reads(fixture: &Fixture) {
    let source_with = |lanes: u64| {
        let mut settings = settings_for(Erp::VismaBusiness, fixture, &reader_password());
        settings["connection"]["lanes"] = lanes.into();
        settings["connection"]["lane_min_rows"] = 1.into();
        let plugin = LoadedPlugin::load_vetted(&erp_plugin(Erp::VismaBusiness)).expect("plugin loads");
        let source = plugin.open(&settings).expect("source opens");
        source.companies().expect("companies, and with them each year's voucher range");
        source
    };
    let company = fixture.companies()[0].id.clone();
    let one = source_with(1);
    let single_lines = lines(extract(&one, &company, Entity::VoucherLines, 2025));
    let single_vouchers = vouchers(extract(&one, &company, Entity::Vouchers, 2025));
    assert!(single_lines.len() > 100, "the fixture has enough lines for three lanes");

    let log = LogLines::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let three = source_with(3);
    let laned_lines = tracing::subscriber::with_default(subscriber, || {
        lines(extract(&three, &company, Entity::VoucherLines, 2025))
    });
    let logged = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    assert!(logged.contains("reading the lines of 2025 in 3 lanes"), "lanes were used: {logged}");
    assert_eq!(laned_lines.len(), single_lines.len());
    assert!(laned_lines == single_lines, "the same lines in the same order");
    let laned_vouchers = vouchers(extract(&three, &company, Entity::Vouchers, 2025));
    assert_eq!(laned_vouchers, single_vouchers, "the folded headers of all lanes, in order");

    // A bad row in the last lane (read on its own thread) fails the whole read.
    let undate = "UPDATE AcTr SET VoDt = 0 WHERE VoNo = \
                  (SELECT MAX(VoNo) FROM AcTr WHERE AcYrPr BETWEEN 202500 AND 202599)";
    fixture.query(&company, undate).expect("undate the last voucher");
    let read = three.extract(&company, Entity::VoucherLines, 2025, CancelFlag::new()).expect("starts");
    let error = read.collect::<Result<Vec<_>, _>>().expect_err("a lane's error is the read's error");
    assert_eq!(error.kind(), ErrorKind::DATA, "{error}");
    assert!(error.to_string().contains("AcTr.VoDt is 0"), "{error}");
}

macro_rules! erp_backend_test {
    ($name:ident, $erp:expr, $backend:expr) => {
        #[test]
        fn $name() {
            let mut fixture = fixture($erp, $backend);
            check_matches_sql($erp, &fixture);
            records_and_change_tokens($erp, &mut fixture);
        }
    };
}

#[test]
fn visma_business_on_postgres() {
    let mut fixture = fixture(Erp::VismaBusiness, Backend::Postgres);
    check_matches_sql(Erp::VismaBusiness, &fixture);
    records_and_change_tokens(Erp::VismaBusiness, &mut fixture);
    vouchers_fold_out_of_the_line_pass(&fixture);
    lines_are_their_transactions(&fixture);
    lanes_read_what_one_connection_reads(&fixture);
}

#[test]
fn visma_business_on_sqlite() {
    let mut fixture = fixture(Erp::VismaBusiness, Backend::Sqlite);
    check_matches_sql(Erp::VismaBusiness, &fixture);
    records_and_change_tokens(Erp::VismaBusiness, &mut fixture);
    vouchers_fold_out_of_the_line_pass(&fixture);
    lines_are_their_transactions(&fixture);
    lanes_read_what_one_connection_reads(&fixture);
}
erp_backend_test!(visma_global_on_postgres, Erp::VismaGlobal, Backend::Postgres);
erp_backend_test!(visma_global_on_sqlite, Erp::VismaGlobal, Backend::Sqlite);
erp_backend_test!(sap_b1_on_postgres, Erp::SapB1, Backend::Postgres);
erp_backend_test!(sap_b1_on_sqlite, Erp::SapB1, Backend::Sqlite);

#[test]
fn exact_amounts_of_trillions_survive_on_postgres() {
    let mut spec = FixtureSpec::new(Erp::VismaBusiness, Backend::Postgres);
    spec.huge_amounts = true;
    let fixture = Fixture::create(spec).expect("fixture");
    check_matches_sql(Erp::VismaBusiness, &fixture);
    let source = open(Erp::VismaBusiness, &fixture);
    let company = &fixture.companies()[0].id;
    let huge: Decimal = "9999999999999.99".parse().unwrap();
    assert!(lines(extract(&source, company, Entity::VoucherLines, 2025))
        .iter()
        .any(|l| l.amount.abs() == huge));
}

#[test]
fn wrong_password_is_an_authentication_error_that_never_shows_a_password() {
    let fixture = fixture(Erp::VismaBusiness, Backend::Postgres);
    let wrong = "Wrong-Password-77";
    for erp in Erp::ALL {
        let (output, report) = plugins_check(&erp_plugin(erp), &settings_for(erp, &fixture, wrong));
        assert_eq!(output.status.code(), Some(1), "{erp}: {report:#}");
        let message = report["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("[authentication]") && message.contains("password authentication failed"),
            "{message}"
        );
        assert!(!report["error"]["resolution"].as_str().unwrap().is_empty());
        let everything =
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(
            !everything.contains(wrong) && !everything.contains(&reader_password()),
            "{erp}: a password leaked"
        );
    }
}

#[test]
fn a_database_of_another_erp_is_refused_naming_the_missing_table() {
    let sap = fixture(Erp::SapB1, Backend::Sqlite);
    let (output, report) =
        plugins_check(&erp_plugin(Erp::VismaBusiness), &settings_for(Erp::VismaBusiness, &sap, ""));
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("table `Frm` does not exist") && message.contains("Visma Business"),
        "{message}"
    );

    let vb = fixture(Erp::VismaBusiness, Backend::Postgres);
    let (_, report) =
        plugins_check(&erp_plugin(Erp::SapB1), &settings_for(Erp::SapB1, &vb, &reader_password()));
    let message = report["error"]["message"].as_str().unwrap();
    assert!(message.contains("table `SRGC` does not exist"), "{message}");
}

#[test]
fn the_database_going_away_mid_extraction_is_an_error_never_a_short_success() {
    // 10 000 lines per company and year: 20 fetches of 500 rows.
    let mut spec = FixtureSpec::new(Erp::VismaBusiness, Backend::Postgres);
    spec.voucher_lines = 40_000;
    let fixture = Fixture::create(spec).expect("fixture");
    let source = open(Erp::VismaBusiness, &fixture);
    let company = &fixture.companies()[0].id;
    let mut batches = source.extract(company, Entity::VoucherLines, 2025, CancelFlag::new()).unwrap();
    assert!(batches.next().expect("a first batch").is_ok());
    assert!(fixture.terminate_reader_connections().expect("terminate") >= 1);
    let rest: Vec<_> = batches.collect();
    let error =
        rest.last().expect("the stream ends with an error").as_ref().expect_err("an error, not the end");
    assert_eq!(error.kind(), ErrorKind::CONNECTION, "{error}");
    assert!(!error.to_string().contains(&reader_password()));
}
