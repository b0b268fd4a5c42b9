//! Plugins in supervised worker processes.
//!
//! A job's plugin runs in a child process (`ledgerlink plugin-worker PATH`) that
//! streams batches to the host over a pipe ([`protocol`]). The host supervises
//! it: a worker that dies (signal, abort, non-zero exit), makes no progress for
//! the configured time, or grows past its memory limit is killed and the job
//! fails with the reason; every other job keeps running. One worker per job: a
//! replaced plugin file is used by the next job, a crash or leak ends with it.
//! See `docs/decisions/0011-worker-processes.md`.

mod child;
#[cfg(windows)]
mod job_object;
pub mod protocol;

pub use child::run_worker_child;

use crate::plugins::{describe_exit_status, BatchBytes, BatchIter, Extractor, RawBatches, SourceError};
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_plugin_api::canonical::{decode_companies, Company, Entity};
use ledgerlink_plugin_api::sdk::Manifest;
use ledgerlink_plugin_api::{ErrorKind, PluginError};
use protocol::{decode, read_frame, write_message, Request, Response, KIND_BATCH, PROTOCOL_VERSION};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The hidden `ledgerlink` subcommand that runs a worker.
pub const WORKER_SUBCOMMAND: &str = "plugin-worker";

/// Limits a worker runs under.
#[derive(Debug, Clone, Copy)]
pub struct WorkerLimits {
    /// A request that produces nothing for this long kills the worker.
    pub stall: Duration,
    /// Resident memory above this kills the worker (Linux: the watchdog; Windows: a Job Object).
    pub memory_bytes: Option<u64>,
}

/// The watchdog's view of a worker.
struct Watch {
    started: Instant,
    /// Milliseconds since `started` of the last frame received.
    last_progress: AtomicU64,
    /// A request is waiting for the worker.
    waiting: AtomicBool,
    /// Why the watchdog killed the worker, if it did.
    killed_because: Mutex<Option<String>>,
    stop: AtomicBool,
}

impl Watch {
    fn progressed(&self) {
        self.last_progress.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

type Frame = (u8, Vec<u8>);

struct Inner {
    plugin: String,
    job: String,
    child: Mutex<Child>,
    stdin: Mutex<ChildStdin>,
    frames: Mutex<Receiver<Frame>>,
    watch: Arc<Watch>,
    /// An extraction's frames may still be in the pipe.
    extracting: AtomicBool,
    /// The call the worker died in, once it has: later calls name it.
    died_during: Mutex<Option<String>>,
    /// Windows: the Job Object that limits the worker and kills it with the host.
    #[cfg(windows)]
    _job: job_object::WorkerJob,
}

/// A plugin source running in a worker process.
pub struct WorkerSource {
    inner: Arc<Inner>,
    manifest: Manifest,
}

/// Resident memory of a process in bytes (Linux).
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 =
        status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Re-logs a worker's stderr line (JSON from the worker's tracing, or raw text).
fn relog(plugin: &str, job: &str, line: &str) {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(event) => {
            let message = event["fields"]["message"].as_str().unwrap_or_default();
            match event["level"].as_str().unwrap_or("INFO") {
                "ERROR" => tracing::error!(plugin, job, "{message}"),
                "WARN" => tracing::warn!(plugin, job, "{message}"),
                "DEBUG" => tracing::debug!(plugin, job, "{message}"),
                "TRACE" => tracing::trace!(plugin, job, "{message}"),
                _ => tracing::info!(plugin, job, "{message}"),
            }
        }
        Err(_) => tracing::warn!(plugin, job, "{line}"),
    }
}

