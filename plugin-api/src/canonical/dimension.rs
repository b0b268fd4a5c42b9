//! Dimensions (SAF-T analysis types and IDs): departments, projects, cost units.

use serde::{Deserialize, Serialize};

/// A kind of dimension with the company's own label (e.g. "R1" labelled "Avdeling").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DimensionType {
    /// Stable id of the dimension within the source (e.g. "R1", "DepNo", "OcrCode2").
    pub id: String,
    /// Human label.
    pub name: String,
    /// Where the record came from in the ERP.
    pub source_key: String,
}

/// One value of a dimension (e.g. department 10 "Salg").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DimensionValue {
    /// The [`DimensionType::id`] this value belongs to.
    pub dimension_type: String,
    /// The value's code.
    pub id: String,
    /// Human label.
    pub name: String,
    /// Where the record came from in the ERP.
    pub source_key: String,
}

/// A voucher line's reference to a dimension value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DimensionRef {
    /// The [`DimensionType::id`].
    pub dimension_type: String,
    /// The [`DimensionValue::id`].
    pub value: String,
}
