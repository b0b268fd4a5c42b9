//! Connection settings and the ODBC connection string built from them.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// A secret string: its `Debug` and `Display` never show the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for building a connection string.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// How to reach the ERP's database server: the `connection` object of a plugin's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSettings {
    /// The ODBC driver's name as registered with the driver manager, e.g.
    /// "ODBC Driver 18 for SQL Server", "PostgreSQL Unicode", "SQLite3".
    pub driver: Option<String>,
    /// A configured data source name, instead of `driver` + `server`.
    pub dsn: Option<String>,
    /// Host name or address of the database server.
    pub server: Option<String>,
    /// TCP port of the database server.
    pub port: Option<u16>,
    /// Login name (use a read-only login).
    pub user: Option<String>,
    /// Password of the login; never logged.
    pub password: Option<Secret>,
    /// SQLite only: the folder holding the database files (database `X` is `X.db`).
    pub directory: Option<PathBuf>,
    /// Further connection-string attributes, e.g. `{"Encrypt": "yes"}`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Seconds a single query may run before it is cancelled.
    #[serde(default = "default_query_timeout")]
    pub query_timeout_secs: u64,
    /// Seconds a login may take.
    #[serde(default = "default_login_timeout")]
    pub login_timeout_secs: u32,
    /// Rows fetched per round trip (at most; `fetch_buffer_bytes` may lower it).
    #[serde(default = "default_fetch_rows")]
    pub fetch_rows: usize,
    /// Upper bound of the two fetch buffers together, in bytes.
    #[serde(default = "default_fetch_buffer_bytes")]
    pub fetch_buffer_bytes: usize,
    /// Parallel connections for a large ordered read (a year's ledger lines), each
    /// reading one key range; the fetch budget above is shared among them.
    #[serde(default = "default_lanes")]
    pub lanes: usize,
    /// Fewest rows per lane: a smaller read uses fewer lanes (down to one).
    #[serde(default = "default_lane_min_rows")]
    pub lane_min_rows: u64,
    /// Set by [`ConnectionSettings::for_small_results`]; not a setting.
    #[serde(skip)]
    small_results: bool,
}

fn default_query_timeout() -> u64 {
    600
}
fn default_login_timeout() -> u32 {
    15
}
fn default_fetch_rows() -> usize {
    10_000
}
fn default_fetch_buffer_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_lanes() -> usize {
    2
}
fn default_lane_min_rows() -> u64 {
    100_000
}

/// The database products whose drivers need different connection strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Microsoft SQL Server (ODBC Driver 17/18, FreeTDS).
    SqlServer,
    /// PostgreSQL (psqlODBC).
    Postgres,
    /// SQLite (sqliteodbc).
    Sqlite,
    /// Anything else: generic attributes only.
    Other,
}

