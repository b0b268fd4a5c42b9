//! The SQL Visma Business is read with, and the mapping of its rows.
//!
//! Identifiers are unquoted so the same text runs on SQL Server, PostgreSQL
//! (which folds them to lower case) and SQLite. Columns are always named.

use crate::headers::{HeaderColumns, LaneCollector};
use ledgerlink_odbc_common::{convert, Database, Row};
use ledgerlink_plugin_api::canonical::{
    Account, BatchWriter, BorrowedDimensionRef, BorrowedVoucherLine, DimensionValue, NaiveDate, Party, Text,
    Voucher, VoucherLine,
};
use ledgerlink_plugin_api::{ErrorKind, PluginError};
use std::fmt::Write as _;

/// Number of companies in the system database.
pub const COUNT_COMPANIES: &str = "SELECT COUNT(*) FROM Frm";

/// The companies, from the system database.
pub const COMPANIES: &str = "SELECT FrmNo, Nm, BsNo, Cur FROM Frm ORDER BY FrmNo";

/// The currency of one company.
pub fn company_currency(number: i64) -> String {
    format!("SELECT Cur FROM Frm WHERE FrmNo = {number}")
}

/// Per fiscal year with transactions, the aggregates its change token is made of,
/// in one pass over `AcTr` (so listing the years and fingerprinting all of them
/// costs one scan, not one per year).
///
/// Stamped rows are covered by their count, amount sum and newest stamp (Visma
/// stamps every change); rows never stamped (`ChDt = 0`) cannot be dated, so they
/// also enter with a content checksum: any change to them changes the token.
/// The last two columns, the lowest and highest voucher number, are not part of
/// the token: they only place the lanes' key ranges ([`voucher_line_lanes`]).
pub const YEAR_AGGREGATES: &str =
    "SELECT AcYrPr / 100, COUNT(*), SUM(AcAm), MAX(CAST(ChDt AS BIGINT) * 10000 + ChTm),
        SUM(CASE WHEN ChDt = 0 THEN 1 ELSE 0 END),
        SUM(CASE WHEN ChDt = 0 THEN AcAm * (JNo % 89 + 1) + AcNo + VoNo ELSE 0 END),
        MIN(VoNo), MAX(VoNo)
     FROM AcTr WHERE AcYrPr > 0 GROUP BY AcYrPr / 100 ORDER BY 1";

/// Labels of the [`YEAR_AGGREGATES`] columns after the year, in the token.
pub const YEAR_AGGREGATE_LABELS: [&str; 5] = ["lines", "sum", "max_change", "unstamped", "unstamped_sum"];

/// Where the lowest voucher number is in a [`YEAR_AGGREGATES`] row (the highest follows).
pub const YEAR_FIRST_VOUCHER_COLUMN: usize = 6;

/// A year's size and voucher-number range, from [`YEAR_AGGREGATES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YearExtent {
    /// Lines in the year.
    pub lines: u64,
    /// Lowest and highest `VoNo`.
    pub vouchers: (i64, i64),
}

/// Aggregates of the master data every year's token includes.
pub const MASTER_AGGREGATES: &str = "SELECT (SELECT COUNT(*) FROM Ac),
        (SELECT MAX(CAST(ChDt AS BIGINT) * 10000 + ChTm) FROM Ac),
        (SELECT MAX(CAST(ChDt AS BIGINT) * 10000 + ChTm) FROM Actor)";

/// Labels of the [`MASTER_AGGREGATES`] columns in the token.
pub const MASTER_AGGREGATE_LABELS: [&str; 3] = ["accounts", "accounts_change", "actors_change"];

/// `AcYrPr` bounds of a fiscal year.
fn period_range(year: i32) -> String {
    format!("AcYrPr BETWEEN {} AND {}", year * 100, year * 100 + 99)
}

/// The chart of accounts.
pub const ACCOUNTS: &str = "SELECT AcNo, Nm, AcGr, TxCd FROM Ac ORDER BY AcNo";

/// Maps an `Ac` row.
pub fn account(row: &Row<'_>) -> Result<Account, PluginError> {
    let id = row.int(0, "Ac.AcNo")?.to_string();
    Ok(Account {
        name: row.opt_string(1)?.unwrap_or_default(),
        grouping_category: None,
        grouping_code: None,
        standard_account: row.opt_string(2)?,
        default_tax_code: row.opt_int(3, "Ac.TxCd")?.filter(|&c| c != 0).map(|c| c.to_string()),
        source_key: format!("Ac/{id}"),
        id,
    })
}

