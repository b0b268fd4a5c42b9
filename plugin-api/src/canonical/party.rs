//! Customers and suppliers.

use serde::{Deserialize, Serialize};

/// A business partner: a customer or a supplier (they share one shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// Customer or supplier number in the ERP.
    pub id: String,
    /// Name.
    pub name: String,
    /// Organisation number.
    pub organisation_number: Option<String>,
    /// Street address.
    pub street: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// City / postal area.
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Telephone.
    pub phone: Option<String>,
    /// ISO 4217 currency the party trades in.
    pub currency: Option<String>,
    /// Where the record came from in the ERP.
    pub source_key: String,
}

/// A customer.
pub type Customer = Party;

/// A supplier.
pub type Supplier = Party;
