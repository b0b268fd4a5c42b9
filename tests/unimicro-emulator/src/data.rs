//! The emulator's data: two Norwegian companies, fiscal years 2024 and 2025,
//! generated deterministically (no randomness between runs).

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;

/// A company.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompanyRow {
    /// Company key (a GUID).
    pub key: String,
    /// Name.
    pub name: String,
    /// Organisation number.
    pub organization_number: String,
}

/// Fields every entity has.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Common {
    /// Row id.
    #[serde(rename = "ID")]
    pub id: i64,
    /// Created.
    pub created_at: String,
    /// Last update, if any.
    pub updated_at: Option<String>,
    /// Soft-deleted.
    pub deleted: bool,
    /// Status code.
    pub status_code: i64,
}

/// All entities of one company.
#[derive(Debug, Clone, Default)]
pub struct CompanyData {
    /// Entity name → rows as JSON text-preserving values.
    pub entities: BTreeMap<&'static str, Vec<serde_json::Value>>,
    /// Rows of `journalentrylines`, typed, for the trial balance.
    pub lines: Vec<LineFacts>,
    /// Account id → account number.
    pub account_numbers: BTreeMap<i64, i64>,
}

/// What the emulator's own trial balance needs of a line.
#[derive(Debug, Clone)]
pub struct LineFacts {
    /// Account id.
    pub account_id: i64,
    /// Amount.
    pub amount: Decimal,
    /// Date.
    pub date: NaiveDate,
    /// Deleted lines do not count.
    pub deleted: bool,
}

/// One emulated company with its data.
#[derive(Debug, Clone)]
pub struct Company {
    /// `init/companies` row.
    pub row: CompanyRow,
    /// Its data.
    pub data: CompanyData,
}

struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        // SplitMix64: deterministic, good enough to vary test data.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn common(id: i64, created: &str, updated: Option<&str>) -> serde_json::Map<String, serde_json::Value> {
    let value = serde_json::to_value(Common {
        id,
        created_at: created.to_owned(),
        updated_at: updated.map(str::to_owned),
        deleted: false,
        status_code: 30001,
    })
    .expect("json");
    match value {
        serde_json::Value::Object(map) => map,
        _ => unreachable!(),
    }
}

fn row(mut base: serde_json::Map<String, serde_json::Value>, fields: serde_json::Value) -> serde_json::Value {
    if let serde_json::Value::Object(extra) = fields {
        base.extend(extra);
    }
    serde_json::Value::Object(base)
}

/// Money as a JSON number, like the real API sends it. The emulator's amounts have
/// at most 2 decimals and 9 digits, which a JSON number's shortest form keeps exactly;
/// the plugin reads the number's text, never an f64.
fn money(d: Decimal) -> serde_json::Value {
    serde_json::from_str(&d.to_string()).expect("a decimal is a JSON number")
}

const ACCOUNTS: [(i64, &str, Option<i64>, Option<i64>); 16] = [
    (1500, "Kundefordringer", None, Some(1500)),
    (1920, "Bankinnskudd", None, Some(1920)),
    (1950, "Skattetrekkskonto", None, None),
    (2000, "Aksjekapital", None, Some(2000)),
    (2400, "Leverandørgjeld", None, Some(2400)),
    (2600, "Forskuddstrekk", None, None),
    (2700, "Utgående merverdiavgift, høy sats", None, None),
    (2710, "Inngående merverdiavgift, høy sats", None, None),
    (2740, "Oppgjørskonto merverdiavgift", None, Some(2740)),
    (3000, "Salgsinntekt, avgiftspliktig", Some(3), Some(3000)),
    (3100, "Salgsinntekt, avgiftsfri", Some(6), None),
    (4300, "Innkjøp av varer for videresalg", Some(1), Some(4005)),
    (5000, "Lønn til ansatte", None, Some(5000)),
    (6300, "Leie lokale", Some(1), Some(6300)),
    (6800, "Kontorrekvisita", Some(1), Some(6995)),
    (7770, "Bank- og kortgebyrer", None, None),
];