impl WorkerSource {
    /// Starts a worker for the plugin file at `path` and opens the source in it.
    pub fn start(
        exe: &Path,
        path: &Path,
        plugin: &str,
        job: &str,
        settings: &serde_json::Value,
        limits: WorkerLimits,
    ) -> Result<Self, SourceError> {
        let failed = |detail: String| SourceError::Crashed {
            plugin: plugin.to_owned(),
            operation: "start".into(),
            reason: detail,
        };
        let mut child = Command::new(exe)
            .arg(WORKER_SUBCOMMAND)
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot start a worker process ({}): {e}", exe.display())))?;
        #[cfg(windows)]
        let job = job_object::WorkerJob::assign(&child, limits.memory_bytes)
            .map_err(|e| failed(format!("cannot limit the worker process with a Job Object: {e}")))?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let pid = child.id();
        let (plugin_id, job_id) = (plugin.to_owned(), job.to_owned());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                relog(&plugin_id, &job_id, &line);
            }
        });
        let watch = Arc::new(Watch {
            started: Instant::now(),
            last_progress: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            killed_because: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let (sender, frames) = mpsc::sync_channel::<Frame>(4);
        {
            let watch = watch.clone();
            let plugin = plugin.to_owned();
            std::thread::spawn(move || loop {
                match read_frame(&mut stdout) {
                    Ok(Some(frame)) => {
                        watch.progressed();
                        if sender.send(frame).is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(plugin, error = %e, "Unreadable data from the plugin worker.");
                        break;
                    }
                }
            });
        }
        let inner = Arc::new(Inner {
            plugin: plugin.to_owned(),
            job: job.to_owned(),
            child: Mutex::new(child),
            stdin: Mutex::new(stdin),
            frames: Mutex::new(frames),
            watch: watch.clone(),
            extracting: AtomicBool::new(false),
            died_during: Mutex::new(None),
            #[cfg(windows)]
            _job: job,
        });
        spawn_watchdog(Arc::downgrade(&inner), watch, pid, limits, plugin.to_owned());
        let hello = inner.receive("start")?;
        let manifest = match hello {
            Response::Hello { protocol, manifest_json } if protocol == PROTOCOL_VERSION => {
                serde_json::from_str(&manifest_json)
                    .map_err(|e| failed(format!("unreadable manifest: {e}")))?
            }
            Response::Hello { protocol, .. } => {
                return Err(failed(format!(
                    "the worker speaks protocol {protocol}, this host {PROTOCOL_VERSION}; reinstall the host"
                )))
            }
            Response::LoadFailed(message) => return Err(failed(message)),
            other => return Err(failed(format!("unexpected first message {other:?}"))),
        };
        let source = WorkerSource { inner, manifest };
        match source.inner.call("open", &Request::Open { settings_json: settings.to_string() })? {
            Response::Text(_) => Ok(source),
            other => Err(source.inner.unexpected("open", other)),
        }
    }

    /// The manifest the worker reported.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.inner.child.lock().expect("child lock").id()
    }
}

fn spawn_watchdog(
    inner: std::sync::Weak<Inner>,
    watch: Arc<Watch>,
    pid: u32,
    limits: WorkerLimits,
    plugin: String,
) {
    std::thread::spawn(move || {
        while !watch.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            let Some(inner) = inner.upgrade() else { return };
            let now = watch.started.elapsed().as_millis() as u64;
            let idle = Duration::from_millis(now.saturating_sub(watch.last_progress.load(Ordering::Relaxed)));
            let reason = if watch.waiting.load(Ordering::Relaxed) && idle >= limits.stall {
                Some(format!(
                    "it made no progress for {} s (limit: worker_stall_secs)",
                    limits.stall.as_secs()
                ))
            } else {
                match (limits.memory_bytes, resident_bytes(pid)) {
                    (Some(limit), Some(rss)) if rss > limit => Some(format!(
                        "it used {} MB of memory, more than its limit of {} MB (worker_memory_mb)",
                        rss / (1 << 20),
                        limit / (1 << 20)
                    )),
                    _ => None,
                }
            };
            if let Some(reason) = reason {
                tracing::error!(plugin, %reason, "Killing the plugin worker.");
                *watch.killed_because.lock().expect("watch lock") = Some(reason);
                let _ = inner.child.lock().expect("child lock").kill();
                return;
            }
        }
    });
}

impl Inner {
    /// Why the worker is gone: the watchdog's reason, or how the process ended.
    fn death(&self, operation: &str) -> SourceError {
        let reason = match self.watch.killed_because.lock().expect("watch lock").clone() {
            Some(reason) => format!("killed: {reason}"),
            None => {
                let mut child = self.child.lock().expect("child lock");
                let deadline = Instant::now() + Duration::from_secs(5);
                let status = loop {
                    match child.try_wait() {
                        Ok(Some(status)) => break Some(status),
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        _ => break None,
                    }
                };
                match status {
                    Some(status) => format!("crashed: {}", describe_exit_status(status)),
                    None => "stopped answering".to_owned(),
                }
            }
        };
        // A later call on the dead worker must not look like a crash of its own.
        let mut died_during = self.died_during.lock().expect("death lock");
        let during = died_during.get_or_insert_with(|| operation.to_owned());
        let reason = if during == operation {
            reason
        } else {
            format!("{reason} earlier, during {during}, so this call was not run")
        };
        SourceError::Crashed { plugin: self.plugin.clone(), operation: operation.to_owned(), reason }
    }

    fn send(&self, operation: &str, request: &Request) -> Result<(), SourceError> {
        let mut stdin = self.stdin.lock().expect("stdin lock");
        write_message(&mut *stdin, request).map_err(|_| self.death(operation))
    }

    /// Waits for the next frame, telling the watchdog a request is waiting.
    fn next_frame(&self, operation: &str) -> Result<Frame, SourceError> {
        self.watch.progressed();
        self.watch.waiting.store(true, Ordering::Relaxed);
        let frames = self.frames.lock().expect("frames lock");
        let frame = loop {
            match frames.recv_timeout(Duration::from_millis(200)) {
                Ok(frame) => break Ok(frame),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break Err(()),
            }
        };
        self.watch.waiting.store(false, Ordering::Relaxed);
        frame.map_err(|_| self.death(operation))
    }