impl ConnectionSettings {
    /// The JSON Schema of these settings, for a plugin's settings schema.
    pub fn json_schema() -> ledgerlink_plugin_api::sdk::JsonValue {
        ledgerlink_plugin_api::sdk::json!({
            "type": "object",
            "additionalProperties": false,
            "description": "How to reach the ERP's database server over ODBC",
            "properties": {
                "driver": {"type": "string", "description": "ODBC driver name, e.g. \"ODBC Driver 18 for SQL Server\""},
                "dsn": {"type": "string", "description": "A configured data source name (instead of driver + server)"},
                "server": {"type": "string", "description": "Database server host name or address"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "user": {"type": "string", "description": "Login (read-only)"},
                "password": {"type": "string", "writeOnly": true, "description": "Password of the login; never logged"},
                "directory": {"type": "string", "description": "SQLite only: folder of the database files"},
                "options": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Further connection-string attributes"},
                "query_timeout_secs": {"type": "integer", "minimum": 0, "default": 600},
                "login_timeout_secs": {"type": "integer", "minimum": 0, "default": 15},
                "fetch_rows": {"type": "integer", "minimum": 1, "default": 10000},
                "fetch_buffer_bytes": {"type": "integer", "minimum": 1024, "default": 4194304},
                "lanes": {"type": "integer", "minimum": 1, "maximum": 16, "default": 2, "description": "Parallel connections for a year's ledger lines, each reading a key range"},
                "lane_min_rows": {"type": "integer", "minimum": 1, "default": 100000, "description": "Fewest rows per lane; smaller years use fewer lanes"}
            }
        })
    }

    /// How many lanes a read of about `rows` rows uses: at most `lanes`, each with
    /// at least `lane_min_rows` rows, never fewer than one.
    pub fn lanes_for(&self, rows: u64) -> usize {
        let by_size = usize::try_from(rows / self.lane_min_rows.max(1)).unwrap_or(usize::MAX);
        self.lanes.min(by_size).max(1)
    }

    /// The settings of one of `lanes` connections reading at once: the fetch
    /// budget (rows per round trip, buffer bytes) divided among them.
    pub fn shared_by(&self, lanes: usize) -> Self {
        let lanes = lanes.max(1);
        Self {
            fetch_rows: (self.fetch_rows / lanes).max(1),
            fetch_buffer_bytes: (self.fetch_buffer_bytes / lanes).max(1024),
            ..self.clone()
        }
    }

    /// The settings of a connection that only runs queries with a few result rows
    /// (aggregates such as change tokens). psqlODBC then sends a query as it is
    /// instead of through a server cursor, so PostgreSQL may plan it in parallel
    /// (it never does for a cursor). Never stream a large result over such a
    /// connection: without the cursor the driver holds the whole result in memory.
    pub fn for_small_results(&self) -> Self {
        Self { small_results: true, ..self.clone() }
    }

    /// The dialect, from the driver name (or `Other` for a DSN).
    pub fn dialect(&self) -> Dialect {
        let driver = self.driver.as_deref().unwrap_or_default().to_ascii_lowercase();
        if driver.contains("sql server") || driver.contains("freetds") {
            Dialect::SqlServer
        } else if driver.contains("postgres") || driver.contains("psql") {
            Dialect::Postgres
        } else if driver.contains("sqlite") {
            Dialect::Sqlite
        } else {
            Dialect::Other
        }
    }

    /// A short description of where the data lives, for messages (no secrets).
    pub fn describe(&self, database: Option<&str>) -> String {
        let place = match (&self.dsn, &self.server, &self.directory) {
            (Some(dsn), _, _) => format!("DSN {dsn}"),
            (None, Some(server), _) => match self.port {
                Some(port) => format!("{server}:{port}"),
                None => server.clone(),
            },
            (None, None, Some(dir)) => dir.display().to_string(),
            _ => "the configured server".to_owned(),
        };
        match database {
            Some(db) => format!("database {db} on {place}"),
            None => place,
        }
    }

    /// The connection string for `database`, with the password in it.
    pub fn connection_string(&self, database: Option<&str>) -> String {
        self.build(database, true)
    }

    /// The same string with the password replaced by `***`, safe for logs.
    pub fn redacted_connection_string(&self, database: Option<&str>) -> String {
        self.build(database, false)
    }

    fn build(&self, database: Option<&str>, with_password: bool) -> String {
        let mut attrs: Vec<(String, String)> = Vec::new();
        let mut push = |k: &str, v: String| attrs.push((k.to_owned(), v));
        if let Some(dsn) = &self.dsn {
            push("DSN", dsn.clone());
        } else if let Some(driver) = &self.driver {
            push("Driver", driver.clone());
        }
        let dialect = self.dialect();
        match dialect {
            Dialect::Sqlite => {
                if let (Some(dir), Some(db)) = (&self.directory, database) {
                    push("Database", dir.join(format!("{db}.db")).display().to_string());
                }
            }
            Dialect::SqlServer => {
                if let Some(server) = &self.server {
                    let server = match self.port {
                        Some(port) => format!("{server},{port}"),
                        None => server.clone(),
                    };
                    push("Server", server);
                }
                if let Some(db) = database {
                    push("Database", db.to_owned());
                }
            }
            Dialect::Postgres | Dialect::Other => {
                if let Some(server) = &self.server {
                    push("Server", server.clone());
                }
                if let Some(port) = self.port {
                    push("Port", port.to_string());
                }
                if let Some(db) = database {
                    push("Database", db.to_owned());
                }
            }
        }
        if let Some(user) = &self.user {
            push("UID", user.clone());
        }
        if let Some(password) = &self.password {
            push("PWD", if with_password { password.expose().to_owned() } else { "***".to_owned() });
        }
        if dialect == Dialect::Postgres && !self.small_results {
            // psqlODBC buffers a whole result set in memory unless told to use a
            // cursor; with it, memory stays flat at the same speed.
            if !self.options.keys().any(|k| k.eq_ignore_ascii_case("UseDeclareFetch")) {
                push("UseDeclareFetch", "1".into());
                push("Fetch", self.fetch_rows.to_string());
            }
        }
        for (key, value) in &self.options {
            attrs.push((key.clone(), value.clone()));
        }
        attrs.iter().map(|(k, v)| format!("{k}={};", escape(v))).collect()
    }
}

/// Escapes an attribute value: values with `;`, braces or outer spaces go in braces,
/// with `}` doubled, as ODBC requires.
pub(crate) fn escape(value: &str) -> String {
    let needs = value.contains([';', '{', '}']) || value.starts_with(' ') || value.ends_with(' ');
    if needs {
        format!("{{{}}}", value.replace('}', "}}"))
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> ConnectionSettings {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn lanes_follow_the_read_size_and_share_the_fetch_budget() {
        let s = settings(r#"{"driver":"PostgreSQL Unicode","fetch_rows":10000}"#);
        assert_eq!((s.lanes, s.lane_min_rows), (2, 100_000), "defaults");
        assert_eq!(s.lanes_for(0), 1);
        assert_eq!(s.lanes_for(199_999), 1, "two lanes need 100 000 rows each");
        assert_eq!(s.lanes_for(200_000), 2);
        assert_eq!(s.lanes_for(u64::MAX), 2, "never more than configured");
        let lane = s.shared_by(2);
        assert_eq!((lane.fetch_rows, lane.fetch_buffer_bytes), (5_000, s.fetch_buffer_bytes / 2));
        assert!(lane.connection_string(None).contains("Fetch=5000;"), "each connection fetches its share");
        let tiny =
            settings(r#"{"dsn":"x","fetch_rows":1,"fetch_buffer_bytes":1024,"lanes":0,"lane_min_rows":0}"#);
        assert_eq!(tiny.lanes_for(1_000_000), 1, "0 lanes reads as one");
        assert_eq!((tiny.shared_by(4).fetch_rows, tiny.shared_by(4).fetch_buffer_bytes), (1, 1024));
    }

    #[test]
    fn values_with_separators_are_braced() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a;b"), "{a;b}");
        assert_eq!(escape("x}y"), "{x}}y}");
        assert_eq!(escape(" padded"), "{ padded}");
    }

    #[test]
    fn postgres_string_has_declare_fetch_and_redacts_password() {
        let s = settings(
            r#"{"driver":"PostgreSQL Unicode","server":"db","port":5432,"user":"r","password":"p;w}d"}"#,
        );
        assert_eq!(s.dialect(), Dialect::Postgres);
        let full = s.connection_string(Some("F0001"));
        assert_eq!(
            full,
            "Driver=PostgreSQL Unicode;Server=db;Port=5432;Database=F0001;UID=r;PWD={p;w}}d};UseDeclareFetch=1;Fetch=10000;"
        );
        let redacted = s.redacted_connection_string(Some("F0001"));
        assert!(redacted.contains("PWD=***;") && !redacted.contains("p;w"), "{redacted}");
        assert!(!format!("{s:?}").contains("p;w"));
    }

    #[test]
    fn small_result_connections_have_no_cursor_unless_the_options_ask_for_one() {
        let s = settings(r#"{"driver":"PostgreSQL Unicode","server":"db","user":"r"}"#);
        assert!(s.connection_string(None).contains("UseDeclareFetch=1;"));
        let small = s.for_small_results();
        assert_eq!(small.connection_string(None), "Driver=PostgreSQL Unicode;Server=db;UID=r;");
        assert!(small.for_small_results().shared_by(2).small_results, "derived settings keep it");
        let pinned = settings(r#"{"driver":"PostgreSQL Unicode","options":{"UseDeclareFetch":"1"}}"#);
        assert!(
            pinned.for_small_results().connection_string(None).contains("UseDeclareFetch=1;"),
            "an explicit option is the customer's choice"
        );
        let mssql = settings(r#"{"driver":"ODBC Driver 18 for SQL Server","server":"erp"}"#);
        assert_eq!(mssql.for_small_results().connection_string(None), mssql.connection_string(None));
    }

    #[test]
    fn sql_server_joins_port_with_a_comma_and_sqlite_maps_databases_to_files() {
        let mssql = settings(
            r#"{"driver":"ODBC Driver 18 for SQL Server","server":"erp","port":1433,"options":{"Encrypt":"yes"}}"#,
        );
        assert_eq!(
            mssql.connection_string(Some("F0001")),
            "Driver=ODBC Driver 18 for SQL Server;Server=erp,1433;Database=F0001;Encrypt=yes;"
        );
        let sqlite = settings(r#"{"driver":"SQLite3","directory":"/data/erp"}"#);
        assert_eq!(sqlite.connection_string(Some("vbsys")), "Driver=SQLite3;Database=/data/erp/vbsys.db;");
    }

    #[test]
    fn unknown_settings_are_refused() {
        let err = serde_json::from_str::<ConnectionSettings>(r#"{"drvier":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("drvier"));
    }
}
