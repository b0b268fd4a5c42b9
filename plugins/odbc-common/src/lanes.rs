//! Lanes: one large ordered read split into key ranges, read over parallel connections.
//!
//! A single ODBC stream is latency-bound: the driver waits for the server's next
//! block, the server waits for the driver's next `FETCH`, and the server sorts
//! the whole result before the first row. With lanes each key range has its own
//! connection (and its own sort), so the server and the driver work on several at
//! once. The output is exactly the single query's, in order: lane 0 streams
//! straight through; every later lane writes its rows into encoded batches on
//! its own thread and spills them to an unlinked temporary file, whose bytes are
//! passed on as they are when its turn comes. The fetch budget (`fetch_rows`,
//! `fetch_buffer_bytes`) is shared among the lanes, so memory stays what one
//! connection would use.

use crate::{Database, Row};
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_plugin_api::canonical::BatchWriter;
use ledgerlink_plugin_api::sdk::{EncodedBatch, EncodedBatches};
use ledgerlink_plugin_api::{Entity, ErrorKind, PluginError, RecordBatch};
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// What a spilling lane tells the reader.
enum Note {
    /// A batch of this many bytes was appended to the lane's file.
    Batch(u64),
    /// The lane read all its rows.
    Done,
}

/// State shared by the reader and the lanes' threads.
#[derive(Default)]
struct Shared {
    /// The first error of any lane, reported at the reader's next batch.
    failed: Mutex<Option<PluginError>>,
    /// Set when the reader is dropped: lanes stop after their current block.
    stop: AtomicBool,
}

impl Shared {
    fn fail(&self, error: PluginError) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.get_or_insert(error);
    }

    fn take_failure(&self) -> Option<PluginError> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A later lane, as the reader sees it: its spill file and its notes.
struct SpilledLane {
    lane: usize,
    /// The entity of the lane's batches, which are passed on as they were spilled.
    entity: Entity,
    file: File,
    notes: Receiver<Note>,
    offset: u64,
}

/// What a laned read reads.
pub struct LaneRead<'a> {
    /// The database to connect each lane to (`None`: the login's default).
    pub database: Option<&'a str>,
    /// One query per lane, each a key range, in output order.
    pub queries: Vec<String>,
    /// Zero-based columns fetched as integers (see [`Database::stream_encoded`]).
    pub integer_columns: &'static [usize],
}

