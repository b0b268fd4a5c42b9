//! One ODBC connection: small queries, bounded streaming fetch, catalog lookups.

use crate::convert;
use crate::errors::{missing_table_error, odbc_error};
use crate::pool::{ConnectionPool, Lease};
use crate::settings::ConnectionSettings;
use crate::token::ChangeToken;
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_plugin_api::canonical::BatchWriter;
use ledgerlink_plugin_api::canonical::Decimal;
use ledgerlink_plugin_api::sdk::{Batches, EncodedBatch, EncodedBatches};
use ledgerlink_plugin_api::{ErrorKind, PluginError, RecordBatch};
use odbc_api::buffers::{BufferDesc, ColumnarDynBuffer, NullableSlice, TextColumnSlice, TextRowSet};
use odbc_api::{
    ConcurrentBlockCursor, ConnectionOptions, ConnectionTransitions, Cursor, OwnedCursor, ResultSetMetadata,
    SharedConnection,
};
use std::sync::{Arc, Mutex, MutexGuard};

/// The shortest buffer of a column, in bytes: enough for any number.
const MIN_TEXT_BYTES: usize = 48;

/// The longest text value fetched from one column, in bytes.
const MAX_TEXT_BYTES: usize = 4096;

/// A connection to one database of the ERP.
pub struct Database {
    lease: Lease,
    settings: ConnectionSettings,
    place: String,
}

/// One column of a fetched block.
enum Column<'a> {
    /// Fetched as text (`SQL_C_CHAR`).
    Text(TextColumnSlice<'a, u8>),
    /// Fetched as a 64-bit integer (`SQL_C_SBIGINT`): no formatting in the driver,
    /// no parsing here.
    Int(NullableSlice<'a, i64>),
}

/// The columns of a fetched block, as the buffer bound them.
fn block_columns(rows: &ColumnarDynBuffer) -> Vec<Column<'_>> {
    (0..rows.num_cols())
        .map(|c| match rows.column(c).as_nullable_slice::<i64>() {
            Some(ints) => Column::Int(ints),
            None => Column::Text(rows.column(c).as_text().expect("streamed columns are text or integers")),
        })
        .collect()
}

/// One row of a fetched block, with accessors by zero-based column.
pub struct Row<'a> {
    columns: &'a [Column<'a>],
    index: usize,
}

impl<'a> Row<'a> {
    /// The column's text, `None` for NULL. Integer-fetched columns are read with
    /// [`Row::int`] / [`Row::opt_int`] instead.
    pub fn text(&self, column: usize) -> Result<Option<&'a str>, PluginError> {
        match &self.columns[column] {
            Column::Text(values) => {
                values.get(self.index).map(std::str::from_utf8).transpose().map_err(|e| {
                    PluginError::new(
                        ErrorKind::DATA,
                        format!("column {} holds text that is not UTF-8: {e}", column + 1),
                        "Set the driver's client character set to UTF-8 (psqlODBC: use the Unicode driver).",
                    )
                })
            }
            Column::Int(_) => Err(PluginError::new(
                ErrorKind::INTERNAL,
                format!("column {} is fetched as a number and has no text", column + 1),
                "This is a bug in the plugin (it reads an integer column as text); report it to its vendor.",
            )),
        }
    }

    /// The column's text without surrounding blanks (CHAR padding); `None` for NULL or blank.
    pub fn trimmed(&self, column: usize) -> Result<Option<&'a str>, PluginError> {
        Ok(self.text(column)?.map(str::trim).filter(|s| !s.is_empty()))
    }

    /// The trimmed text, or an error naming `what` when NULL or blank.
    pub fn required(&self, column: usize, what: &str) -> Result<&'a str, PluginError> {
        self.trimmed(column)?.ok_or_else(|| empty(what))
    }

    /// The trimmed text as an owned string, `None` for NULL or blank.
    pub fn opt_string(&self, column: usize) -> Result<Option<String>, PluginError> {
        Ok(self.trimmed(column)?.map(str::to_owned))
    }

    /// A required whole number.
    pub fn int(&self, column: usize, what: &str) -> Result<i64, PluginError> {
        self.opt_int(column, what)?.ok_or_else(|| empty(what))
    }

    /// An optional whole number (NULL or blank is `None`).
    pub fn opt_int(&self, column: usize, what: &str) -> Result<Option<i64>, PluginError> {
        match &self.columns[column] {
            Column::Int(values) => Ok(values.get(self.index).copied()),
            Column::Text(_) => self.trimmed(column)?.map(|v| convert::int(v, what)).transpose(),
        }
    }

    /// A required exact decimal with the column's declared `scale`.
    pub fn decimal(&self, column: usize, scale: u32, what: &str) -> Result<Decimal, PluginError> {
        convert::decimal(self.required(column, what)?, scale, what)
    }

    /// An optional exact decimal.
    pub fn opt_decimal(&self, column: usize, scale: u32, what: &str) -> Result<Option<Decimal>, PluginError> {
        self.trimmed(column)?.map(|v| convert::decimal(v, scale, what)).transpose()
    }
}

