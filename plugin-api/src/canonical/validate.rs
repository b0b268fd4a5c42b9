//! Validation of canonical records: required fields, ISO codes, references, balance.

use super::{is_iso4217, BorrowedVoucherLine, Company, Entity, RecordBatch};
use foldhash::HashSet;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One thing wrong with one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Entity of the record.
    pub entity: String,
    /// The record's `source_key`, so a person can find the ERP row.
    pub source_key: String,
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}] {}: {}", self.entity, self.source_key, self.field, self.message)
    }
}

/// The outcome of validating one company and fiscal year.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// The first problems found (at most the validator's limit).
    pub problems: Vec<Problem>,
    /// How many problems were found in all.
    pub total_problems: u64,
}

impl ValidationReport {
    /// True when nothing was wrong.
    pub fn is_valid(&self) -> bool {
        self.total_problems == 0
    }

    /// Adds another check's findings after these, keeping at most `max_problems`.
    pub fn append(&mut self, other: ValidationReport, max_problems: usize) {
        self.total_problems += other.total_problems;
        let room = max_problems.saturating_sub(self.problems.len());
        self.problems.extend(other.problems.into_iter().take(room));
    }
}

/// Checks a company record on its own.
pub fn validate_company(company: &Company) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut push = |field: &str, message: String| {
        problems.push(Problem {
            entity: "company".into(),
            source_key: company.source_key.clone(),
            field: field.into(),
            message,
        })
    };
    if company.id.trim().is_empty() {
        push("id", "is empty".into());
    }
    if company.name.trim().is_empty() {
        push("name", "is empty".into());
    }
    if !is_iso4217(&company.currency) {
        push("currency", format!("`{}` is not an ISO 4217 currency code", company.currency));
    }
    for year in &company.fiscal_years {
        if year.start > year.end {
            push(
                "fiscal_years",
                format!("year {} starts {} after it ends {}", year.year, year.start, year.end),
            );
        }
    }
    problems
}

/// Streaming validator for the records of one company and fiscal year.
///
/// Feed batches in [`Entity::ALL`] order. References are checked against the
/// master data seen so far (only for entities that were fed at all); vouchers are
/// checked to balance, which requires each voucher's lines to be contiguous.
/// Memory stays bounded by the master data, not by the number of lines.
///
/// Voucher lines may also be checked in stretches on several threads: each
/// stretch by a [`LineChecker`] from [`Self::line_checker`], whose findings
/// [`Self::absorb`] adds in the stretches' order. The report is then exactly
/// the one observing every line here would give.
#[derive(Debug)]
pub struct SnapshotValidator {
    findings: Findings,
    master: MasterData,
    balances: Balances,
}

/// The problems found so far: the first `max_problems` kept, all counted.
#[derive(Debug)]
struct Findings {
    max_problems: usize,
    report: ValidationReport,
}

/// The master data seen so far, which voucher lines refer to.
#[derive(Debug, Default)]
struct MasterData {
    seen: EntitySet,
    accounts: HashSet<String>,
    customers: HashSet<String>,
    suppliers: HashSet<String>,
    dimension_types: HashSet<String>,
    tax_codes: HashSet<String>,
}

/// A set of entities, checked for every reference of every line: one bit each.
#[derive(Debug, Default, Clone, Copy)]
struct EntitySet(u32);

const _: () = assert!(Entity::ALL.len() <= 32, "an EntitySet has 32 bits");

impl EntitySet {
    fn insert(&mut self, entity: Entity) {
        self.0 |= 1 << entity as u32;
    }

    fn contains(&self, entity: &Entity) -> bool {
        self.0 & (1 << *entity as u32) != 0
    }
}

