//! Account and tax code mapping for SAF-T 1.30: `GroupingCategory` + `GroupingCode`
//! per account and `StandardTaxCode` per tax code.
//!
//! Order of precedence for an account: the ERP's own mapping (the canonical
//! account's `grouping_category`/`grouping_code`), then the mapping table given
//! to the export, then a derivation from the account number against the
//! official `naeringsspesifikasjon.csv` (exact 4-digit code, else the nearest
//! lower code of the same 2-digit group). See `docs/decisions/0009-saf-t.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The official v1.30 mapping list (`hub/saf-t/naeringsspesifikasjon.csv`).
const NAERINGSSPESIFIKASJON: &str = include_str!("../../saf-t/naeringsspesifikasjon.csv");
/// The official standard VAT codes (`hub/saf-t/Standard_Tax_Codes.csv`).
const STANDARD_TAX_CODES: &str = include_str!("../../saf-t/Standard_Tax_Codes.csv");

/// A `GroupingCategory` and `GroupingCode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// `GroupingCategory`, e.g. `balanseverdiForOmloepsmiddel`.
    pub category: String,
    /// `GroupingCode`, e.g. `1920`.
    pub code: String,
}

/// Mapping tables: the official lists plus the user's overrides.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    official: BTreeMap<u32, Grouping>,
    standard_tax_codes: BTreeSet<String>,
    accounts: BTreeMap<String, Grouping>,
    tax_codes: BTreeMap<String, String>,
}

/// A problem in a mapping file.
#[derive(Debug, thiserror::Error)]
#[error("{file}, line {line}: {message}")]
pub struct MappingError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

fn csv_rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines().skip(1).filter(|l| !l.trim().is_empty()).map(|l| l.split(';').map(str::trim).collect())
}

/// True when `code` is a valid `StandardTaxCode` value (the schema's pattern `[0-9anAN]{1,2}`).
pub fn is_standard_tax_code_form(code: &str) -> bool {
    (1..=2).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit() || b"anAN".contains(&b))
}

impl Mapping {
    /// The official lists and no overrides.
    pub fn official() -> Self {
        let mut official = BTreeMap::new();
        for row in csv_rows(NAERINGSSPESIFIKASJON) {
            if let (Some(category), Some(code)) = (row.first(), row.get(3)) {
                if let Ok(number) = code.parse::<u32>() {
                    official.entry(number).or_insert(Grouping {
                        category: category.trim_start_matches('\u{feff}').to_owned(),
                        code: (*code).to_owned(),
                    });
                }
            }
        }
        let standard_tax_codes =
            csv_rows(STANDARD_TAX_CODES).filter_map(|r| r.first().map(|c| (*c).to_owned())).collect();
        Self { official, standard_tax_codes, ..Self::default() }
    }