const CUSTOMERS: [(&str, &str); 5] = [
    ("Nordlys Regnskap AS", "912345670"),
    ("Bergen Fisk og Skalldyr AS", "923456781"),
    ("Trøndelag Tre og Bygg AS", "934567892"),
    ("Fjordkraft Kontor AS", "945678903"),
    ("Ålesund Marin Service AS", "956789014"),
];

const SUPPLIERS: [(&str, &str); 4] = [
    ("Kontorland Norge AS", "967890125"),
    ("Eiendomsselskapet Sentrum AS", "978901236"),
    ("Grossisten Øst AS", "989012347"),
    ("Nettbanken Gebyr ASA", "990123458"),
];

/// (ID, VatCode, Name, VatPercent)
const VAT_TYPES: [(i64, &str, &str, &str); 4] = [
    (1, "1", "Inngående mva, høy sats", "25"),
    (3, "3", "Utgående mva, høy sats", "25"),
    (5, "5", "Ingen utgående mva (innenlands)", "0"),
    (6, "6", "Utenfor mva-loven", "0"),
];

/// One line of a generated voucher: account id, sub-account id, amount, VAT type, text.
type Posting = (i64, Option<i64>, Decimal, Option<i64>, String);

/// The years every company has.
pub const YEARS: [i32; 2] = [2024, 2025];

fn ts(date: NaiveDate, seconds: u64) -> String {
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        date.format("%Y-%m-%d"),
        8 + (seconds / 3600) % 10,
        (seconds / 60) % 60,
        seconds % 60
    )
}