/// The sums of the voucher being read. A [`LineChecker`] also sets its stretch's
/// first voucher aside instead of judging it, as its first lines may be in the
/// stretch before.
#[derive(Debug, Default)]
struct Balances {
    open: Option<OpenVoucher>,
    /// Set aside rather than judged when the second voucher starts (line checkers only).
    defer_first: bool,
    /// Problems kept when the first line's fields had been checked (read by
    /// [`SnapshotValidator::absorb`]; also `None` when a checker saw no line).
    at_first_line: Option<usize>,
    /// The first voucher, set aside, and the problems kept when it ended.
    first: Option<(OpenVoucher, usize)>,
}

/// The fields of a voucher line the validator reads, from either form of line.
struct LineFields<'a> {
    voucher_id: &'a str,
    account_id: &'a str,
    customer_id: Option<&'a str>,
    supplier_id: Option<&'a str>,
    tax_code: Option<&'a str>,
    currency: Option<&'a str>,
    amount: Decimal,
    amount_currency: Option<Decimal>,
    source_key: &'a str,
}

/// [`LineFields`] of a [`VoucherLine`](super::VoucherLine) or a [`BorrowedVoucherLine`]: their fields
/// have the same names and both dereference to `str`.
macro_rules! line_fields {
    ($line:expr) => {{
        let line = $line;
        LineFields {
            voucher_id: &line.voucher_id,
            account_id: &line.account_id,
            customer_id: line.customer_id.as_deref(),
            supplier_id: line.supplier_id.as_deref(),
            tax_code: line.tax_code.as_deref(),
            currency: line.currency.as_deref(),
            amount: line.amount,
            amount_currency: line.amount_currency,
            source_key: &line.source_key,
        }
    }};
}

#[derive(Debug)]
struct OpenVoucher {
    id: String,
    first_source_key: String,
    sum: Decimal,
}

impl Default for SnapshotValidator {
    fn default() -> Self {
        Self::new(100)
    }
}

impl Findings {
    fn new(max_problems: usize) -> Self {
        Self { max_problems, report: ValidationReport::default() }
    }

    fn problem(&mut self, entity: Entity, source_key: &str, field: &str, message: String) {
        self.report.total_problems += 1;
        self.keep(|| Problem {
            entity: entity.as_str().into(),
            source_key: source_key.into(),
            field: field.into(),
            message,
        });
    }

    /// Keeps a problem already counted, while there is room.
    fn keep(&mut self, problem: impl FnOnce() -> Problem) {
        if self.report.problems.len() < self.max_problems {
            self.report.problems.push(problem());
        }
    }

    /// Adds a master record's id to its set; a problem when it is there already.
    fn unique(&mut self, ids: &mut HashSet<String>, entity: Entity, source_key: &str, what: &str, id: &str) {
        if !ids.insert(id.to_owned()) {
            self.problem(entity, source_key, "id", format!("{what} `{id}` appears twice"));
        }
    }

    fn require(&mut self, entity: Entity, source_key: &str, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.problem(entity, source_key, field, "is empty".into());
        }
    }

    fn check_currency(&mut self, entity: Entity, source_key: &str, field: &str, code: Option<&str>) {
        if let Some(code) = code {
            if !is_iso4217(code) {
                self.problem(entity, source_key, field, format!("`{code}` is not an ISO 4217 currency code"));
            }
        }
    }

    /// Judges a voucher whose lines all have been read.
    fn close(&mut self, voucher: OpenVoucher) {
        if !voucher.sum.is_zero() {
            let msg = format!(
                "voucher `{}` does not balance: its lines sum to {} (a voucher's lines must sum to zero and be emitted together)",
                voucher.id, voucher.sum
            );
            self.problem(Entity::VoucherLines, &voucher.first_source_key, "amount", msg);
        }
    }
}