fn empty(what: &str) -> PluginError {
    PluginError::new(ErrorKind::DATA, format!("{what} is empty"), "Fix the row in the ERP.")
}

impl Database {
    /// Connects to `database` (or the default database of the login / DSN); the
    /// connection is closed when dropped ([`ConnectionPool::connect`] keeps it).
    pub fn connect(settings: &ConnectionSettings, database: Option<&str>) -> Result<Self, PluginError> {
        Ok(Self::from_lease(Lease::unpooled(Self::open(settings, database)?), settings, database))
    }

    /// Opens a new connection.
    pub(crate) fn open(
        settings: &ConnectionSettings,
        database: Option<&str>,
    ) -> Result<SharedConnection<'static>, PluginError> {
        let place = settings.describe(database);
        let password = settings.password.as_ref().map(|p| p.expose());
        let environment =
            odbc_api::environment().map_err(|e| odbc_error(&e, "starting ODBC for", &place, password))?;
        let options =
            ConnectionOptions { login_timeout_sec: Some(settings.login_timeout_secs), packet_size: None };
        let connection = environment
            .connect_with_connection_string(&settings.connection_string(database), options)
            .map_err(|e| odbc_error(&e, "connecting to", &place, password))?;
        Ok(Arc::new(Mutex::new(connection)))
    }

    pub(crate) fn from_lease(lease: Lease, settings: &ConnectionSettings, database: Option<&str>) -> Self {
        Self { lease, settings: settings.clone(), place: settings.describe(database) }
    }

    /// The pool this connection returns to, if any.
    pub(crate) fn pool(&self) -> Option<ConnectionPool> {
        self.lease.pool().cloned()
    }

    /// The settings this connection was made with.
    pub(crate) fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    fn connection(&self) -> MutexGuard<'_, odbc_api::Connection<'static>> {
        self.lease.connection().lock().unwrap_or_else(|e| e.into_inner())
    }

    /// "database F0001 on erp-sql:1433", for messages.
    pub fn place(&self) -> &str {
        &self.place
    }

    fn fail(&self, doing: &str, error: &odbc_api::Error) -> PluginError {
        // A failed statement may leave a transaction open: never reuse the connection.
        self.lease.set_reusable(false);
        odbc_error(error, doing, &self.place, self.settings.password.as_ref().map(|p| p.expose()))
    }

    fn timeout(&self) -> Option<usize> {
        Some(self.settings.query_timeout_secs as usize).filter(|&s| s > 0)
    }

    /// Runs a statement that returns no rows we need (e.g. SQLite's ATTACH).
    pub fn execute(&self, sql: &str) -> Result<(), PluginError> {
        let result = self.connection().execute(sql, (), self.timeout()).map(|_| ());
        result.map_err(|e| self.fail("querying", &e))
    }

    /// The database product and version, e.g. "PostgreSQL 15.8".
    pub fn server_description(&self) -> String {
        let name = self.connection().database_management_system_name().unwrap_or_else(|_| "database".into());
        match self.query("SELECT 1", |_| Ok(())) {
            Ok(_) => name,
            Err(_) => format!("{name} (not answering queries)"),
        }
    }

    /// Runs a query returning one whole number (a count).
    pub fn count(&self, sql: &str) -> Result<i64, PluginError> {
        Ok(self.query(sql, |row| row.int(0, "count"))?.first().copied().unwrap_or(0))
    }

    /// Runs a query returning one row of aggregates and makes a change token of it,
    /// one labelled value per column.
    pub fn change_token(&self, sql: &str, labels: &[&str]) -> Result<String, PluginError> {
        let rows = self
            .query(sql, |row| (0..labels.len()).map(|i| row.opt_string(i)).collect::<Result<Vec<_>, _>>())?;
        let values = rows.into_iter().next().unwrap_or_default();
        let token =
            labels.iter().zip(values.iter()).fold(ChangeToken::new(1), |t, (l, v)| t.push(l, v.as_deref()));
        Ok(token.finish())
    }

    /// What `check()` of a plugin with a system database reports: the ERP, the
    /// database, the server product and how many companies `count_sql` finds.
    pub fn system_summary(&self, erp: &str, database: &str, count_sql: &str) -> Result<String, PluginError> {
        let companies = self.count(count_sql)?;
        Ok(format!("{erp} system database {database} ({}), {companies} companies", self.server_description()))
    }

    /// Fails with an error naming the first of `tables` that cannot be read.
    pub fn require_tables(&self, erp: &str, tables: &[&str]) -> Result<(), PluginError> {
        match tables.iter().find(|t| !self.can_read(t)) {
            Some(missing) => Err(missing_table_error(missing, erp, &self.place)),
            None => Ok(()),
        }
    }

    /// The schemas holding a table named `table` (case-insensitive), from the ODBC
    /// catalog functions (`SQLTables`), sorted.
    pub fn schemas_with_table(&self, table: &str) -> Result<Vec<String>, PluginError> {
        let connection = self.connection();
        let rows =
            connection.tables("", "%", "%", "TABLE").map_err(|e| self.fail("listing tables of", &e))?;
        let mut schemas = Vec::new();
        for row in rows {
            let row = row.map_err(|e| self.fail("listing tables of", &e))?;
            let name = row.table.as_str().ok().flatten().unwrap_or_default();
            if name.eq_ignore_ascii_case(table) {
                if let Some(schema) = row.schema.as_str().ok().flatten() {
                    schemas.push(schema.to_owned());
                }
            }
        }
        schemas.sort();
        schemas.dedup();
        Ok(schemas)
    }

    /// True when `SELECT … FROM table` works: the table exists and may be read.
    pub fn can_read(&self, table: &str) -> bool {
        let sql = format!("SELECT 1 FROM {table} WHERE 1 = 0");
        let readable = self.connection().execute(&sql, (), self.timeout()).is_ok();
        if !readable {
            self.lease.set_reusable(false);
        }
        readable
    }

    /// Runs a query and maps every row (for small results: companies, tokens).
    pub fn query<T>(
        &self,
        sql: &str,
        mut map: impl FnMut(&Row<'_>) -> Result<T, PluginError>,
    ) -> Result<Vec<T>, PluginError> {
        let connection = self.connection();
        let cursor = connection.execute(sql, (), self.timeout()).map_err(|e| self.fail("querying", &e))?;
        let Some(mut cursor) = cursor else { return Ok(Vec::new()) };
        let buffer =
            fetch_buffer(&self.settings, &mut cursor, &[]).map_err(|e| self.fail("reading from", &e))?;
        let mut block = cursor.bind_buffer(buffer).map_err(|e| self.fail("reading from", &e))?;
        let mut out = Vec::new();
        while let Some(rows) =
            block.fetch_with_truncation_check(true).map_err(|e| self.fail("reading from", &e))?
        {
            let columns = block_columns(rows);
            for index in 0..rows.num_rows() {
                // A row the caller rejects leaves the rest unread: the connection is closed.
                out.push(
                    map(&Row { columns: &columns, index }).inspect_err(|_| self.lease.set_reusable(false))?,
                );
            }
        }
        Ok(out)
    }

    /// Streams a query's rows as batches of canonical records. The stream owns the
    /// connection; every fetched block (bounded in rows and bytes) becomes one batch.
    pub fn stream<T, F>(
        self,
        sql: &str,
        map: F,
        wrap: fn(Vec<T>) -> RecordBatch,
        cancel: CancelFlag,
    ) -> Result<Batches, PluginError>
    where
        T: Send + 'static,
        F: FnMut(&Row<'_>) -> Result<T, PluginError> + Send + 'static,
    {
        self.stream_blocks(sql, &[], Records { map, wrap }, cancel)
    }

    /// [`Database::stream`], with `write` encoding each row straight into its batch
    /// (e.g. as a record borrowing the row's text): no owned record is built, and
    /// the batches need no encoding afterwards. The zero-based `integer_columns` are
    /// fetched as 64-bit integers: the driver does not format them and the plugin
    /// does not parse them (read them with [`Row::int`] / [`Row::opt_int`]).
    pub fn stream_encoded<T, F>(
        self,
        sql: &str,
        integer_columns: &[usize],
        write: F,
        wrap: fn(Vec<T>) -> RecordBatch,
        cancel: CancelFlag,
    ) -> Result<EncodedBatches, PluginError>
    where
        T: 'static,
        F: FnMut(&Row<'_>, &mut BatchWriter<T>) -> Result<(), PluginError> + Send + 'static,
    {
        self.stream_blocks(sql, integer_columns, Encoder { write, wrap, last_bytes: 0 }, cancel)
    }

    fn stream_blocks<S: BlockSink>(
        self,
        sql: &str,
        integer_columns: &[usize],
        sink: S,
        cancel: CancelFlag,
    ) -> Result<BlockStream<S::Batch>, PluginError> {
        let Database { lease, settings, place } = self;
        // Reusable again only once every row was read.
        lease.set_reusable(false);
        let password = settings.password.as_ref().map(|p| p.expose().to_owned());
        let fail = |e: &odbc_api::Error| odbc_error(e, "querying", &place, password.as_deref());
        let timeout = Some(settings.query_timeout_secs as usize).filter(|&s| s > 0);
        let mut cursor = match lease.connection().clone().into_cursor(sql, (), timeout) {
            Ok(Some(cursor)) => cursor,
            Ok(None) => {
                lease.set_reusable(true);
                return Ok(Box::new(std::iter::empty()));
            }
            Err(e) => return Err(fail(&e.error)),
        };
        let buffer = fetch_buffer(&settings, &mut cursor, integer_columns).map_err(|e| fail(&e))?;
        // Two buffers: the driver fills one on a fetch thread while the rows of the
        // other are converted, so the database and the conversion work at once.
        let spare = fetch_buffer(&settings, &mut cursor, integer_columns).map_err(|e| fail(&e))?;
        let block = cursor.bind_buffer(buffer).map_err(|e| fail(&e))?;
        let fetching = ConcurrentBlockCursor::from_block_cursor(block);
        Ok(Box::new(RowStream { fetching, spare, sink, cancel, place, password, done: false, lease }))
    }
}

/// The text lengths of the cursor's columns, at least [`MIN_TEXT_BYTES`]: drivers
/// report tiny sizes for computed columns (SQLite: 12 bytes for a SUM).
fn text_lengths(cursor: &mut impl ResultSetMetadata) -> Result<Vec<usize>, odbc_api::Error> {
    let probe = TextRowSet::for_cursor(1, cursor, Some(MAX_TEXT_BYTES))?;
    Ok((0..probe.num_cols()).map(|i| probe.max_len(i).max(MIN_TEXT_BYTES)).collect())
}

/// A fetch buffer for the cursor's columns: `integer_columns` as 64-bit integers,
/// the rest as text; at most `fetch_rows` rows and half of `fetch_buffer_bytes`
/// bytes (streams use two), whichever is smaller.
fn fetch_buffer(
    settings: &ConnectionSettings,
    cursor: &mut impl ResultSetMetadata,
    integer_columns: &[usize],
) -> Result<ColumnarDynBuffer, odbc_api::Error> {
    let descs: Vec<BufferDesc> = text_lengths(cursor)?
        .into_iter()
        .enumerate()
        .map(|(column, max_str_len)| match integer_columns.contains(&column) {
            true => BufferDesc::I64 { nullable: true },
            false => BufferDesc::Text { max_str_len },
        })
        .collect();
    // A text value needs its bytes and a terminating zero, an integer 8 bytes; each
    // value also has an 8-byte length indicator.
    let row_bytes: usize = descs
        .iter()
        .map(|d| match d {
            BufferDesc::Text { max_str_len } => max_str_len + 1 + 8,
            _ => 8 + 8,
        })
        .sum::<usize>()
        .max(1);
    let rows = (settings.fetch_buffer_bytes / 2 / row_bytes).clamp(1, settings.fetch_rows.max(1));
    ColumnarDynBuffer::try_from_descs(rows, descs)
}

/// A stream of one batch per fetched block.
type BlockStream<B> = Box<dyn Iterator<Item = Result<B, PluginError>> + Send>;

/// What a stream makes of each fetched block.
trait BlockSink: Send + 'static {
    /// One block's batch.
    type Batch;

    /// The batch of a block's `rows` rows.
    fn block(&mut self, columns: &[Column<'_>], rows: usize) -> Result<Self::Batch, PluginError>;
}

/// Blocks as batches of owned records, one per row.
struct Records<T, F> {
    map: F,
    wrap: fn(Vec<T>) -> RecordBatch,
}

impl<T, F> BlockSink for Records<T, F>
where
    T: Send + 'static,
    F: FnMut(&Row<'_>) -> Result<T, PluginError> + Send + 'static,
{
    type Batch = RecordBatch;

    fn block(&mut self, columns: &[Column<'_>], rows: usize) -> Result<RecordBatch, PluginError> {
        // Sized up front: collecting into a `Result` loses the size hint, and
        // growing by doubling copied every record several times (issue 9).
        let mut records = Vec::with_capacity(rows);
        for index in 0..rows {
            records.push((self.map)(&Row { columns, index })?);
        }
        Ok((self.wrap)(records))
    }
}

/// Blocks as encoded batches, each row written straight into its batch.
struct Encoder<T, F> {
    write: F,
    wrap: fn(Vec<T>) -> RecordBatch,
    /// The last batch's size: the next one starts with room for a bit more.
    last_bytes: usize,
}

impl<T, F> BlockSink for Encoder<T, F>
where
    T: 'static,
    F: FnMut(&Row<'_>, &mut BatchWriter<T>) -> Result<(), PluginError> + Send + 'static,
{
    type Batch = EncodedBatch;

    fn block(&mut self, columns: &[Column<'_>], rows: usize) -> Result<EncodedBatch, PluginError> {
        let mut batch = BatchWriter::new(self.wrap, self.last_bytes + self.last_bytes / 8);
        for index in 0..rows {
            (self.write)(&Row { columns, index }, &mut batch)?;
        }
        self.last_bytes = batch.body_len();
        Ok(batch.finish())
    }
}

/// The iterator behind [`Database::stream`] and [`Database::stream_encoded`].
struct RowStream<S> {
    fetching: ConcurrentBlockCursor<OwnedCursor<SharedConnection<'static>>, ColumnarDynBuffer>,
    spare: ColumnarDynBuffer,
    sink: S,
    cancel: CancelFlag,
    place: String,
    password: Option<String>,
    done: bool,
    /// Declared last, so dropped after the cursor: the connection goes back to its
    /// pool only when no statement holds it.
    lease: Lease,
}

impl<S: BlockSink> Iterator for RowStream<S> {
    type Item = Result<S::Batch, PluginError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.cancel.is_cancelled() {
            self.done = true;
            return Some(Err(PluginError::new(ErrorKind::CANCELLED, "extraction cancelled by the host", "")));
        }
        let result = match self.fetching.fetch_into(&mut self.spare) {
            Ok(true) => self.sink.block(&block_columns(&self.spare), self.spare.num_rows()),
            Ok(false) => {
                self.done = true;
                self.lease.set_reusable(true);
                return None;
            }
            Err(e) => Err(odbc_error(&e, "reading from", &self.place, self.password.as_deref())),
        };
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }
}
