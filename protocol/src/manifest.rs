//! The snapshot manifest, its structural checks and the content-addressed snapshot id.

use crate::{PartFormat, PROTOCOL_VERSION};
use ledgerlink_plugin_api::canonical::{validate_company, Company, Entity};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// The plugin that produced a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    /// Plugin id (e.g. `visma-business`).
    pub id: String,
    /// Plugin version (semver).
    pub version: String,
}

/// One part of a snapshot: a zstd frame of records of one entity, in the manifest's `part_format`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartInfo {
    /// Entity of every record in the part.
    pub entity: Entity,
    /// Part number within the snapshot; the indexes are exactly `0..parts.len()`.
    pub index: u32,
    /// Number of records in the part.
    pub records: u64,
    /// Size of the compressed part in bytes.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the compressed bytes.
    pub sha256: String,
}

/// Everything the hub needs to know about one snapshot before its parts arrive.
///
/// A snapshot is all data of one company and fiscal year from one source.
/// Field order matters: it is the order of the canonical serialization
/// ([`canonical_manifest_bytes`]) that the snapshot id is computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`PROTOCOL_VERSION`] for this protocol.
    pub protocol_version: u32,
    /// The canonical schema version of the records (`canonical::SCHEMA_VERSION`).
    pub schema_version: u32,
    /// Stable id of the agent (host installation) that uploads.
    pub agent_id: String,
    /// Id of the configured source (one ERP database) within the agent.
    pub source_id: String,
    /// The plugin that extracted the data.
    pub plugin: PluginRef,
    /// The company the snapshot belongs to (canonical record).
    pub company: Company,
    /// The fiscal year the snapshot covers; one of `company.fiscal_years`.
    pub fiscal_year: i32,
    /// The plugin's change token for this company and year, when it has one.
    pub change_token: Option<String>,
    /// The parts, one entry per part.
    pub parts: Vec<PartInfo>,
    /// How every part encodes its records. Absent means NDJSON, and is left out
    /// of the canonical serialization then, so the ids of NDJSON snapshots stay
    /// what they were before formats existed.
    #[serde(default, skip_serializing_if = "PartFormat::is_ndjson")]
    pub part_format: PartFormat,
}

/// Limits the hub applies to a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestLimits {
    /// Largest compressed part accepted, in bytes.
    pub max_part_bytes: u64,
    /// Most parts one snapshot may have.
    pub max_parts: usize,
}

impl Default for ManifestLimits {
    fn default() -> Self {
        Self { max_part_bytes: 64 * 1024 * 1024, max_parts: 10_000 }
    }
}

/// A manifest that cannot be accepted, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// `protocol_version` is not one this code speaks.
    #[error("protocol_version {found} is not supported (supported: {PROTOCOL_VERSION})")]
    UnsupportedProtocolVersion {
        /// The version in the manifest.
        found: u32,
    },
    /// `schema_version` is not one the receiver knows.
    #[error("schema_version {found} is not supported (supported: {supported:?})")]
    UnsupportedSchemaVersion {
        /// The version in the manifest.
        found: u32,
        /// The versions the receiver knows.
        supported: Vec<u32>,
    },
    /// A required text field is empty.
    #[error("`{0}` is empty")]
    EmptyField(&'static str),
    /// The company record itself is invalid.
    #[error("company is invalid: {0}")]
    InvalidCompany(String),
    /// `fiscal_year` is not one of the company's fiscal years.
    #[error("fiscal_year {year} is not one of company `{company}`'s fiscal years (known: {known:?})")]
    UnknownFiscalYear {
        /// The manifest's year.
        year: i32,
        /// The company id.
        company: String,
        /// The years the company record lists.
        known: Vec<i32>,
    },
    /// The manifest has no parts or too many.
    #[error("the manifest has {count} parts; between 1 and {max} are allowed")]
    PartCount {
        /// Parts in the manifest.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Two parts share an index.
    #[error("part index {0} appears more than once")]
    DuplicatePartIndex(u32),
    /// The part indexes are not contiguous from 0.
    #[error("part index {missing} is missing (indexes must be 0..{count}, contiguous)")]
    MissingPartIndex {
        /// The first index that is missing.
        missing: u32,
        /// Number of parts in the manifest.
        count: usize,
    },
    /// A part's `sha256` is not 64 lowercase hex digits.
    #[error("part {index}: sha256 `{value}` is not 64 lowercase hex digits")]
    InvalidSha256 {
        /// The part index.
        index: u32,
        /// The value given.
        value: String,
    },
    /// A part's declared size is zero or above the limit.
    #[error("part {index}: bytes {bytes} is not allowed (must be 1..={max})")]
    PartSize {
        /// The part index.
        index: u32,
        /// The declared size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
}

impl ManifestError {
    /// Stable machine-readable error code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            ManifestError::UnsupportedProtocolVersion { .. } => "unsupported_protocol_version",
            ManifestError::UnsupportedSchemaVersion { .. } => "unsupported_schema_version",
            ManifestError::EmptyField(_) => "empty_field",
            ManifestError::InvalidCompany(_) => "invalid_company",
            ManifestError::UnknownFiscalYear { .. } => "unknown_fiscal_year",
            ManifestError::PartCount { .. } => "part_count",
            ManifestError::DuplicatePartIndex(_) => "duplicate_part_index",
            ManifestError::MissingPartIndex { .. } => "missing_part_index",
            ManifestError::InvalidSha256 { .. } => "invalid_sha256",
            ManifestError::PartSize { .. } => "part_size",
        }
    }
}