fn build(index: usize, key: &str, name: &str, org: &str, vouchers_per_year: u32) -> Company {
    let mut g = Gen(0x5EED_0000 + index as u64);
    let mut d = CompanyData::default();
    let created = "2023-11-01T09:00:00Z";
    let scale = Decimal::from(1 + index as i64 * 2);
    d.entities.insert(
        "companysettings",
        vec![row(
            common(1, created, None),
            serde_json::json!({"CompanyName": name, "OrganizationNumber": org, "BaseCurrencyCodeID": 1}),
        )],
    );
    d.entities.insert(
        "currencycodes",
        vec![
            row(common(1, created, None), serde_json::json!({"Code": "NOK", "Name": "Norske kroner"})),
            row(common(2, created, None), serde_json::json!({"Code": "EUR", "Name": "Euro"})),
        ],
    );
    d.entities.insert(
        "financialyears",
        YEARS
            .iter()
            .enumerate()
            .map(|(i, y)| {
                row(common(i as i64 + 1, created, None), serde_json::json!({"Year": y, "ValidFrom": format!("{y}-01-01"), "ValidTo": format!("{y}-12-31")}))
            })
            .collect(),
    );
    d.entities.insert(
        "vattypes",
        VAT_TYPES
            .iter()
            .map(|(id, code, n, pct)| {
                row(common(*id, created, None), serde_json::json!({"VatCode": code, "Name": n, "VatPercent": money(pct.parse().unwrap())}))
            })
            .collect(),
    );
    let mut accounts = Vec::new();
    for (i, (number, aname, vat, saft)) in ACCOUNTS.iter().enumerate() {
        let id = 100 + i as i64;
        d.account_numbers.insert(id, *number);
        accounts.push(row(
            common(id, created, Some("2024-01-02T10:00:00Z")),
            serde_json::json!({"AccountNumber": number, "AccountName": aname, "VatTypeID": vat, "Active": true,
                               "SaftMappingAccountID": saft, "CustomerID": null, "SupplierID": null}),
        ));
    }
    let mut customers = Vec::new();
    for (i, (cname, corg)) in CUSTOMERS.iter().enumerate() {
        let id = 1 + i as i64;
        customers.push(row(
            common(id, created, None),
            serde_json::json!({"CustomerNumber": 10001 + i as i64, "OrgNumber": corg, "CurrencyCodeID": 1,
                               "Info": {"ID": 500 + id, "Name": cname}}),
        ));
        let sub = 300 + i as i64;
        d.account_numbers.insert(sub, 10001 + i as i64);
        accounts.push(row(
            common(sub, created, None),
            serde_json::json!({"AccountNumber": 10001 + i as i64, "AccountName": cname, "VatTypeID": null, "Active": true,
                               "SaftMappingAccountID": null, "CustomerID": id, "SupplierID": null}),
        ));
    }
    let mut suppliers = Vec::new();
    for (i, (sname, sorg)) in SUPPLIERS.iter().enumerate() {
        let id = 1 + i as i64;
        suppliers.push(row(
            common(id, created, None),
            serde_json::json!({"SupplierNumber": 20001 + i as i64, "OrgNumber": sorg, "CurrencyCodeID": 1,
                               "Info": {"ID": 600 + id, "Name": sname}}),
        ));
        let sub = 400 + i as i64;
        d.account_numbers.insert(sub, 20001 + i as i64);
        accounts.push(row(
            common(sub, created, None),
            serde_json::json!({"AccountNumber": 20001 + i as i64, "AccountName": sname, "VatTypeID": null, "Active": true,
                               "SaftMappingAccountID": null, "CustomerID": null, "SupplierID": id}),
        ));
    }
    d.entities.insert("accounts", accounts);
    d.entities.insert("customers", customers);
    d.entities.insert("suppliers", suppliers);
    d.entities.insert(
        "projects",
        [("100", "Kontorflytting"), ("200", "Nytt nettsted"), ("300", "Messe Lillestrøm")]
            .iter()
            .enumerate()
            .map(|(i, (n, pn))| {
                row(common(i as i64 + 1, created, None), serde_json::json!({"ProjectNumber": n, "Name": pn}))
            })
            .collect(),
    );
    d.entities.insert(
        "departments",
        [("1", "Administrasjon"), ("2", "Salg"), ("3", "Lager")]
            .iter()
            .enumerate()
            .map(|(i, (n, dn))| {
                row(
                    common(i as i64 + 1, created, None),
                    serde_json::json!({"DepartmentNumber": n, "Name": dn}),
                )
            })
            .collect(),
    );
    let mut dimensions = Vec::new();
    let mut lines = Vec::new();
    let acc = |number: i64| 100 + ACCOUNTS.iter().position(|a| a.0 == number).expect("account") as i64;
    let (mut line_id, mut entry_id, mut dim_id) = (1i64, 1i64, 1i64);
    for year in YEARS {
        for n in 1..=vouchers_per_year {
            let day =
                NaiveDate::from_ymd_opt(year, 1, 1).unwrap() + chrono::Duration::days(g.below(365) as i64);
            let day = if day.year() != year { NaiveDate::from_ymd_opt(year, 12, 31).unwrap() } else { day };
            let net = Decimal::new(10_000 + g.below(2_000_000) as i64, 2) * scale;
            let vat = (net * Decimal::new(25, 2)).round_dp(2);
            let kind = g.below(5);
            let customer = g.below(CUSTOMERS.len() as u64) as i64;
            let supplier = g.below(SUPPLIERS.len() as u64) as i64;
            // (account id, sub-account id, amount, vat type, text)
            let posting: Vec<Posting> = match kind {
                0 => vec![
                    (acc(1500), Some(300 + customer), net + vat, None, format!("Faktura {n}")),
                    (acc(3000), None, -net, Some(3), "Salg av tjenester".into()),
                    (acc(2700), None, -vat, None, "Utgående mva".into()),
                ],
                1 => vec![
                    (acc(4300), None, net, Some(1), "Varekjøp".into()),
                    (acc(2710), None, vat, None, "Inngående mva".into()),
                    (acc(2400), Some(400 + supplier), -(net + vat), None, format!("Leverandørfaktura {n}")),
                ],
                2 => vec![
                    (acc(1920), None, net, None, "Innbetaling fra kunde".into()),
                    (acc(1500), Some(300 + customer), -net, None, "Innbetaling".into()),
                ],
                3 => vec![
                    (acc(6300), None, net, Some(1), "Husleie".into()),
                    (acc(2710), None, vat, None, "Inngående mva".into()),
                    (acc(1920), None, -(net + vat), None, "Betalt husleie".into()),
                ],
                _ => vec![
                    (acc(5000), None, net, None, "Lønn".into()),
                    (acc(2600), None, -(net * Decimal::new(3, 1)).round_dp(2), None, "Forskuddstrekk".into()),
                    (
                        acc(1920),
                        None,
                        -(net - (net * Decimal::new(3, 1)).round_dp(2)),
                        None,
                        "Utbetalt lønn".into(),
                    ),
                ],
            };
            // One voucher a year is deleted: the API keeps it with Deleted = true.
            let deleted = n == 7;
            let updated = if n % 11 == 0 { Some(ts(day, u64::from(n) + 7)) } else { None };
            for (account_id, sub, amount, vat_type, text) in posting {
                let dims = if account_id >= acc(3000) {
                    dimensions.push(row(
                        common(dim_id, created, None),
                        serde_json::json!({"ProjectID": if g.below(2) == 0 { Some(1 + g.below(3) as i64) } else { None },
                                           "DepartmentID": 1 + g.below(3) as i64, "RegionID": null, "ResponsibleID": null}),
                    ));
                    dim_id += 1;
                    Some(dim_id - 1)
                } else {
                    None
                };
                let mut base = common(line_id, &ts(day, u64::from(n)), updated.as_deref());
                base.insert("Deleted".into(), serde_json::Value::Bool(deleted));
                d.entities.entry("journalentrylines").or_default().push(row(
                    base,
                    serde_json::json!({"JournalEntryID": entry_id, "JournalEntryNumber": format!("{n}-{year}"),
                        "AccountID": account_id, "SubAccountID": sub, "Amount": money(amount), "AmountCurrency": money(amount),
                        "CurrencyCodeID": 1, "FinancialDate": day.format("%Y-%m-%d").to_string(), "Description": text,
                        "DimensionsID": dims, "VatTypeID": vat_type}),
                ));
                lines.push(LineFacts { account_id, amount, date: day, deleted });
                line_id += 1;
            }
            entry_id += 1;
        }
    }
    d.entities.insert("dimensions", dimensions);
    d.lines = lines;
    Company {
        row: CompanyRow { key: key.into(), name: name.into(), organization_number: org.into() },
        data: d,
    }
}

/// The emulated companies.
pub fn companies(vouchers_per_year: u32) -> Vec<Company> {
    vec![
        build(
            0,
            "0f6a3b52-7c1d-4e8a-9b7e-2d4c5a6b7c81",
            "Fjordtind Rådgivning AS",
            "921876543",
            vouchers_per_year,
        ),
        build(1, "8e2b9c14-3f5a-4d6b-a1c2-9e8f7d6c5b42", "Havbris Handel AS", "932198765", vouchers_per_year),
    ]
}

/// The trial balance of a company's year from the emulator's own data: account number → (debit, credit).
pub fn trial_balance(company: &Company, year: i32) -> BTreeMap<String, (Decimal, Decimal)> {
    let mut tb: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for l in company.data.lines.iter().filter(|l| !l.deleted && l.date.year() == year) {
        let number = company.data.account_numbers[&l.account_id].to_string();
        let row = tb.entry(number).or_default();
        if l.amount.is_sign_negative() {
            row.1 -= l.amount;
        } else {
            row.0 += l.amount;
        }
    }
    tb
}
