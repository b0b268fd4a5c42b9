//! Plugin settings as JSON, and hiding their secrets wherever they are shown.

use serde_json::Value;

/// What replaces a hidden value.
pub const REDACTED: &str = "***";

/// Key fragments whose values are hidden (matched case-insensitively anywhere in the key).
const SECRET_KEY_PARTS: &[&str] = &["password", "passwd", "pwd", "secret", "key", "token", "credential"];

/// Connection-string attributes whose values are hidden inside any string value.
const SECRET_ATTRIBUTES: &[&str] = &["password=", "pwd="];

/// A copy of `value` safe to show: at any depth, the value of every key named like a
/// secret (password, pwd, secret, key, token, credential) becomes `"***"`, and so does the
/// value of a `PWD=`/`Password=` attribute inside a connection string.
pub fn redact_json(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let shown =
                        if is_secret_key(k) { Value::String(REDACTED.into()) } else { redact_json(v) };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_json).collect()),
        Value::String(s) => Value::String(redact_connection_string(s)),
        other => other.clone(),
    }
}

/// Whether a settings key names a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEY_PARTS.iter().any(|part| key.contains(part))
}

/// Whether `text` carries a `PWD=…` or `Password=…` attribute (an ODBC connection string with a password).
pub fn holds_password_attribute(text: &str) -> bool {
    redact_connection_string(text) != text
}

/// Hides the values of `PWD=…;` and `Password=…;` attributes (an ODBC connection string).
fn redact_connection_string(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while pos < text.len() {
        let next = SECRET_ATTRIBUTES
            .iter()
            .filter_map(|attr| {
                lower[pos..].find(attr).map(|i| (pos + i, attr.len())).filter(|&(start, _)| {
                    // Only at the start of an attribute, not inside another name (e.g. `xpwd=`).
                    start == 0 || matches!(text.as_bytes()[start - 1], b';' | b' ' | b'\t')
                })
            })
            .min();
        let Some((start, len)) = next else { break };
        let value_start = start + len;
        let value_end = if text[value_start..].starts_with('{') {
            text[value_start..].find('}').map_or(text.len(), |i| value_start + i + 1)
        } else {
            text[value_start..].find(';').map_or(text.len(), |i| value_start + i)
        };
        out.push_str(&text[pos..value_start]);
        out.push_str(REDACTED);
        pos = value_end;
    }
    out.push_str(&text[pos.min(text.len())..]);
    out
}

/// Converts a TOML table to a JSON object: datetimes become RFC 3339 strings,
/// non-finite floats become `null`.
pub(crate) fn toml_table_to_json(table: &toml::Table) -> Value {
    Value::Object(table.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect())
}

fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => toml_table_to_json(t),
    }
}