impl MasterData {
    fn check_reference(
        &self,
        findings: &mut Findings,
        source_key: &str,
        field: &str,
        target: Entity,
        id: Option<&str>,
    ) {
        let Some(id) = id else { return };
        if !self.seen.contains(&target) {
            return;
        }
        let known = match target {
            Entity::Accounts => &self.accounts,
            Entity::Customers => &self.customers,
            Entity::Suppliers => &self.suppliers,
            Entity::DimensionTypes => &self.dimension_types,
            Entity::TaxCodes => &self.tax_codes,
            _ => return,
        };
        if !known.contains(id) {
            let what = target.as_str().trim_end_matches('s').replace('_', " ");
            findings.problem(
                Entity::VoucherLines,
                source_key,
                field,
                format!("{what} `{id}` does not exist"),
            );
        }
    }

    /// Checks one voucher line's fields and adds its amount to its voucher.
    fn check_line<'a>(
        &self,
        findings: &mut Findings,
        balances: &mut Balances,
        line: LineFields<'a>,
        dimension_types: impl Iterator<Item = &'a str>,
    ) {
        let entity = Entity::VoucherLines;
        let key = line.source_key;
        findings.require(entity, key, "source_key", key);
        findings.require(entity, key, "voucher_id", line.voucher_id);
        findings.require(entity, key, "account_id", line.account_id);
        self.check_reference(findings, key, "account_id", Entity::Accounts, Some(line.account_id));
        self.check_reference(findings, key, "customer_id", Entity::Customers, line.customer_id);
        self.check_reference(findings, key, "supplier_id", Entity::Suppliers, line.supplier_id);
        self.check_reference(findings, key, "tax_code", Entity::TaxCodes, line.tax_code);
        for dimension_type in dimension_types {
            self.check_reference(findings, key, "dimensions", Entity::DimensionTypes, Some(dimension_type));
        }
        findings.check_currency(entity, key, "currency", line.currency);
        if line.currency.is_some() && line.amount_currency.is_none() {
            let msg = "is missing while `currency` is set".into();
            findings.problem(entity, key, "amount_currency", msg);
        }
        balances.add(findings, line.voucher_id, key, line.amount);
    }
}

impl Balances {
    fn add(&mut self, findings: &mut Findings, voucher_id: &str, source_key: &str, amount: Decimal) {
        match &mut self.open {
            Some(open) if open.id == voucher_id => open.sum += amount,
            open => {
                match open.take() {
                    Some(ended) if self.defer_first && self.first.is_none() => {
                        self.first = Some((ended, findings.report.problems.len()));
                    }
                    Some(ended) => findings.close(ended),
                    None => self.at_first_line = Some(findings.report.problems.len()),
                }
                self.open = Some(OpenVoucher {
                    id: voucher_id.to_owned(),
                    first_source_key: source_key.to_owned(),
                    sum: amount,
                });
            }
        }
    }
}

/// Checks one stretch of voucher lines against a [`SnapshotValidator`]'s master
/// data, independently of the other stretches (one per thread).
#[derive(Debug)]
pub struct LineChecker<'m> {
    master: &'m MasterData,
    findings: Findings,
    balances: Balances,
}

/// What a [`LineChecker`] found, for [`SnapshotValidator::absorb`].
#[derive(Debug)]
pub struct CheckedLines {
    findings: Findings,
    balances: Balances,
}

impl LineChecker<'_> {
    /// Checks the next line of the stretch.
    pub fn observe_borrowed_line(&mut self, line: &BorrowedVoucherLine<'_>) {
        let dimension_types = line.dimensions.iter().map(|d| &*d.dimension_type);
        self.master.check_line(&mut self.findings, &mut self.balances, line_fields!(line), dimension_types);
    }

    /// Ends the stretch.
    pub fn finish(self) -> CheckedLines {
        CheckedLines { findings: self.findings, balances: self.balances }
    }
}

impl SnapshotValidator {
    /// A validator that keeps the first `max_problems` problems (and counts all).
    pub fn new(max_problems: usize) -> Self {
        Self {
            findings: Findings::new(max_problems),
            master: MasterData::default(),
            balances: Balances::default(),
        }
    }

