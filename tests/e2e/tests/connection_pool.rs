//! The ODBC plugins' connection pool against PostgreSQL through psqlODBC: a
//! connection is reused only after its user finished cleanly, and is never left
//! inside a transaction between users.

use ledgerlink_e2e::{reader_password, settings_for};
use ledgerlink_fixtures::{Backend, Erp, Fixture, FixtureSpec};
use ledgerlink_odbc_common::{ConnectionPool, ConnectionSettings, Database, Row};
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_plugin_api::canonical::{DimensionType, RecordBatch};
use ledgerlink_plugin_api::sdk::Batches;

/// The server process behind a connection: equal ids mean the same connection.
fn backend(db: &Database) -> i64 {
    db.count("SELECT pg_backend_pid()").expect("pg_backend_pid")
}

/// The connection's state as the server sees it ("idle", "idle in transaction", …).
fn state(observer: &Database, backend: i64) -> Option<String> {
    let sql = format!("SELECT state FROM pg_stat_activity WHERE pid = {backend}");
    observer.query(&sql, |row| row.opt_string(0)).expect("pg_stat_activity").into_iter().flatten().next()
}

/// `SELECT` of `rows` numbers, streamed in blocks of the settings' `fetch_rows`.
fn numbers(db: Database, rows: usize) -> Batches {
    let sql = format!("SELECT g FROM generate_series(1, {rows}) g");
    let map = |row: &Row<'_>| {
        let id = row.required(0, "g")?.to_owned();
        Ok(DimensionType { name: id.clone(), source_key: id.clone(), id })
    };
    db.stream(&sql, map, RecordBatch::DimensionTypes, CancelFlag::new()).expect("stream starts")
}

fn count(batches: Batches) -> usize {
    batches.map(|b| b.expect("batch").len()).sum()
}

#[test]
fn a_pooled_connection_is_reused_only_after_its_user_finished_cleanly() {
    let fixture = Fixture::create(FixtureSpec::new(Erp::VismaBusiness, Backend::Postgres))
        .unwrap_or_else(|e| panic!("creating the fixture failed: {e}. Run scripts/setup first."));
    let settings = settings_for(Erp::VismaBusiness, &fixture, &reader_password());
    let mut settings: ConnectionSettings =
        serde_json::from_value(settings["connection"].clone()).expect("connection settings");
    settings.fetch_rows = 100;
    let database = fixture.info().system_database;
    let database = Some(database.as_str());
    let pool = ConnectionPool::default();
    let observer = Database::connect(&settings.for_small_results(), database).expect("observer connects");

    // A query, then dropped: the next user gets the same connection.
    let db = pool.connect(&settings, database).expect("connects");
    let first = backend(&db);
    drop(db);
    assert_eq!(pool.idle_count(), 1, "a cleanly used connection goes back to the pool");
    let db = pool.connect(&settings, database).expect("connects");
    assert_eq!(backend(&db), first, "the idle connection is reused");
    assert_eq!(pool.idle_count(), 0, "a connection in use is not idle");

    // A stream read to its end (ten blocks, through a server cursor) hands the
    // connection back outside any transaction.
    assert_eq!(count(numbers(db, 1000)), 1000);
    assert_eq!(pool.idle_count(), 1, "a stream read to its end returns its connection");
    assert_eq!(state(&observer, first).as_deref(), Some("idle"), "no transaction left open");
    let db = pool.connect(&settings, database).expect("connects");
    assert_eq!(backend(&db), first, "the stream's connection is reused");

    // A stream given up after its first block: that connection is closed.
    let mut batches = numbers(db, 1000);
    assert_eq!(batches.next().expect("a block").expect("batch").len(), 100);
    drop(batches);
    assert_eq!(pool.idle_count(), 0, "a stream not read to its end does not return its connection");
    let db = pool.connect(&settings, database).expect("connects");
    let second = backend(&db);
    assert_ne!(second, first, "a new connection replaces the abandoned one");

    // A failed statement: that connection is closed too.
    let error = db.count("SELECT COUNT(*) FROM no_such_table").expect_err("the table does not exist");
    assert!(error.to_string().contains("no_such_table"), "{error}");
    drop(db);
    assert_eq!(pool.idle_count(), 0, "a connection whose statement failed is not reused");

    // Other settings (another connection string) never share a connection.
    let db = pool.connect(&settings, database).expect("connects");
    let streaming = backend(&db);
    drop(db);
    let small = pool.connect(&settings.for_small_results(), database).expect("connects");
    assert_ne!(backend(&small), streaming, "settings differ, so does the connection");
    drop(small);
    assert_eq!(pool.idle_count(), 2);
}