    fn receive(&self, operation: &str) -> Result<Response, SourceError> {
        let (kind, payload) = self.next_frame(operation)?;
        if kind == KIND_BATCH {
            return Err(self.protocol_error(operation, "a batch outside an extraction"));
        }
        decode(&payload).map_err(|e| self.protocol_error(operation, &e.to_string()))
    }

    fn protocol_error(&self, operation: &str, detail: &str) -> SourceError {
        SourceError::Malformed {
            plugin: self.plugin.clone(),
            operation: operation.into(),
            detail: detail.into(),
        }
    }

    /// Discards what is left of an abandoned extraction.
    fn finish_extraction(&self, operation: &str) -> Result<(), SourceError> {
        if self.extracting.swap(false, Ordering::SeqCst) {
            self.send(operation, &Request::Cancel)?;
            loop {
                let (kind, payload) = self.next_frame(operation)?;
                if kind != KIND_BATCH
                    && matches!(decode::<Response>(&payload), Ok(Response::End | Response::Error(_)))
                {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Sends a request and waits for its answer.
    fn call(&self, operation: &str, request: &Request) -> Result<Response, SourceError> {
        self.finish_extraction(operation)?;
        self.send(operation, request)?;
        match self.receive(operation)? {
            Response::Error(e) => Err(SourceError::Plugin {
                plugin: self.plugin.clone(),
                operation: operation.into(),
                error: PluginError::new(ErrorKind(e.kind), e.message, e.resolution),
            }),
            other => Ok(other),
        }
    }

    fn unexpected(&self, operation: &str, response: Response) -> SourceError {
        self.protocol_error(operation, &format!("unexpected answer {response:?}"))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.watch.stop.store(true, Ordering::Relaxed);
        let mut child = self.child.lock().expect("child lock");
        let _ = child.kill();
        let _ = child.wait();
        tracing::debug!(plugin = %self.plugin, job = %self.job, "Plugin worker stopped.");
    }
}

impl Extractor for WorkerSource {
    fn plugin_id(&self) -> &str {
        &self.inner.plugin
    }

    fn check(&self) -> Result<String, SourceError> {
        match self.inner.call("check", &Request::Check)? {
            Response::Text(text) => Ok(text),
            other => Err(self.inner.unexpected("check", other)),
        }
    }

    fn companies(&self) -> Result<Vec<Company>, SourceError> {
        match self.inner.call("companies", &Request::Companies)? {
            Response::Companies(bytes) => {
                decode_companies(&bytes).map_err(|e| self.inner.protocol_error("companies", &e.to_string()))
            }
            other => Err(self.inner.unexpected("companies", other)),
        }
    }

    fn change_token(&self, company: &str, fiscal_year: i32) -> Result<String, SourceError> {
        let operation = format!("change_token (company {company}, {fiscal_year})");
        let request = Request::ChangeToken { company: company.into(), year: fiscal_year };
        match self.inner.call(&operation, &request)? {
            Response::Text(token) => Ok(token),
            other => Err(self.inner.unexpected(&operation, other)),
        }
    }

    fn extract(
        &self,
        company: &str,
        entity: Entity,
        fiscal_year: i32,
        cancel: CancelFlag,
    ) -> Result<BatchIter, SourceError> {
        let operation = format!("extract {entity} (company {company}, {fiscal_year})");
        self.inner.finish_extraction(&operation)?;
        let request =
            Request::Extract { company: company.into(), entity: entity.as_str().into(), year: fiscal_year };
        self.inner.send(&operation, &request)?;
        self.inner.extracting.store(true, Ordering::SeqCst);
        let inner = self.inner.clone();
        let op = operation.clone();
        let mut cancel_sent = false;
        let raw: RawBatches = Box::new(move || {
            if cancel.is_cancelled() && !cancel_sent {
                cancel_sent = true;
                if let Err(e) = inner.send(&op, &Request::Cancel) {
                    return Some(Err(e));
                }
            }
            let (kind, payload) = match inner.next_frame(&op) {
                Ok(frame) => frame,
                Err(e) => {
                    inner.extracting.store(false, Ordering::SeqCst);
                    return Some(Err(e));
                }
            };
            if kind == KIND_BATCH {
                return Some(Ok(BatchBytes::Owned(payload)));
            }
            inner.extracting.store(false, Ordering::SeqCst);
            match decode::<Response>(&payload) {
                Ok(Response::End) => None,
                Ok(Response::Error(e)) => Some(Err(SourceError::Plugin {
                    plugin: inner.plugin.clone(),
                    operation: op.clone(),
                    error: PluginError::new(ErrorKind(e.kind), e.message, e.resolution),
                })),
                Ok(other) => Some(Err(inner.unexpected(&op, other))),
                Err(e) => Some(Err(inner.protocol_error(&op, &e.to_string()))),
            }
        });
        Ok(BatchIter::new(self.inner.plugin.clone(), operation, entity, raw))
    }
}
