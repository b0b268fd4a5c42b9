//! Connections kept open between a plugin instance's extractions.
//!
//! A plugin extracts entity after entity, and each extraction needs a
//! connection. Opening one costs a TCP handshake, the login (SCRAM on
//! PostgreSQL) and the driver's setup queries — about 25 round trips, which on
//! a real network between agent and ERP server cost more than a small entity's
//! rows. A [`ConnectionPool`] keeps a connection whose user finished cleanly and
//! hands it to the next user with the same connection string.

use crate::database::Database;
use crate::settings::ConnectionSettings;
use ledgerlink_plugin_api::PluginError;
use odbc_api::SharedConnection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most connections kept idle (a sync uses a company's connection for streams,
/// one for aggregates, one per lane and one to the system database).
const MAX_IDLE: usize = 8;

/// An idle connection older than this is closed instead of reused: the server
/// may have dropped it, and a plugin instance that lives between scheduled runs
/// should not hold the ERP server's connections.
const MAX_IDLE_AGE: Duration = Duration::from_secs(60);

/// The idle connections of one plugin instance, by connection string. Cloning
/// shares the pool.
#[derive(Clone, Default)]
pub struct ConnectionPool {
    idle: Arc<Mutex<Vec<Idle>>>,
}

struct Idle {
    /// The connection string it was opened with (it holds the password; never shown).
    key: String,
    connection: SharedConnection<'static>,
    since: Instant,
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnectionPool({} idle)", self.idle_count())
    }
}

impl ConnectionPool {
    /// A connection to `database` (or the login's default): an idle one opened
    /// with the same settings when there is one, else a new one.
    pub fn connect(
        &self,
        settings: &ConnectionSettings,
        database: Option<&str>,
    ) -> Result<Database, PluginError> {
        let key = settings.connection_string(database);
        let lease = match self.take(&key) {
            Some(connection) => Lease::new(connection, Some(self.home(key))),
            None => Lease::new(Database::open(settings, database)?, Some(self.home(key))),
        };
        Ok(Database::from_lease(lease, settings, database))
    }

    /// How many connections are idle now.
    pub fn idle_count(&self) -> usize {
        self.lock().len()
    }

    fn home(&self, key: String) -> Home {
        Home { pool: self.clone(), key }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest idle connection with this key; drops expired ones on the way.
    fn take(&self, key: &str) -> Option<SharedConnection<'static>> {
        let mut idle = self.lock();
        // Only the pool may hold an idle connection: one still referenced
        // elsewhere (a cursor not yet dropped) is given up, not shared.
        idle.retain(|i| i.since.elapsed() < MAX_IDLE_AGE && Arc::strong_count(&i.connection) == 1);
        let position = idle.iter().rposition(|i| i.key == key)?;
        Some(idle.remove(position).connection)
    }

    fn put_back(&self, key: String, connection: SharedConnection<'static>) {
        let mut idle = self.lock();
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle { key, connection, since: Instant::now() });
    }
}

/// Where a pooled connection goes back to.
struct Home {
    pool: ConnectionPool,
    key: String,
}

/// A connection in use, returned to its pool when dropped if its user finished
/// cleanly. A failed statement, or a stream not read to its end, may leave the
/// connection mid-transaction or mid-result, so such a connection is closed.
pub(crate) struct Lease {
    /// Always `Some` until dropped, when it moves into the pool.
    connection: Option<SharedConnection<'static>>,
    home: Option<Home>,
    reusable: AtomicBool,
}

impl Lease {
    fn new(connection: SharedConnection<'static>, home: Option<Home>) -> Self {
        Self { connection: Some(connection), home, reusable: AtomicBool::new(true) }
    }

    /// A connection of no pool: closed when dropped.
    pub(crate) fn unpooled(connection: SharedConnection<'static>) -> Self {
        Self::new(connection, None)
    }

    /// The pool the connection returns to, if any.
    pub(crate) fn pool(&self) -> Option<&ConnectionPool> {
        self.home.as_ref().map(|h| &h.pool)
    }

    pub(crate) fn connection(&self) -> &SharedConnection<'static> {
        self.connection.as_ref().expect("a lease holds its connection until it is dropped")
    }

    /// Whether the connection may go back to its pool when the lease ends.
    pub(crate) fn set_reusable(&self, reusable: bool) {
        self.reusable.store(reusable, Ordering::Relaxed);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Moved, not cloned: the pool never sees a second reference of its own
        // making, which it would take for a connection still in use.
        if let (Some(Home { pool, key }), Some(connection)) = (self.home.take(), self.connection.take()) {
            if self.reusable.load(Ordering::Relaxed) {
                pool.put_back(key, connection);
            }
        }
    }
}