/// Customers (`CustNo > 0`) or suppliers (`SupNo > 0`) from `Actor`.
pub fn actors(number_column: &str) -> String {
    format!(
        "SELECT a.{number_column}, a.Nm, a.BsNo, a.Ad1, a.PNo, a.PArea, c.ISO, a.MailAd, a.Phone, cu.ISO, a.ActNo
         FROM Actor a LEFT JOIN Ctry c ON c.CtryNo = a.Ctry LEFT JOIN Cur cu ON cu.CurNo = a.Cur
         WHERE a.{number_column} > 0 ORDER BY a.{number_column}"
    )
}

/// Maps an `Actor` row selected by [`actors`].
pub fn party(row: &Row<'_>) -> Result<Party, PluginError> {
    Ok(Party {
        id: row.int(0, "Actor number")?.to_string(),
        name: row.opt_string(1)?.unwrap_or_default(),
        organisation_number: row.opt_string(2)?,
        street: row.opt_string(3)?,
        postal_code: row.opt_string(4)?,
        city: row.opt_string(5)?,
        country: row.opt_string(6)?,
        email: row.opt_string(7)?,
        phone: row.opt_string(8)?,
        currency: row.opt_string(9)?,
        source_key: format!("Actor/{}", row.int(10, "Actor.ActNo")?),
    })
}

/// The org-unit dimension tables (`R1`..`R12`) that hold values.
pub fn dimension_tables(db: &Database) -> Result<Vec<String>, PluginError> {
    let sql =
        (1..=12).map(|n| format!("SELECT {n}, COUNT(*) FROM R{n}")).collect::<Vec<_>>().join(" UNION ALL ");
    let counts = db.query(&sql, |row| Ok((row.int(0, "dimension")?, row.int(1, "COUNT(*)")?)))?;
    let mut tables: Vec<(i64, i64)> = counts.into_iter().filter(|(_, count)| *count > 0).collect();
    tables.sort();
    Ok(tables.into_iter().map(|(n, _)| format!("R{n}")).collect())
}

/// The values of the given dimension tables.
pub fn dimension_values(tables: &[String]) -> String {
    if tables.is_empty() {
        return "SELECT 'R1', CAST(RNo AS VARCHAR(20)), Nm FROM R1 WHERE 1 = 0".into();
    }
    let parts: Vec<String> =
        tables.iter().map(|t| format!("SELECT '{t}', CAST(RNo AS VARCHAR(20)), Nm FROM {t}")).collect();
    format!("{} ORDER BY 1, 2", parts.join(" UNION ALL "))
}

/// Maps a row of [`dimension_values`].
pub fn dimension_value(row: &Row<'_>) -> Result<DimensionValue, PluginError> {
    let dimension_type = row.required(0, "dimension")?.to_owned();
    let id = row.required(1, "RNo")?.to_owned();
    Ok(DimensionValue {
        source_key: format!("{dimension_type}/{id}"),
        name: row.opt_string(2)?.unwrap_or_default(),
        dimension_type,
        id,
    })
}

/// Voucher headers of a year: one per voucher number.
pub fn vouchers(year: i32) -> String {
    format!(
        "SELECT VoNo, MIN(VoDt), MIN(AcYrPr), MIN(VoTp), MIN(Txt) FROM AcTr WHERE {} GROUP BY VoNo ORDER BY VoNo",
        period_range(year)
    )
}

fn missing_date(what: &str) -> PluginError {
    PluginError::new(
        ErrorKind::DATA,
        format!("{what} is 0 (no date)"),
        "Give the transaction a voucher date in Visma Business.",
    )
}

/// Maps a row of [`vouchers`].
pub fn voucher(row: &Row<'_>) -> Result<Voucher, PluginError> {
    Ok(voucher_header(
        row.int(0, "AcTr.VoNo")?,
        voucher_date(row, 1)?,
        convert::year_period_of(row.int(2, "AcTr.AcYrPr")?, "AcTr.AcYrPr")?,
        row.opt_string(3)?,
        row.opt_string(4)?,
    ))
}

/// A voucher header, whether read with [`vouchers`] or folded out of the line pass.
pub fn voucher_header(
    number: i64,
    date: NaiveDate,
    (year, period): (i32, u8),
    voucher_type: Option<String>,
    description: Option<String>,
) -> Voucher {
    Voucher {
        id: number.to_string(),
        date,
        period: Some(period).filter(|&p| p > 0),
        voucher_type,
        description,
        source_key: format!("AcTr/{year}/VoNo={number}"),
    }
}

/// `VoDt` of a row; 0 (no date) is an error.
fn voucher_date(row: &Row<'_>, column: usize) -> Result<NaiveDate, PluginError> {
    convert::date_of_yyyymmdd(row.int(column, "AcTr.VoDt")?, "AcTr.VoDt")?
        .ok_or_else(|| missing_date("AcTr.VoDt"))
}

