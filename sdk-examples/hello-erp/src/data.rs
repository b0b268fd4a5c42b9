//! The in-memory "ERP database" of hello-erp: fixed, deterministic data.
//!
//! Everything is computed from small tables so tests can reason about it: two
//! companies, fiscal years 2024 and 2025, and a year of postings built from one
//! template (company 2 books three times the amounts, and 2025 adds 10 %).

use ledgerlink_plugin_api::canonical::{
    Account, Company, Decimal, DimensionRef, DimensionType, DimensionValue, FiscalYear, NaiveDate, Party,
    TaxCode, Voucher, VoucherLine,
};

/// (id, name, organisation number) of the built-in companies.
pub const COMPANIES: [(&str, &str, &str); 2] =
    [("1", "Fjellbekk Bakeri AS", "923456789"), ("2", "Østre Rørlegger og Søn AS", "987654321")];

/// The fiscal years every company has.
pub const FISCAL_YEARS: [i32; 2] = [2024, 2025];

const ACCOUNTS: [(&str, &str, &str); 8] = [
    ("1500", "Kundefordringer", "1500"),
    ("1920", "Bankinnskudd", "1920"),
    ("2400", "Leverandørgjeld", "2400"),
    ("2700", "Utgående merverdiavgift", "2700"),
    ("2710", "Inngående merverdiavgift", "2710"),
    ("3000", "Salgsinntekt, avgiftspliktig", "3000"),
    ("4300", "Innkjøp av varer for videresalg", "4300"),
    ("6300", "Leie lokale", "6300"),
];

/// One posting of the template year: (voucher, month, day, text, lines).
/// A line is (account, amount in NOK for company 1 in 2024, department, customer, supplier).
type TemplateLine =
    (&'static str, &'static str, Option<&'static str>, Option<&'static str>, Option<&'static str>);
const TEMPLATE: [(u32, u32, u32, &str, &[TemplateLine]); 5] = [
    (
        1,
        1,
        15,
        "Salg brød og bakst",
        &[
            ("1500", "12500.00", None, Some("10001"), None),
            ("3000", "-10000.00", Some("10"), None, None),
            ("2700", "-2500.00", None, None, None),
        ],
    ),
    (
        2,
        2,
        3,
        "Varekjøp mel og gjær",
        &[
            ("4300", "4000.00", Some("20"), None, None),
            ("2710", "1000.00", None, None, None),
            ("2400", "-5000.00", None, None, Some("30001")),
        ],
    ),
    (
        3,
        3,
        1,
        "Husleie mars",
        &[("6300", "8333.33", Some("10"), None, None), ("1920", "-8333.33", None, None, None)],
    ),
    (
        4,
        4,
        20,
        "Innbetaling kunde",
        &[("1920", "12500.00", None, None, None), ("1500", "-12500.00", None, Some("10001"), None)],
    ),
    (
        5,
        6,
        30,
        "Betaling leverandør (EUR)",
        &[("2400", "5000.00", None, None, Some("30001")), ("1920", "-5000.00", None, None, None)],
    ),
];

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid template date")
}

fn dec(text: &str) -> Decimal {
    text.parse().expect("valid template amount")
}

/// The factor a company's year scales template amounts by.
fn factor(company: &str, year: i32) -> Decimal {
    let company_factor = if company == "2" { dec("3") } else { dec("1") };
    let year_factor = if year >= 2025 { dec("1.1") } else { dec("1") };
    company_factor * year_factor
}

/// All companies.
pub fn companies() -> Vec<Company> {
    COMPANIES
        .iter()
        .map(|(id, name, org)| Company {
            id: id.to_string(),
            name: name.to_string(),
            organisation_number: Some(org.to_string()),
            currency: "NOK".into(),
            fiscal_years: FISCAL_YEARS
                .iter()
                .map(|&year| FiscalYear { year, start: date(year, 1, 1), end: date(year, 12, 31) })
                .collect(),
            source_key: format!("companies/{id}"),
        })
        .collect()
}

/// The chart of accounts (the same for both companies).
pub fn accounts(company: &str) -> Vec<Account> {
    ACCOUNTS
        .iter()
        .map(|(id, name, standard)| Account {
            id: id.to_string(),
            name: name.to_string(),
            grouping_category: None,
            grouping_code: None,
            standard_account: Some(standard.to_string()),
            default_tax_code: None,
            source_key: format!("companies/{company}/accounts/{id}"),
        })
        .collect()
}

