//! Wire types of the Ledgerlink upload protocol (filled in by the hub issue).
