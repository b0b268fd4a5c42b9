//! Voucher lines as NDJSON, written directly: the bytes `serde_json` writes.
//!
//! Voucher lines are nearly every record of a snapshot, and writing them through
//! `serde_json` cost the host more than a third of its own CPU in a sync (issue
//! 9): fourteen keys escaped one by one and a call per field. Here the keys are
//! literals and a value is copied as it is unless it needs escaping, in which case
//! `serde_json` writes it, so the output is byte for byte `serde_json`'s (the
//! tests compare them).

use ledgerlink_plugin_api::canonical::{serde_date, BorrowedVoucherLine, Decimal, Text};
use std::io::Write;

/// Appends `line` as one compact JSON object and a newline, exactly as
/// `serde_json::to_writer` followed by `\n` would.
pub fn write_voucher_line(line: &BorrowedVoucherLine<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"voucher_id":"#);
    string(out, &line.voucher_id);
    out.extend_from_slice(br#","line_no":"#);
    out.extend_from_slice(itoa::Buffer::new().format(line.line_no).as_bytes());
    out.extend_from_slice(br#","account_id":"#);
    string(out, &line.account_id);
    out.extend_from_slice(br#","date":"#);
    serde_date::serialize(&line.date, &mut serde_json::Serializer::new(&mut *out))
        .expect("writing JSON to memory");
    out.extend_from_slice(br#","description":"#);
    optional_string(out, line.description.as_ref());
    out.extend_from_slice(br#","amount":"#);
    decimal(out, &line.amount);
    out.extend_from_slice(br#","currency":"#);
    optional_string(out, line.currency.as_ref());
    out.extend_from_slice(br#","amount_currency":"#);
    optional_decimal(out, line.amount_currency.as_ref());
    out.extend_from_slice(br#","tax_code":"#);
    optional_string(out, line.tax_code.as_ref());
    out.extend_from_slice(br#","tax_amount":"#);
    optional_decimal(out, line.tax_amount.as_ref());
    out.extend_from_slice(br#","dimensions":["#);
    for (i, dimension) in line.dimensions.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"dimension_type":"#);
        string(out, &dimension.dimension_type);
        out.extend_from_slice(br#","value":"#);
        string(out, &dimension.value);
        out.push(b'}');
    }
    out.extend_from_slice(br#"],"customer_id":"#);
    optional_string(out, line.customer_id.as_ref());
    out.extend_from_slice(br#","supplier_id":"#);
    optional_string(out, line.supplier_id.as_ref());
    out.extend_from_slice(br#","source_key":"#);
    string(out, &line.source_key);
    out.extend_from_slice(b"}\n");
}

/// A JSON string: copied between quotes unless a byte needs escaping.
fn string(out: &mut Vec<u8>, text: &str) {
    if text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        serde_json::to_writer(&mut *out, text).expect("writing JSON to memory");
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

fn optional_string(out: &mut Vec<u8>, text: Option<&Text<'_>>) {
    match text {
        Some(text) => string(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// A decimal as the canonical codec writes it: its exact text, quoted.
fn decimal(out: &mut Vec<u8>, value: &Decimal) {
    write!(out, "\"{value}\"").expect("writing to memory");
}

fn optional_decimal(out: &mut Vec<u8>, value: Option<&Decimal>) {
    match value {
        Some(value) => decimal(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgerlink_plugin_api::canonical::{
        decode_borrowed_voucher_lines, encode_batch, DimensionRef, NaiveDate, RecordBatch, VoucherLine,
    };
    use std::str::FromStr;

    fn line(n: u32) -> VoucherLine {
        let texts = [
            "Bæreposer",
            "",
            "quote \" and \\ backslash",
            "tab\tnew\nline\r\u{1}\u{1f}\u{7f}",
            "emoji 🧾 / slash",
            "</script>",
        ];
        let amounts = ["-1234.50", "0", "0.00", "79228162514264337593543950335", "-0.00000001", "12.5"];
        let text = |i: u32| texts[(i as usize) % texts.len()].to_owned();
        VoucherLine {
            voucher_id: format!("V{n}{}", text(n + 3)),
            line_no: n * 977,
            account_id: text(n + 1),
            date: NaiveDate::from_ymd_opt([2025, 1, 0, 9999, 999][n as usize % 5], 1 + n % 12, 1 + n % 28)
                .unwrap(),
            description: (n % 3 != 0).then(|| text(n)),
            amount: Decimal::from_str(amounts[n as usize % amounts.len()]).unwrap(),
            currency: (n % 2 == 0).then(|| "EUR".into()),
            amount_currency: (n % 4 == 0).then(|| Decimal::from_str(amounts[(n as usize + 1) % 6]).unwrap()),
            tax_code: (n % 5 == 0).then(|| text(n + 2)),
            tax_amount: (n % 7 == 0).then(|| Decimal::from_str("-246.9").unwrap()),
            dimensions: (0..n % 4)
                .map(|d| DimensionRef { dimension_type: format!("R{d}"), value: text(n + d) })
                .collect(),
            customer_id: (n % 3 == 1).then(|| text(n + 4)),
            supplier_id: (n % 3 == 2).then(|| "10001".into()),
            source_key: format!("AcTr/JNo={n}/EntNo={}", text(n + 5)),
        }
    }

    #[test]
    fn writes_exactly_what_serde_json_writes() {
        let mut lines: Vec<VoucherLine> = (0..240).map(line).collect();
        // Years beyond 9999 are written by chrono's formatter.
        lines.push(VoucherLine { date: NaiveDate::from_ymd_opt(12_345, 6, 7).unwrap(), ..line(1) });
        let bytes = encode_batch(&RecordBatch::VoucherLines(lines.clone()));
        let borrowed = decode_borrowed_voucher_lines(&bytes).unwrap().expect("voucher lines");
        for (owned, borrowed) in lines.iter().zip(&borrowed) {
            let mut expected = serde_json::to_vec(owned).unwrap();
            expected.push(b'\n');
            let mut written = Vec::new();
            write_voucher_line(borrowed, &mut written);
            assert_eq!(String::from_utf8(written).unwrap(), String::from_utf8(expected).unwrap());
        }
    }
}