fn party(company: &str, kind: &str, id: &str, name: &str, city: &str) -> Party {
    Party {
        id: id.into(),
        name: name.into(),
        organisation_number: None,
        street: Some("Storgata 1".into()),
        postal_code: Some("0155".into()),
        city: Some(city.into()),
        country: Some("NO".into()),
        email: None,
        phone: None,
        currency: Some("NOK".into()),
        source_key: format!("companies/{company}/{kind}/{id}"),
    }
}

/// Customers.
pub fn customers(company: &str) -> Vec<Party> {
    vec![party(company, "customers", "10001", "Kafé Blåbær", "Tromsø")]
}

/// Suppliers.
pub fn suppliers(company: &str) -> Vec<Party> {
    vec![party(company, "suppliers", "30001", "Møllerens Mel AS", "Bærum")]
}

/// Dimension types.
pub fn dimension_types() -> Vec<DimensionType> {
    vec![
        DimensionType {
            id: "department".into(),
            name: "Avdeling".into(),
            source_key: "dimensions/department".into(),
        },
        DimensionType {
            id: "project".into(),
            name: "Prosjekt".into(),
            source_key: "dimensions/project".into(),
        },
    ]
}

/// Dimension values.
pub fn dimension_values() -> Vec<DimensionValue> {
    [("department", "10", "Butikk"), ("department", "20", "Bakeri"), ("project", "P1", "Ny ovn")]
        .iter()
        .map(|(t, id, name)| DimensionValue {
            dimension_type: t.to_string(),
            id: id.to_string(),
            name: name.to_string(),
            source_key: format!("dimensions/{t}/{id}"),
        })
        .collect()
}

/// Tax codes.
pub fn tax_codes() -> Vec<TaxCode> {
    vec![
        TaxCode {
            id: "3".into(),
            description: "Utgående mva, høy sats".into(),
            rate: Some(dec("25")),
            standard_tax_code: Some("3".into()),
            source_key: "taxcodes/3".into(),
        },
        TaxCode {
            id: "1".into(),
            description: "Inngående mva, høy sats".into(),
            rate: Some(dec("25")),
            standard_tax_code: Some("1".into()),
            source_key: "taxcodes/1".into(),
        },
    ]
}

/// Voucher headers of a company's fiscal year (none for unknown years).
pub fn vouchers(company: &str, year: i32) -> Vec<Voucher> {
    if !FISCAL_YEARS.contains(&year) {
        return Vec::new();
    }
    TEMPLATE
        .iter()
        .map(|(no, month, day, text, _)| Voucher {
            id: no.to_string(),
            date: date(year, *month, *day),
            period: Some(*month as u8),
            voucher_type: Some("GL".into()),
            description: Some(text.to_string()),
            source_key: format!("companies/{company}/{year}/vouchers/{no}"),
        })
        .collect()
}

/// Voucher lines of a company's fiscal year; each voucher balances to zero.
pub fn voucher_lines(company: &str, year: i32) -> Vec<VoucherLine> {
    if !FISCAL_YEARS.contains(&year) {
        return Vec::new();
    }
    let factor = factor(company, year);
    let mut lines = Vec::new();
    for (no, month, day, text, template_lines) in TEMPLATE {
        for (i, (account, amount, department, customer, supplier)) in template_lines.iter().enumerate() {
            let amount = (dec(amount) * factor).round_dp(2);
            // The supplier payment was made in euro: keep the currency amount too.
            let eur = (no == 5).then(|| (amount / dec("11.50")).round_dp(2));
            lines.push(VoucherLine {
                voucher_id: no.to_string(),
                line_no: i as u32 + 1,
                account_id: account.to_string(),
                date: date(year, month, day),
                description: Some(text.to_string()),
                amount,
                currency: eur.map(|_| "EUR".to_string()),
                amount_currency: eur,
                tax_code: match *account {
                    "2700" => Some("3".into()),
                    "2710" => Some("1".into()),
                    _ => None,
                },
                tax_amount: None,
                dimensions: department
                    .map(|d| vec![DimensionRef { dimension_type: "department".into(), value: d.to_string() }])
                    .unwrap_or_default(),
                customer_id: customer.map(str::to_string),
                supplier_id: supplier.map(str::to_string),
                source_key: format!("companies/{company}/{year}/vouchers/{no}/lines/{}", i + 1),
            });
        }
    }
    lines
}
