//! A `ledgerlink run` service process for tests, and polling with a deadline.

use crate::agent::Agent;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Polls `done` every 200 ms until it is true; panics naming `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `ledgerlink run` of an agent, with its log in a file.
pub struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Starts the service with a 5 s drain deadline.
    pub fn start(agent: &Agent) -> Service {
        let log = agent.dir().join("run.log");
        let child = agent
            .command(&["run", "--drain-secs", "5"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("ledgerlink run starts");
        Service { child, log }
    }

    /// Where the log is written.
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `count` finished jobs.
    pub fn wait_for_jobs(&self, count: usize, limit: Duration) {
        wait_for(&format!("{count} finished jobs"), limit, || {
            self.log().matches("Job finished.").count() >= count
        });
    }

    /// Sends SIGTERM (the service must still be alive to get it) and checks it
    /// exits 0 within the drain deadline; returns how long stopping took.
    pub fn stop(mut self) -> Duration {
        assert!(self.child.try_wait().expect("status").is_none(), "the host died:\n{}", self.log());
        let asked = Instant::now();
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(sent.success());
        wait_for("the service to stop", Duration::from_secs(10), || {
            self.child.try_wait().expect("status").is_some()
        });
        assert_eq!(self.child.wait().expect("status").code(), Some(0), "{}", self.log());
        asked.elapsed()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