/// General-ledger lines of a year, grouped by voucher.
pub fn voucher_lines(year: i32) -> String {
    voucher_lines_where(year, "")
}

fn voucher_lines_where(year: i32, voucher_range: &str) -> String {
    let dims: Vec<String> = (1..=12).map(|n| format!("t.R{n}")).collect();
    format!(
        "SELECT t.VoNo, t.JNo, t.EntNo, t.AcNo, t.VoDt, t.Txt, t.AcAm, c.ISO, t.CurAm, t.TxCd, t.Cust, t.Sup, {},
                t.AcYrPr, t.VoTp
         FROM AcTr t LEFT JOIN Cur c ON c.CurNo = t.Cur
         WHERE t.{}{voucher_range} ORDER BY t.VoNo, t.JNo, t.EntNo",
        dims.join(", "),
        period_range(year)
    )
}

/// The [`voucher_lines`] of a year split into `lanes` voucher-number ranges of
/// equal width over `first..=last`, in order. The first range is open downwards
/// (and takes rows without a voucher number), the last upwards, so every row is
/// in exactly one range even if vouchers were added since the range was measured.
pub fn voucher_line_lanes(year: i32, (first, last): (i64, i64), lanes: usize) -> Vec<String> {
    let lanes = lanes.max(1);
    let width = i128::from(last) - i128::from(first) + 1;
    let bounds: Vec<i64> = (1..lanes)
        .map(|i| i128::from(first) + width * i as i128 / lanes as i128)
        .map(|b| i64::try_from(b).unwrap_or(i64::MAX))
        .collect();
    if bounds.is_empty() || bounds.windows(2).any(|w| w[0] >= w[1]) || bounds[0] <= first {
        return vec![voucher_lines(year)];
    }
    (0..lanes)
        .map(|lane| {
            let range = match (lane.checked_sub(1).map(|i| bounds[i]), bounds.get(lane)) {
                (None, Some(upper)) => format!(" AND (t.VoNo < {upper} OR t.VoNo IS NULL)"),
                (Some(lower), Some(upper)) => format!(" AND t.VoNo >= {lower} AND t.VoNo < {upper}"),
                (Some(lower), None) => format!(" AND t.VoNo >= {lower}"),
                (None, None) => String::new(),
            };
            voucher_lines_where(year, &range)
        })
        .collect()
}

/// The [`voucher_lines`] columns fetched as integers (`VoNo` … `EntNo`, `AcNo`,
/// `VoDt`, `TxCd`, `Cust`, `Sup`, `R1` … `R6`, `AcYrPr`, `VoTp`).
pub const VOUCHER_LINE_INTEGERS: &[usize] = &[0, 1, 2, 3, 4, 9, 10, 11, 12, 13, 14, 15, 16, 17, 24, 25];

/// Where the voucher header's columns are in a [`voucher_lines`] row.
const HEADER_COLUMNS: HeaderColumns = HeaderColumns { period: 24, voucher_type: 25, text: 5 };

/// A column's number as text when positive (0 means none), formatted in `buffer`.
fn positive_number<'b>(
    row: &Row<'_>,
    column: usize,
    what: &str,
    buffer: &'b mut itoa::Buffer,
) -> Result<Option<Text<'b>>, PluginError> {
    Ok(row.opt_int(column, what)?.filter(|&n| n > 0).map(|n| Text::from(buffer.format(n))))
}

/// The dimension types of `AcTr.R1` … `AcTr.R12`.
const DIMENSION_TYPES: [&str; 12] =
    ["R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10", "R11", "R12"];

