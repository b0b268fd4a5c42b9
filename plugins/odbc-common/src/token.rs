//! Change tokens: a fingerprint of a company's fiscal year from cheap aggregates.

/// Builds a change token from labelled aggregate values (counts, sums, max stamps).
///
/// The token is the values joined in a fixed order with a version prefix, so it is
/// stable for unchanged data and readable in logs ("v1|lines=120|sum=0.00|…").
#[derive(Debug, Default)]
pub struct ChangeToken {
    parts: Vec<String>,
}

impl ChangeToken {
    /// A new token of the given format version.
    pub fn new(version: u32) -> Self {
        Self { parts: vec![format!("v{version}")] }
    }

    /// Adds one labelled value; NULL aggregates (empty tables) become `-`.
    pub fn push(mut self, label: &str, value: Option<&str>) -> Self {
        self.parts.push(format!("{label}={}", value.map(str::trim).unwrap_or("-")));
        self
    }

    /// The finished token.
    pub fn finish(self) -> String {
        self.parts.join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lists_values_in_order() {
        let token = ChangeToken::new(1).push("lines", Some("12")).push("max_change", None).finish();
        assert_eq!(token, "v1|lines=12|max_change=-");
    }
}