    /// The official lists plus the overrides of a mapping file (see [`Mapping::add_overrides`]).
    pub fn with_file(path: &Path) -> Result<Self, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|e| MappingError {
            file: path.display().to_string(),
            line: 0,
            message: format!("cannot read the mapping file: {e}"),
        })?;
        let mut mapping = Self::official();
        mapping.add_overrides(&path.display().to_string(), &text)?;
        Ok(mapping)
    }

    /// Adds overrides: lines `account;<account id>;<GroupingCategory>;<GroupingCode>` and
    /// `tax;<tax code>;<StandardTaxCode>`; `#` starts a comment.
    pub fn add_overrides(&mut self, file: &str, text: &str) -> Result<(), MappingError> {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(';').map(str::trim).collect();
            let err = |message: String| MappingError { file: file.to_owned(), line: i + 1, message };
            match fields.as_slice() {
                ["account", id, category, code] if !id.is_empty() && !category.is_empty() && !code.is_empty() => {
                    self.accounts.insert(
                        (*id).to_owned(),
                        Grouping { category: (*category).to_owned(), code: (*code).to_owned() },
                    );
                }
                ["tax", id, code] if !id.is_empty() => {
                    if !is_standard_tax_code_form(code) {
                        return Err(err(format!("`{code}` is not a StandardTaxCode (1 or 2 digits, or NA)")));
                    }
                    self.tax_codes.insert((*id).to_owned(), (*code).to_owned());
                }
                _ => {
                    return Err(err(format!(
                        "expected `account;<id>;<GroupingCategory>;<GroupingCode>` or `tax;<code>;<StandardTaxCode>`, found `{line}`"
                    )))
                }
            }
        }
        Ok(())
    }

    /// The grouping of an account; `None` when nothing maps it.
    pub fn account(
        &self,
        id: &str,
        erp: Option<(&str, &str)>,
        standard_account: Option<&str>,
    ) -> Option<Grouping> {
        if let Some((category, code)) = erp {
            return Some(Grouping { category: category.to_owned(), code: code.to_owned() });
        }
        if let Some(g) = self.accounts.get(id) {
            return Some(g.clone());
        }
        let derive = |number: &str| -> Option<Grouping> {
            if number.len() != 4 || !number.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u32 = number.parse().ok()?;
            if let Some(g) = self.official.get(&n) {
                return Some(g.clone());
            }
            // Else the nearest code of the same 2-digit group: the lower one, else the next higher.
            let group_start = n / 100 * 100;
            self.official
                .range(group_start..=n)
                .next_back()
                .or_else(|| self.official.range(n..group_start + 100).next())
                .map(|(_, g)| g.clone())
        };
        // A 2-digit standard account (1.10's `StandardAccountID`) maps to the first code of its group.
        let group = |number: &str| -> Option<Grouping> {
            if number.len() != 2 || !number.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u32 = number.parse().ok()?;
            self.official.range(n * 100..n * 100 + 100).next().map(|(_, g)| g.clone())
        };
        derive(id).or_else(|| standard_account.and_then(|s| derive(s).or_else(|| group(s))))
    }

    /// The `StandardTaxCode` of a tax code: the ERP's, an override, the code itself when
    /// it is a standard code, else `NA` (not applicable).
    pub fn standard_tax_code(&self, id: &str, erp: Option<&str>) -> String {
        if let Some(code) = erp.filter(|c| is_standard_tax_code_form(c)) {
            return code.to_owned();
        }
        if let Some(code) = self.tax_codes.get(id) {
            return code.clone();
        }
        if self.standard_tax_codes.contains(id) {
            return id.to_owned();
        }
        "NA".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erp_mapping_wins_then_overrides_then_the_official_list() {
        let mut m = Mapping::official();
        m.add_overrides("t", "account;1920;egenkapital;2000\ntax;X1;3 # sales\n").unwrap();
        let erp = m.account("1920", Some(("kortsiktigGjeld", "2400")), None).unwrap();
        assert_eq!(erp.code, "2400");
        assert_eq!(m.account("1920", None, None).unwrap().category, "egenkapital");
        let exact = m.account("1500", None, None).unwrap();
        assert_eq!((exact.category.as_str(), exact.code.as_str()), ("balanseverdiForOmloepsmiddel", "1500"));
        let nearest = m.account("1925", None, None).unwrap();
        assert_eq!(nearest.code, "1920");
        assert!(m.account("99999", None, None).is_none());
        assert_eq!(m.account("X", None, Some("1500")).unwrap().code, "1500");
        assert_eq!(m.account("4000", None, Some("43")).unwrap().code, "4001");
        assert_eq!(m.standard_tax_code("X1", None), "3");
        assert_eq!(m.standard_tax_code("31", None), "31");
        assert_eq!(m.standard_tax_code("ZZ9", None), "NA");
        assert_eq!(m.standard_tax_code("ZZ9", Some("5")), "5");
    }

    #[test]
    fn a_bad_mapping_line_is_named() {
        let err = Mapping::official().add_overrides("map.csv", "account;1920\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.to_string().contains("map.csv, line 1"), "{err}");
    }
}