    /// Validates one batch.
    pub fn observe(&mut self, batch: &RecordBatch) {
        let entity = batch.entity();
        let (master, findings) = (&mut self.master, &mut self.findings);
        master.seen.insert(entity);
        match batch {
            RecordBatch::Accounts(rows) => {
                for r in rows {
                    findings.require(entity, &r.source_key, "id", &r.id);
                    findings.require(entity, &r.source_key, "name", &r.name);
                    findings.unique(&mut master.accounts, entity, &r.source_key, "account", &r.id);
                }
            }
            RecordBatch::Customers(rows) | RecordBatch::Suppliers(rows) => {
                for r in rows {
                    findings.require(entity, &r.source_key, "id", &r.id);
                    findings.require(entity, &r.source_key, "name", &r.name);
                    findings.check_currency(entity, &r.source_key, "currency", r.currency.as_deref());
                    let set = if entity == Entity::Customers {
                        &mut master.customers
                    } else {
                        &mut master.suppliers
                    };
                    let what = if entity == Entity::Customers { "customer" } else { "supplier" };
                    findings.unique(set, entity, &r.source_key, what, &r.id);
                }
            }
            RecordBatch::DimensionTypes(rows) => {
                for r in rows {
                    findings.require(entity, &r.source_key, "id", &r.id);
                    findings.require(entity, &r.source_key, "name", &r.name);
                    findings.unique(
                        &mut master.dimension_types,
                        entity,
                        &r.source_key,
                        "dimension type",
                        &r.id,
                    );
                }
            }
            RecordBatch::DimensionValues(rows) => {
                for r in rows {
                    findings.require(entity, &r.source_key, "id", &r.id);
                    if master.seen.contains(&Entity::DimensionTypes)
                        && !master.dimension_types.contains(&r.dimension_type)
                    {
                        let msg = format!("dimension type `{}` does not exist", r.dimension_type);
                        findings.problem(entity, &r.source_key, "dimension_type", msg);
                    }
                }
            }
            RecordBatch::TaxCodes(rows) => {
                for r in rows {
                    findings.require(entity, &r.source_key, "id", &r.id);
                    findings.unique(&mut master.tax_codes, entity, &r.source_key, "tax code", &r.id);
                }
            }
            RecordBatch::Vouchers(rows) => {
                for r in rows {
                    findings.require(entity, &r.source_key, "id", &r.id);
                    if let Some(p) = r.period {
                        if p == 0 {
                            findings.problem(
                                entity,
                                &r.source_key,
                                "period",
                                "period numbers start at 1".into(),
                            );
                        }
                    }
                }
            }
            RecordBatch::VoucherLines(rows) => {
                for line in rows {
                    let dimension_types = line.dimensions.iter().map(|d| d.dimension_type.as_str());
                    master.check_line(findings, &mut self.balances, line_fields!(line), dimension_types);
                }
            }
        }
    }

    /// Validates one voucher line read without allocating (what [`Self::observe`]
    /// does for each line of a voucher-line batch).
    pub fn observe_borrowed_line(&mut self, line: &BorrowedVoucherLine<'_>) {
        self.master.seen.insert(Entity::VoucherLines);
        let dimension_types = line.dimensions.iter().map(|d| &*d.dimension_type);
        self.master.check_line(&mut self.findings, &mut self.balances, line_fields!(line), dimension_types);
    }

