//! Vetting a plugin file in a short-lived child process before the host loads it.

use super::{exit_status, LoadError, LoadedPlugin};
use ledgerlink_plugin_api::sdk::Manifest;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The hidden `ledgerlink` subcommand that runs the probe child.
pub const PROBE_SUBCOMMAND: &str = "plugin-probe";

/// How long loading a plugin may take in the probe child.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// The prefix of the one line the probe child writes its result on.
const RESULT_MARKER: &str = "ledgerlink-probe-result ";

/// What probing a file found: its manifest, or why it cannot be used.
pub type ProbeOutcome = Result<Manifest, LoadError>;

#[derive(Serialize, Deserialize)]
enum Wire {
    Ok(Manifest),
    Err(LoadError),
}

/// Loads `path` in a child process (`probe_exe plugin-probe PATH`) and reports
/// what happened there; the calling process never touches the file.
pub fn probe(probe_exe: &Path, path: &Path) -> ProbeOutcome {
    let mut child = Command::new(probe_exe)
        .arg(PROBE_SUBCOMMAND)
        .arg(path)
        .env("LEDGERLINK_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LoadError::ProbeFailed {
            detail: format!("cannot start {}: {e}", probe_exe.display()),
        })?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(LoadError::ProbeFailed { detail: e.to_string() }),
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(LoadError::Hung { secs: PROBE_TIMEOUT.as_secs() });
    };
    if !status.success() {
        tracing::debug!(path = %path.display(), stderr = %stderr.trim_end(), "Plugin probe process failed.");
        let how = exit_status::describe(status);
        return Err(match panic_message(&stderr) {
            Some(panic) => LoadError::Panicked { how, panic },
            None => LoadError::Crashed { how },
        });
    }
    let line = stdout.lines().rev().find_map(|l| l.strip_prefix(RESULT_MARKER)).ok_or_else(|| {
        LoadError::ProbeFailed {
            detail: format!("the probe process printed no result; its stderr: {}", stderr.trim()),
        }
    })?;
    match serde_json::from_str::<Wire>(line) {
        Ok(Wire::Ok(manifest)) => Ok(manifest),
        Ok(Wire::Err(error)) => Err(error),
        Err(e) => Err(LoadError::ProbeFailed { detail: format!("unreadable probe result: {e}") }),
    }
}

/// The panic the probe's stderr reports (`thread '…' panicked at FILE:LINE:COL:`
/// and the message on the next lines), shortened to one line.
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at ")?;
    let text: Vec<&str> = stderr[start + "panicked at ".len()..]
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("note:") && !line.starts_with("stack backtrace"))
        .filter(|line| !line.is_empty())
        .collect();
    let line = text.join(" ");
    Some(match line.char_indices().nth(300) {
        Some((end, _)) => format!("{} …", &line[..end]),
        None => line,
    })
}

/// The child side: loads the plugin in this process and prints the outcome.
pub fn run_probe_child(path: &Path) -> ExitCode {
    let outcome = match LoadedPlugin::load_vetted(path) {
        Ok(plugin) => Wire::Ok(plugin.manifest().clone()),
        Err(error) => Wire::Err(error),
    };
    let json = serde_json::to_string(&outcome).expect("probe results serialize");
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{RESULT_MARKER}{json}");
    let _ = stdout.flush();
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn the_panic_is_read_from_the_probes_stderr() {
        let stderr = "\nthread 'main' panicked at src/lib.rs:41:9:\nmanifest bug: no id\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\nfatal runtime error: failed to initiate panic, error 5\n";
        assert_eq!(panic_message(stderr).as_deref(), Some("src/lib.rs:41:9: manifest bug: no id"));
        assert_eq!(panic_message("Bus error\n"), None, "a crash without a panic is a damaged file");
    }
}