/// Checks a manifest's structure: versions, required fields, company, year and part list.
///
/// `schema_versions` are the canonical schema versions the caller accepts.
pub fn validate_manifest(
    manifest: &Manifest,
    schema_versions: &[u32],
    limits: &ManifestLimits,
) -> Result<(), ManifestError> {
    if manifest.protocol_version != PROTOCOL_VERSION {
        return Err(ManifestError::UnsupportedProtocolVersion { found: manifest.protocol_version });
    }
    if !schema_versions.contains(&manifest.schema_version) {
        return Err(ManifestError::UnsupportedSchemaVersion {
            found: manifest.schema_version,
            supported: schema_versions.to_vec(),
        });
    }
    for (name, value) in [
        ("agent_id", &manifest.agent_id),
        ("source_id", &manifest.source_id),
        ("plugin.id", &manifest.plugin.id),
        ("plugin.version", &manifest.plugin.version),
    ] {
        if value.trim().is_empty() {
            return Err(ManifestError::EmptyField(name));
        }
    }
    let problems = validate_company(&manifest.company);
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect();
        return Err(ManifestError::InvalidCompany(text.join("; ")));
    }
    if !manifest.company.fiscal_years.iter().any(|y| y.year == manifest.fiscal_year) {
        return Err(ManifestError::UnknownFiscalYear {
            year: manifest.fiscal_year,
            company: manifest.company.id.clone(),
            known: manifest.company.fiscal_years.iter().map(|y| y.year).collect(),
        });
    }
    let count = manifest.parts.len();
    if count == 0 || count > limits.max_parts {
        return Err(ManifestError::PartCount { count, max: limits.max_parts });
    }
    let mut seen = BTreeSet::new();
    for part in &manifest.parts {
        if !seen.insert(part.index) {
            return Err(ManifestError::DuplicatePartIndex(part.index));
        }
        if !is_sha256_hex(&part.sha256) {
            return Err(ManifestError::InvalidSha256 { index: part.index, value: part.sha256.clone() });
        }
        if part.bytes == 0 || part.bytes > limits.max_part_bytes {
            return Err(ManifestError::PartSize {
                index: part.index,
                bytes: part.bytes,
                max: limits.max_part_bytes,
            });
        }
    }
    if let Some(missing) = (0..count as u32).find(|i| !seen.contains(i)) {
        return Err(ManifestError::MissingPartIndex { missing, count });
    }
    Ok(())
}

fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The canonical serialization of a manifest that [`snapshot_id`] hashes.
///
/// Compact JSON (no whitespace) with object keys in the declared field order,
/// every field present (`null` for an absent optional) except a `part_format`
/// of NDJSON, and the parts sorted by `index`, so a re-ordered part list names
/// the same snapshot.
pub fn canonical_manifest_bytes(manifest: &Manifest) -> Vec<u8> {
    let mut sorted = manifest.clone();
    sorted.parts.sort_by_key(|p| p.index);
    serde_json::to_vec(&sorted).expect("a manifest always serializes")
}

/// The content-addressed id of a snapshot: lowercase hex SHA-256 of [`canonical_manifest_bytes`].
///
/// Uploading the same manifest again yields the same id, which is what makes
/// retries idempotent.
pub fn snapshot_id(manifest: &Manifest) -> String {
    hex(&Sha256::digest(canonical_manifest_bytes(manifest)))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgerlink_plugin_api::canonical::{FiscalYear, NaiveDate, SCHEMA_VERSION};

    pub(crate) fn example() -> Manifest {
        Manifest {
            protocol_version: 1,
            schema_version: SCHEMA_VERSION,
            agent_id: "agent-7f3c".into(),
            source_id: "visma-main".into(),
            plugin: PluginRef { id: "visma-business".into(), version: "1.2.0".into() },
            company: Company {
                id: "0001".into(),
                name: "Eksempel AS".into(),
                organisation_number: Some("999888777".into()),
                currency: "NOK".into(),
                fiscal_years: vec![FiscalYear {
                    year: 2025,
                    start: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
                    end: NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
                }],
                source_key: "Frm:1".into(),
            },
            fiscal_year: 2025,
            change_token: Some("lsn:4711".into()),
            parts: vec![
                PartInfo {
                    entity: Entity::Accounts,
                    index: 0,
                    records: 2,
                    bytes: 120,
                    sha256: "a".repeat(64),
                },
                PartInfo {
                    entity: Entity::VoucherLines,
                    index: 1,
                    records: 4,
                    bytes: 210,
                    sha256: "b".repeat(64),
                },
            ],
            part_format: PartFormat::Ndjson,
        }
    }

    #[test]
    fn canonical_bytes_are_compact_and_in_field_order() {
        let text = String::from_utf8(canonical_manifest_bytes(&example())).unwrap();
        assert!(
            text.starts_with(r#"{"protocol_version":1,"schema_version":1,"agent_id":"agent-7f3c","#),
            "{text}"
        );
        assert!(!text.contains(": ") && !text.contains(", ") && !text.contains('\n'), "{text}");
    }

    #[test]
    fn snapshot_id_is_stable_order_independent_and_content_sensitive() {
        let m = example();
        let id = snapshot_id(&m);
        assert_eq!(id.len(), 64);
        // Golden value: changing the canonical serialization breaks every agent's retries.
        assert_eq!(id, "b869b67b6fa79198cd9472e7959dcaf103807ac357c8c10326014d36296f05f9");
        let mut reordered = m.clone();
        reordered.parts.reverse();
        assert_eq!(snapshot_id(&reordered), id);
        let mut changed = m.clone();
        changed.parts[1].records = 5;
        assert_ne!(snapshot_id(&changed), id);
    }

    #[test]
    fn part_format_is_serialized_only_when_not_ndjson() {
        let ndjson = String::from_utf8(canonical_manifest_bytes(&example())).unwrap();
        assert!(!ndjson.contains("part_format"), "{ndjson}");
        let mut m = example();
        m.part_format = PartFormat::Postcard;
        let text = String::from_utf8(canonical_manifest_bytes(&m)).unwrap();
        assert!(text.ends_with(r#","part_format":"postcard"}"#), "{text}");
        assert_ne!(snapshot_id(&m), snapshot_id(&example()), "the format is part of the content");
        assert_eq!(serde_json::from_str::<Manifest>(&text).unwrap(), m);
        assert_eq!(serde_json::from_str::<Manifest>(&ndjson).unwrap(), example());

        let mut value = serde_json::to_value(example()).unwrap();
        value["part_format"] = serde_json::json!("parquet");
        let err = serde_json::from_value::<Manifest>(value).unwrap_err().to_string();
        assert!(err.contains("parquet") && err.contains("postcard"), "{err}");
    }

    #[test]
    fn structural_problems_are_named() {
        let limits = ManifestLimits::default();
        assert_eq!(validate_manifest(&example(), &[1], &limits), Ok(()));

        let mut m = example();
        m.schema_version = 99;
        let err = validate_manifest(&m, &[1], &limits).unwrap_err();
        assert_eq!(err.code(), "unsupported_schema_version");
        assert!(err.to_string().contains("99"), "{err}");

        let mut m = example();
        m.parts[1].index = 0;
        assert_eq!(validate_manifest(&m, &[1], &limits), Err(ManifestError::DuplicatePartIndex(0)));

        let mut m = example();
        m.parts[1].index = 2;
        assert_eq!(
            validate_manifest(&m, &[1], &limits),
            Err(ManifestError::MissingPartIndex { missing: 1, count: 2 })
        );

        let mut m = example();
        m.parts[0].sha256 = "A".repeat(64);
        assert_eq!(validate_manifest(&m, &[1], &limits).unwrap_err().code(), "invalid_sha256");

        let mut m = example();
        m.fiscal_year = 2024;
        let err = validate_manifest(&m, &[1], &limits).unwrap_err();
        assert!(err.to_string().contains("fiscal_year 2024"), "{err}");

        let mut m = example();
        m.parts[0].bytes = limits.max_part_bytes + 1;
        assert_eq!(validate_manifest(&m, &[1], &limits).unwrap_err().code(), "part_size");

        let mut m = example();
        m.company.currency = "KR".into();
        assert_eq!(validate_manifest(&m, &[1], &limits).unwrap_err().code(), "invalid_company");
    }

    #[test]
    fn unknown_manifest_fields_are_refused() {
        let mut value = serde_json::to_value(example()).unwrap();
        value["surprise"] = serde_json::json!(true);
        let err = serde_json::from_value::<Manifest>(value).unwrap_err().to_string();
        assert!(err.contains("surprise"), "{err}");
    }

    /// The first fenced block of kind `fence` after `marker` in docs/protocol.md.
    fn doc_block<'a>(doc: &'a str, marker: &str, fence: &str) -> &'a str {
        let at = doc.find(marker).unwrap_or_else(|| panic!("docs/protocol.md lacks `{marker}`"));
        let open = format!("```{fence}\n");
        let start = at + doc[at..].find(&open).expect("fenced block") + open.len();
        let end = start + doc[start..].find("```").expect("closing fence");
        doc[start..end].trim_end()
    }

    #[test]
    fn protocol_md_examples_match_the_code() {
        use ledgerlink_plugin_api::canonical::{Account, VoucherLine};
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md")).unwrap();

        let pretty: Manifest = serde_json::from_str(doc_block(&doc, "## 4. Manifest", "json")).unwrap();
        assert_eq!(pretty, example());
        let canonical = doc_block(&doc, "Canonical serialization of the example", "text");
        assert_eq!(canonical.as_bytes(), canonical_manifest_bytes(&example()).as_slice());
        let id = doc_block(&doc, "<!-- example-snapshot-id -->", "text");
        assert_eq!(id, snapshot_id(&example()));
        assert_eq!(id, hex(&Sha256::digest(canonical.as_bytes())));

        let mut accounts = Vec::new();
        for line in doc_block(&doc, "the NDJSON text of a part of `accounts`", "text").lines() {
            let account: Account = serde_json::from_str(line).unwrap();
            assert_eq!(serde_json::to_string(&account).unwrap(), line, "the example is canonical");
            accounts.push(account);
        }
        let batch = ledgerlink_plugin_api::canonical::RecordBatch::Accounts(accounts);
        let part = crate::encode_part(PartFormat::Postcard, &batch).unwrap();
        let raw = zstd::decode_all(&part.bytes[..]).unwrap();
        let postcard = doc_block(&doc, "the two accounts above as one postcard block", "text");
        assert_eq!(postcard.split_whitespace().collect::<String>(), hex(&raw));
        let line = doc_block(&doc, "Example `voucher_lines` line", "json");
        let parsed: VoucherLine = serde_json::from_str(line).unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), line, "the example is canonical");
    }
}
