//! The Ledgerlink hub (filled in by the hub issue).
fn main() {}