    /// A checker of one stretch of voucher lines against the master data observed
    /// so far; give its findings to [`Self::absorb`] in the order of the stretches.
    pub fn line_checker(&self) -> LineChecker<'_> {
        LineChecker {
            master: &self.master,
            findings: Findings::new(self.findings.max_problems),
            balances: Balances { defer_first: true, ..Balances::default() },
        }
    }

    /// Adds a stretch's findings as if its lines had been observed here, in order.
    pub fn absorb(&mut self, checked: CheckedLines) {
        let CheckedLines { findings, balances } = checked;
        let Some(at_first_line) = balances.at_first_line else { return };
        self.master.seen.insert(Entity::VoucherLines);
        self.findings.report.total_problems += findings.report.total_problems;
        // The offsets below index the checker's kept problems, which stop at the
        // same cap as ours: any it dropped come after `max_problems` of its own,
        // so this validator would have dropped them too.
        let mut problems = findings.report.problems.into_iter();
        let mut keep = |own: &mut Findings, until: Option<usize>, taken: &mut usize| {
            for problem in problems.by_ref().take(until.map_or(usize::MAX, |u| u - *taken)) {
                *taken += 1;
                own.keep(|| problem);
            }
        };
        let mut taken = 0;
        keep(&mut self.findings, Some(at_first_line), &mut taken);
        // The stretch's first voucher continues the open one, or ends it.
        let Balances { open: last, first, .. } = balances;
        let (first, rest) = match first {
            Some((first, ended_at)) => (first, Some((ended_at, last))),
            None => (last.expect("a stretch with lines has an open voucher"), None),
        };
        match &mut self.balances.open {
            Some(open) if open.id == first.id => open.sum += first.sum,
            open => {
                if let Some(ended) = open.take() {
                    self.findings.close(ended);
                }
                *open = Some(first);
            }
        }
        // When the stretch went on to other vouchers, its first ended there.
        if let Some((ended_at, last)) = rest {
            keep(&mut self.findings, Some(ended_at), &mut taken);
            if let Some(ended) = self.balances.open.take() {
                self.findings.close(ended);
            }
            self.balances.open = last;
        }
        keep(&mut self.findings, None, &mut taken);
    }

    /// Ends validation and returns the report.
    pub fn finish(mut self) -> ValidationReport {
        if let Some(open) = self.balances.open.take() {
            self.findings.close(open);
        }
        self.findings.report
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;
    use std::str::FromStr;

    fn account(id: &str) -> Account {
        Account {
            id: id.into(),
            name: format!("Konto {id}"),
            grouping_category: None,
            grouping_code: None,
            standard_account: None,
            default_tax_code: None,
            source_key: format!("Ac:{id}"),
        }
    }

    fn line(voucher: &str, account: &str, amount: &str) -> VoucherLine {
        VoucherLine {
            voucher_id: voucher.into(),
            line_no: 1,
            account_id: account.into(),
            date: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
            description: None,
            amount: Decimal::from_str(amount).unwrap(),
            currency: None,
            amount_currency: None,
            tax_code: None,
            tax_amount: None,
            dimensions: vec![],
            customer_id: None,
            supplier_id: None,
            source_key: format!("AcTr:{voucher}:{account}"),
        }
    }

    #[test]
    fn borrowed_lines_get_the_same_report_as_owned_lines() {
        let mut lines = vec![line("1", "1920", "100.00"), line("1", "3000", "-100.00")];
        let mut stranger = line("2", "9999", "5.00");
        stranger.currency = Some("KR".into());
        stranger.customer_id = Some("404".into());
        stranger.dimensions = vec![DimensionRef { dimension_type: "R9".into(), value: "1".into() }];
        lines.push(stranger);
        lines.push(line("2", "1920", "-4.99"));
        let mut empty = line("3", "1920", "0");
        empty.voucher_id = " ".into();
        lines.push(empty);
        let master = |v: &mut SnapshotValidator| {
            v.observe(&RecordBatch::Accounts(vec![account("1920"), account("3000")]));
            v.observe(&RecordBatch::Customers(vec![]));
            v.observe(&RecordBatch::DimensionTypes(vec![]));
        };

        let mut owned = SnapshotValidator::default();
        master(&mut owned);
        owned.observe(&RecordBatch::VoucherLines(lines.clone()));
        let owned = owned.finish();

        let json: Vec<String> = lines.iter().map(|l| serde_json::to_string(l).unwrap()).collect();
        let mut borrowed = SnapshotValidator::default();
        master(&mut borrowed);
        for text in &json {
            borrowed.observe_borrowed_line(&serde_json::from_str(text).unwrap());
        }
        let borrowed = borrowed.finish();

        assert_eq!(owned.total_problems, 7, "{:#?}", owned.problems);
        assert_eq!(borrowed, owned);
    }

    /// Lines with every kind of problem, vouchers of one to three lines, one voucher
    /// id appearing twice apart, and lines that need their voucher's earlier lines.
    fn troubled_lines() -> Vec<VoucherLine> {
        let mut lines = vec![
            line("1", "1920", "100.00"),
            line("1", "3000", "-100.00"),
            line("2", "1920", "10"),
            line("2", "9999", "-5"),
            line("2", "3000", "-4"),
            line("3", "8888", "7"),
            line("2", "1920", "1"),
            line("2", "3000", "-1"),
            line("4", "1920", "2.50"),
            line("4", "3000", "-2.50"),
            line("5", "3000", "-3"),
        ];
        lines[8].currency = Some("KR".into());
        lines[9].voucher_id = " ".into();
        lines.push(line("5", "1920", "3"));
        lines.push(line("6", "1920", "0.01"));
        lines
    }

    fn master(v: &mut SnapshotValidator) {
        v.observe(&RecordBatch::Accounts(vec![account("1920"), account("3000")]));
    }

    fn borrowed(lines: &[VoucherLine]) -> Vec<u8> {
        encode_batch(&RecordBatch::VoucherLines(lines.to_vec()))
    }

    #[test]
    fn lines_checked_in_stretches_give_exactly_the_report_of_one_pass() {
        let lines = troubled_lines();
        let encoded = borrowed(&lines);
        let decoded = decode_borrowed_voucher_lines(&encoded).unwrap().unwrap();
        for max_problems in [2, 5, 100] {
            let mut whole = SnapshotValidator::new(max_problems);
            master(&mut whole);
            decoded.iter().for_each(|l| whole.observe_borrowed_line(l));
            let expected = whole.finish();
            assert!(expected.total_problems >= 7, "{expected:#?}");
            // Every way to cut the lines into two and into three stretches (empty ones included).
            for a in 0..=lines.len() {
                for b in a..=lines.len() {
                    let mut split = SnapshotValidator::new(max_problems);
                    master(&mut split);
                    let stretches = [&decoded[..a], &decoded[a..b], &decoded[b..]];
                    let checked: Vec<CheckedLines> = stretches
                        .iter()
                        .map(|stretch| {
                            let mut checker = split.line_checker();
                            stretch.iter().for_each(|l| checker.observe_borrowed_line(l));
                            checker.finish()
                        })
                        .collect();
                    checked.into_iter().for_each(|c| split.absorb(c));
                    assert_eq!(split.finish(), expected, "cut at {a} and {b}, at most {max_problems} kept");
                }
            }
        }
    }

    #[test]
    fn balanced_vouchers_with_known_accounts_pass() {
        let mut v = SnapshotValidator::default();
        v.observe(&RecordBatch::Accounts(vec![account("1920"), account("3000")]));
        v.observe(&RecordBatch::VoucherLines(vec![
            line("1", "1920", "100.00"),
            line("1", "3000", "-100.00"),
        ]));
        v.observe(&RecordBatch::VoucherLines(vec![line("2", "1920", "0.01"), line("2", "3000", "-0.01")]));
        let report = v.finish();
        assert!(report.is_valid(), "{:?}", report.problems);
    }

    #[test]
    fn unbalanced_voucher_is_reported_with_its_source_key_and_sum() {
        let mut v = SnapshotValidator::default();
        v.observe(&RecordBatch::VoucherLines(vec![line("7", "1920", "100.00"), line("7", "3000", "-99.99")]));
        let report = v.finish();
        assert_eq!(report.total_problems, 1);
        let p = &report.problems[0];
        assert_eq!((p.field.as_str(), p.source_key.as_str()), ("amount", "AcTr:7:1920"));
        assert!(p.message.contains("sum to 0.01"), "{}", p.message);
    }

    #[test]
    fn an_empty_source_key_is_named_and_mills_are_exact_money() {
        let mut v = SnapshotValidator::default();
        v.observe(&RecordBatch::Accounts(vec![account("1920"), account("3000")]));
        let mut unkeyed = line("3", "1920", "1.00");
        unkeyed.source_key = " ".into();
        v.observe(&RecordBatch::VoucherLines(vec![
            // Some ERPs keep mills (SAP Business One's amount decimals go to 6).
            line("2", "1920", "12500.004"),
            line("2", "3000", "-12500.004"),
            unkeyed,
            line("3", "3000", "-1"),
        ]));
        let report = v.finish();
        let fields: Vec<(&str, &str)> =
            report.problems.iter().map(|p| (p.field.as_str(), p.source_key.as_str())).collect();
        assert_eq!(fields, [("source_key", " ")], "{:?}", report.problems);
    }

    #[test]
    fn master_records_that_appear_twice_are_named() {
        let party = |id: &str| Customer {
            id: id.into(),
            name: format!("Kunde {id}"),
            organisation_number: None,
            street: None,
            postal_code: None,
            city: None,
            country: None,
            email: None,
            phone: None,
            currency: None,
            source_key: format!("Actor:{id}"),
        };
        let tax = |id: &str| TaxCode {
            id: id.into(),
            description: "MVA".into(),
            rate: None,
            standard_tax_code: None,
            source_key: format!("TaxCd:{id}"),
        };
        let mut v = SnapshotValidator::default();
        v.observe(&RecordBatch::Customers(vec![party("10"), party("11"), party("10")]));
        v.observe(&RecordBatch::Suppliers(vec![party("10")]));
        v.observe(&RecordBatch::TaxCodes(vec![tax("3"), tax("3")]));
        let messages: Vec<String> = v.finish().problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(messages.len(), 2, "a supplier may share a customer's id: {messages:?}");
        assert!(messages[0].contains("customer `10` appears twice"), "{messages:?}");
        assert!(messages[1].contains("tax code `3` appears twice"), "{messages:?}");
    }

    #[test]
    fn voucher_spanning_batches_is_summed_as_one() {
        let mut v = SnapshotValidator::default();
        v.observe(&RecordBatch::VoucherLines(vec![line("1", "1920", "5")]));
        v.observe(&RecordBatch::VoucherLines(vec![line("1", "3000", "-5")]));
        assert!(v.finish().is_valid());
    }

    #[test]
    fn unknown_account_and_bad_currency_are_reported() {
        let mut v = SnapshotValidator::default();
        v.observe(&RecordBatch::Accounts(vec![account("1920")]));
        let mut bad = line("1", "9999", "0");
        bad.currency = Some("KR".into());
        v.observe(&RecordBatch::VoucherLines(vec![bad]));
        let report = v.finish();
        let fields: Vec<&str> = report.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["account_id", "currency", "amount_currency"]);
        assert!(report.problems[0].message.contains("account `9999` does not exist"));
    }

    #[test]
    fn problems_are_capped_but_all_counted() {
        let mut v = SnapshotValidator::new(2);
        v.observe(&RecordBatch::Accounts((0..5).map(|_| account("")).collect()));
        let report = v.finish();
        assert_eq!(report.problems.len(), 2);
        assert!(report.total_problems >= 5);
    }

    #[test]
    fn company_checks() {
        let company = Company {
            id: "1".into(),
            name: " ".into(),
            organisation_number: None,
            currency: "NKR".into(),
            fiscal_years: vec![],
            source_key: "Frm:1".into(),
        };
        let fields: Vec<String> = validate_company(&company).into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["name", "currency"]);
    }
}
