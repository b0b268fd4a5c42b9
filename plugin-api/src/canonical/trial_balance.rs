//! Trial balance: per account, debit total, credit total and net, exact.

use super::{serde_decimal, VoucherLine};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Totals of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialBalanceRow {
    /// Sum of the positive (debit) amounts.
    #[serde(with = "serde_decimal")]
    pub debit: Decimal,
    /// Sum of the negative (credit) amounts, as a positive number.
    #[serde(with = "serde_decimal")]
    pub credit: Decimal,
    /// `debit - credit`.
    #[serde(with = "serde_decimal")]
    pub net: Decimal,
}

/// Trial balance keyed by account id, in account order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrialBalance {
    /// Rows by account id.
    pub accounts: BTreeMap<String, TrialBalanceRow>,
}

impl TrialBalance {
    /// Adds one line's amount to its account.
    pub fn add(&mut self, line: &VoucherLine) {
        self.add_amount(&line.account_id, line.amount);
    }

    /// Adds a signed amount (debit positive) to an account.
    pub fn add_amount(&mut self, account_id: &str, amount: Decimal) {
        let row = match self.accounts.get_mut(account_id) {
            Some(row) => row,
            // Zeros carry the amount's scale, at least cents, so an empty side reads
            // "0.00", not "0" or "0.0" (SQLite's drivers send 12.50 as "12.5").
            None => self.accounts.entry(account_id.to_owned()).or_insert_with(|| {
                let zero = Decimal::new(0, amount.scale().max(2));
                TrialBalanceRow { debit: zero, credit: zero, net: zero }
            }),
        };
        if amount.is_sign_negative() {
            row.credit -= amount;
        } else {
            row.debit += amount;
        }
        row.net += amount;
        // Money reads in cents at least (exactly: only trailing zeros are added).
        for total in [&mut row.debit, &mut row.credit, &mut row.net] {
            if total.scale() < 2 {
                total.rescale(2);
            }
        }
    }

    /// Adds another trial balance's totals (of other lines of the same books):
    /// the result is exactly, scales included, that of adding all lines to one.
    pub fn merge(&mut self, other: TrialBalance) {
        for (account, row) in other.accounts {
            match self.accounts.get_mut(&account) {
                Some(own) => {
                    own.debit += row.debit;
                    own.credit += row.credit;
                    own.net += row.net;
                }
                None => {
                    self.accounts.insert(account, row);
                }
            }
        }
    }

    /// Sum of all nets; zero for balanced books.
    pub fn total_net(&self) -> Decimal {
        self.accounts.values().map(|r| r.net).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn splits_debit_and_credit_and_nets_exactly() {
        let mut tb = TrialBalance::default();
        for (account, amount) in [("1920", "100.10"), ("1920", "-0.10"), ("3000", "-100.00"), ("1920", "0.1")]
        {
            tb.add_amount(account, Decimal::from_str(amount).unwrap());
        }
        let bank = &tb.accounts["1920"];
        assert_eq!(bank.debit.to_string(), "100.20");
        assert_eq!(bank.credit.to_string(), "0.10");
        assert_eq!(bank.net.to_string(), "100.10");
        assert_eq!(tb.accounts["3000"].credit.to_string(), "100.00");
        assert_eq!(tb.accounts["3000"].debit.to_string(), "0.00", "an empty side keeps the scale");
        assert_eq!(tb.total_net(), Decimal::from_str("0.10").unwrap());
    }

    #[test]
    fn an_empty_side_reads_in_cents_whatever_the_first_amounts_scale() {
        let mut tb = TrialBalance::default();
        tb.add_amount("7700", Decimal::from_str("3082405.7").unwrap());
        tb.add_amount("1920", Decimal::from_str("-0.125").unwrap());
        let text = |d: Decimal| d.to_string();
        let row = &tb.accounts["7700"];
        assert_eq!(
            (text(row.debit), text(row.credit), text(row.net)),
            ("3082405.70".into(), "0.00".into(), "3082405.70".into())
        );
        assert_eq!(text(tb.accounts["1920"].credit), "0.125", "mills stay exact");
    }

    #[test]
    fn merged_parts_equal_the_whole_to_the_last_digit_and_scale() {
        let lines = [("1920", "100.10"), ("3000", "-1"), ("1920", "-0.005"), ("2400", "0"), ("3000", "7.5")];
        let mut whole = TrialBalance::default();
        lines.iter().for_each(|(a, x)| whole.add_amount(a, Decimal::from_str(x).unwrap()));
        for cut in 0..=lines.len() {
            let (mut left, mut right) = (TrialBalance::default(), TrialBalance::default());
            lines[..cut].iter().for_each(|(a, x)| left.add_amount(a, Decimal::from_str(x).unwrap()));
            lines[cut..].iter().for_each(|(a, x)| right.add_amount(a, Decimal::from_str(x).unwrap()));
            left.merge(right);
            assert_eq!(
                serde_json::to_string(&left).unwrap(),
                serde_json::to_string(&whole).unwrap(),
                "cut at {cut}"
            );
        }
    }
}
