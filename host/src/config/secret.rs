//! A string that must never be printed.

use serde::Deserialize;
use std::fmt;

/// A secret value (an API key, a password): `Debug` and `Display` print `***`.
///
/// Read the value with [`Secret::expose`], only where it is sent (an HTTP header),
/// never where it could be logged. There is deliberately no `Serialize`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value in clear, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty or only whitespace.
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