/// A writer of [`voucher_lines`] rows that numbers lines within each voucher,
/// keeps foreign-currency amounts only for currencies other than the company's,
/// and folds every row into the voucher headers being collected. Each line is
/// written borrowing the row's text (numbers are formatted on the stack): the
/// only allocation per line is its list of dimensions.
pub fn line_writer(
    company_currency: String,
    headers: LaneCollector,
) -> impl FnMut(&Row<'_>, &mut BatchWriter<VoucherLine>) -> Result<(), PluginError> + Send {
    let mut current_voucher = i64::MIN;
    let mut line_no = 0u32;
    let mut source_key = String::new();
    move |row, batch| {
        let voucher = row.int(0, "AcTr.VoNo")?;
        let date = voucher_date(row, 4)?;
        crate::headers::observe(&headers, voucher, date, row, &HEADER_COLUMNS)?;
        if voucher != current_voucher {
            current_voucher = voucher;
            line_no = 0;
        }
        line_no += 1;
        let (journal, entry) = (row.int(1, "AcTr.JNo")?, row.int(2, "AcTr.EntNo")?);
        let currency = row.trimmed(7)?.filter(|c| *c != company_currency);
        let amount_currency = match currency {
            Some(_) => row.opt_decimal(8, 2, "AcTr.CurAm")?,
            None => None,
        };
        // R1..R6 are numbered, R7..R12 coded; 0 or blank means "none".
        let mut numbered = [itoa::Buffer::new(); 6];
        let mut dimensions = Vec::new();
        for (n, number) in numbered.iter_mut().enumerate() {
            if let Some(value) = row.opt_int(12 + n, "AcTr.R1..R6")?.filter(|&v| v != 0) {
                let value = Text::from(number.format(value));
                dimensions
                    .push(BorrowedDimensionRef { dimension_type: Text::from(DIMENSION_TYPES[n]), value });
            }
        }
        for (n, &coded) in DIMENSION_TYPES.iter().enumerate().skip(6) {
            if let Some(value) = row.trimmed(12 + n)?.filter(|v| *v != "0") {
                dimensions.push(BorrowedDimensionRef {
                    dimension_type: Text::from(coded),
                    value: Text::from(value),
                });
            }
        }
        let mut numbers = [itoa::Buffer::new(); 5];
        let [voucher_text, account_text, tax_text, customer_text, supplier_text] = &mut numbers;
        source_key.clear();
        write!(source_key, "AcTr/JNo={journal}/EntNo={entry}").expect("writing to a String");
        batch.push(&BorrowedVoucherLine {
            voucher_id: Text::from(voucher_text.format(voucher)),
            line_no,
            account_id: Text::from(account_text.format(row.int(3, "AcTr.AcNo")?)),
            date,
            description: row.trimmed(5)?.map(Text::from),
            amount: row.decimal(6, 2, "AcTr.AcAm")?,
            currency: currency.map(Text::from),
            amount_currency,
            tax_code: positive_number(row, 9, "AcTr.TxCd", tax_text)?,
            tax_amount: None,
            dimensions,
            customer_id: positive_number(row, 10, "AcTr.Cust", customer_text)?,
            supplier_id: positive_number(row, 11, "AcTr.Sup", supplier_text)?,
            source_key: Text::from(source_key.as_str()),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lane of `queries` whose voucher-number range holds `voucher`.
    fn lanes_holding(queries: &[String], voucher: i64) -> Vec<usize> {
        let bound = |query: &str, marker: &str| -> Option<i64> {
            let at = query.find(marker)? + marker.len();
            query[at..].split(|c: char| !c.is_ascii_digit() && c != '-').next()?.parse().ok()
        };
        (0..queries.len())
            .filter(|&lane| {
                let q = &queries[lane];
                bound(q, "t.VoNo >= ").is_none_or(|low| voucher >= low)
                    && bound(q, "t.VoNo < ").is_none_or(|high| voucher < high)
            })
            .collect()
    }

    #[test]
    fn lanes_split_the_voucher_range_and_every_voucher_is_in_exactly_one() {
        let lanes = voucher_line_lanes(2025, (1, 100), 3);
        assert_eq!(lanes.len(), 3);
        assert!(lanes[0].contains("AND (t.VoNo < 34 OR t.VoNo IS NULL) ORDER BY"), "{}", lanes[0]);
        assert!(lanes[1].contains("AND t.VoNo >= 34 AND t.VoNo < 67 ORDER BY"), "{}", lanes[1]);
        assert!(lanes[2].contains("AND t.VoNo >= 67 ORDER BY"), "{}", lanes[2]);
        for voucher in -5..110 {
            assert_eq!(
                lanes_holding(&lanes, voucher).len(),
                1,
                "voucher {voucher}, also outside the measured range"
            );
        }
        for lane in &lanes {
            assert!(
                lane.starts_with(&voucher_lines(2025)[..40])
                    && lane.contains("AcYrPr BETWEEN 202500 AND 202599")
            );
        }
    }

    #[test]
    fn ranges_too_narrow_for_the_lanes_read_in_one_and_extremes_do_not_overflow() {
        assert_eq!(voucher_line_lanes(2025, (5, 5), 3), vec![voucher_lines(2025)]);
        assert_eq!(voucher_line_lanes(2025, (1, 2), 3), vec![voucher_lines(2025)]);
        assert_eq!(voucher_line_lanes(2025, (1, 100), 1), vec![voucher_lines(2025)]);
        let wide = voucher_line_lanes(2025, (i64::MIN, i64::MAX), 4);
        assert_eq!(wide.len(), 4);
        for voucher in [i64::MIN, -1, 0, 1, i64::MAX] {
            assert_eq!(lanes_holding(&wide, voucher).len(), 1, "voucher {voucher}");
        }
    }
}