/// Streams the lanes' queries as one ordered stream of encoded batches, over one
/// connection per query; a single query is streamed over `db` itself, more
/// queries each get a connection (to `read.database`, from `db`'s pool if it
/// has one) with its share of the fetch budget. `writer(lane)` makes the row
/// writer of a lane (see [`Database::stream_encoded`]); lanes never share a key,
/// so per-key state (a voucher's line numbers) stays within one writer. A
/// spilled lane's bytes are passed on as they were written.
pub fn stream_lanes<T, F>(
    db: Database,
    read: LaneRead<'_>,
    mut writer: impl FnMut(usize) -> F,
    wrap: fn(Vec<T>) -> RecordBatch,
    cancel: CancelFlag,
) -> Result<EncodedBatches, PluginError>
where
    T: 'static,
    F: FnMut(&Row<'_>, &mut BatchWriter<T>) -> Result<(), PluginError> + Send + 'static,
{
    let LaneRead { database, mut queries, integer_columns } = read;
    if queries.len() <= 1 {
        let query = queries.pop().unwrap_or_default();
        return db.stream_encoded(&query, integer_columns, writer(0), wrap, cancel);
    }
    let entity = wrap(Vec::new()).entity();
    let lanes = queries.len();
    let lane_settings = db.settings().shared_by(lanes);
    // `db`'s pool, or one for this read only (closed with its last lane).
    let pool = db.pool().unwrap_or_default();
    // Back to its pool (if any) before the lanes connect: a lane may reuse it.
    drop(db);
    let shared = Arc::new(Shared::default());
    // A later lane reads on its own thread and spills to an unlinked file.
    let start_lane = |lane: usize, query: String, write: F| -> Result<SpilledLane, PluginError> {
        let file = tempfile::tempfile().map_err(|e| spill_error(lane, &e))?;
        let spill_reader = file.try_clone().map_err(|e| spill_error(lane, &e))?;
        let (notes, received) = mpsc::channel();
        let (settings, database) = (lane_settings.clone(), database.map(str::to_owned));
        let (shared, cancel, pool) = (shared.clone(), cancel.clone(), pool.clone());
        std::thread::Builder::new()
            .name(format!("lane-{lane}"))
            .spawn(move || {
                let run = || {
                    let db = pool.connect(&settings, database.as_deref())?;
                    let batches = db.stream_encoded(&query, integer_columns, write, wrap, cancel)?;
                    spill(lane, batches, file, &notes, &shared)
                };
                if let Err(error) = run() {
                    shared.fail(error);
                }
            })
            .map_err(|e| {
                PluginError::new(
                    ErrorKind::INTERNAL,
                    format!("lane {lane} could not start a thread: {e}"),
                    "The machine is out of threads or memory; set `lanes = 1` to read over one connection.",
                )
            })?;
        Ok(SpilledLane { lane, entity, file: spill_reader, notes: received, offset: 0 })
    };
    // The later lanes start first: the server sorts a lane's whole range before
    // its first row, and lane 0 waits for its own sort below, so the sorts run
    // side by side instead of one after the other (issue 9: one core stood idle
    // for a second at the start of every year).
    let mut queries = queries.into_iter();
    let first_query = queries.next().unwrap_or_default();
    let started: Result<Vec<SpilledLane>, PluginError> =
        queries.enumerate().map(|(index, query)| start_lane(index + 1, query, writer(index + 1))).collect();
    let first = started.and_then(|spilled| {
        let db = pool.connect(&lane_settings, database)?;
        let first = db.stream_encoded(&first_query, integer_columns, writer(0), wrap, cancel.clone())?;
        Ok((first, spilled))
    });
    match first {
        Ok((first, spilled)) => Ok(Box::new(LaneReader {
            first: Some(first),
            spilled: spilled.into_iter(),
            current: None,
            shared,
            done: false,
        })),
        Err(error) => {
            // The lanes already started stop after their current block.
            shared.stop.store(true, Ordering::Relaxed);
            Err(error)
        }
    }
}

/// Writes a lane's batches to its file, one note per batch.
fn spill(
    lane: usize,
    batches: EncodedBatches,
    file: File,
    notes: &Sender<Note>,
    shared: &Shared,
) -> Result<(), PluginError> {
    // Positional writes: the reader's handle shares the file (and, on Windows,
    // its position), so neither side may rely on a cursor.
    let mut end = 0u64;
    for batch in batches {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // One write per batch (a batch is tens of KB), visible to the reader at once.
        let bytes = batch?.into_bytes();
        write_at(&file, &bytes, end).map_err(|e| spill_error(lane, &e))?;
        end += bytes.len() as u64;
        if notes.send(Note::Batch(bytes.len() as u64)).is_err() {
            return Ok(());
        }
    }
    let _ = notes.send(Note::Done);
    Ok(())
}

fn spill_error(lane: usize, error: &dyn std::fmt::Display) -> PluginError {
    PluginError::new(
        ErrorKind::INTERNAL,
        format!("lane {lane} could not use its temporary file in {}: {error}", std::env::temp_dir().display()),
        "Check that the temporary folder (TMPDIR) is writable and has room, or set `lanes = 1` to read over one connection.",
    )
}

/// The ordered stream: lane 0 as it is read, then each spilled lane in turn.
struct LaneReader {
    first: Option<EncodedBatches>,
    spilled: std::vec::IntoIter<SpilledLane>,
    current: Option<SpilledLane>,
    shared: Arc<Shared>,
    done: bool,
}

impl LaneReader {
    fn fail(&mut self, error: PluginError) -> Option<Result<EncodedBatch, PluginError>> {
        self.finish();
        Some(Err(error))
    }

    /// Ends the read; lanes still running stop after their current block.
    fn finish(&mut self) {
        self.done = true;
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    /// The next batch of a spilled lane, `None` when it is done.
    fn next_spilled(&mut self) -> Option<Result<EncodedBatch, PluginError>> {
        loop {
            let Some(spilled) = &mut self.current else {
                self.current = Some(self.spilled.next()?);
                continue;
            };
            let lane = spilled.lane;
            match spilled.notes.recv() {
                Ok(Note::Batch(length)) => {
                    let mut bytes = vec![0u8; length as usize];
                    let read = read_at(&spilled.file, &mut bytes, spilled.offset);
                    spilled.offset += length;
                    let entity = spilled.entity;
                    return Some(
                        read.map(|()| EncodedBatch::from_encoded(entity, bytes))
                            .map_err(|e| spill_error(lane, &e)),
                    );
                }
                Ok(Note::Done) => self.current = None,
                Err(_) => {
                    // The lane's thread ended without finishing: it failed (or panicked).
                    let error = self.shared.take_failure().unwrap_or_else(|| {
                        PluginError::new(
                            ErrorKind::INTERNAL,
                            "a lane of the parallel read stopped unexpectedly",
                            "Report this to the plugin's vendor; `lanes = 1` reads over one connection.",
                        )
                    });
                    return Some(Err(error));
                }
            }
        }
    }
}

impl Iterator for LaneReader {
    type Item = Result<EncodedBatch, PluginError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(error) = self.shared.take_failure() {
            return self.fail(error);
        }
        if let Some(first) = &mut self.first {
            match first.next() {
                Some(Ok(batch)) => return Some(Ok(batch)),
                Some(Err(error)) => return self.fail(error),
                None => self.first = None,
            }
        }
        match self.next_spilled() {
            Some(Ok(batch)) => Some(Ok(batch)),
            Some(Err(error)) => self.fail(error),
            None => {
                self.finish();
                None
            }
        }
    }
}

impl Drop for LaneReader {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset)? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            n => {
                buf = &buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}
