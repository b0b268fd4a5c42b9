//! The most recent log lines, kept in memory for the `diagnostics` command.
//!
//! The log writer tees every line here. Lines are redacted again when they are
//! read (key-shaped tokens, passwords in connection strings), although the host
//! never logs a secret in the first place.

use crate::config::redact_json;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// How many lines are kept.
const CAPACITY: usize = 300;

fn buffer() -> &'static Mutex<VecDeque<String>> {
    static LINES: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();
    LINES.get_or_init(|| Mutex::new(VecDeque::with_capacity(CAPACITY)))
}

/// A `Write` that appends complete lines to the buffer.
#[derive(Debug, Default)]
pub struct RecentLines {
    partial: Vec<u8>,
}

impl Write for RecentLines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = strip_ansi(&String::from_utf8_lossy(&line[..line.len() - 1]));
            let mut lines = buffer().lock().unwrap_or_else(|p| p.into_inner());
            if lines.len() == CAPACITY {
                lines.pop_front();
            }
            lines.push_back(text);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RecentLines {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            self.partial.push(b'\n');
            let partial = std::mem::take(&mut self.partial);
            let _ = self.write(&partial);
        }
    }
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Hides anything shaped like a hub key or support token, and connection-string passwords.
pub fn redact_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(pos) = ["llk_", "lls_"].iter().filter_map(|p| rest.find(p)).min() {
        out.push_str(&rest[..pos + 4]);
        out.push_str(crate::config::REDACTED);
        let tail = &rest[pos + 4..];
        let end = tail.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    match redact_json(&serde_json::Value::String(out.clone())) {
        serde_json::Value::String(s) => s,
        _ => out,
    }
}

/// The last `n` log lines, oldest first, redacted.
pub fn recent(n: usize) -> Vec<String> {
    let lines = buffer().lock().unwrap_or_else(|p| p.into_inner());
    lines.iter().skip(lines.len().saturating_sub(n)).map(|l| redact_line(l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_passwords_are_hidden() {
        let line = "token llk_0123abcd and lls_ffff in Driver=x;PWD=hunter2;Server=y";
        let shown = redact_line(line);
        assert!(
            !shown.contains("0123abcd") && !shown.contains("ffff") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(shown.contains("llk_***") && shown.contains("Server=y"), "{shown}");
    }

    #[test]
    fn complete_lines_are_kept() {
        let mut w = RecentLines::default();
        w.write_all(b"\x1b[32mhello\x1b[0m wor").unwrap();
        w.write_all(b"ld\nnext").unwrap();
        drop(w);
        let lines = recent(1000);
        assert!(lines.iter().any(|l| l == "hello world"), "{lines:?}");
        assert!(lines.iter().any(|l| l == "next"), "{lines:?}");
    }
}
