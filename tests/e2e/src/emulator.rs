//! The Uni Micro API emulator (`tests/unimicro-emulator`) as a real process on loopback.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The client secret the emulator accepts (a test secret: tests check it never appears in output).
pub const CLIENT_SECRET: &str = "Uni-Client-Secret-2718";

/// A running `ledgerlink-unimicro-emulator`.
pub struct Emulator {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Emulator {
    /// Starts the emulator with extra arguments (faults, data size).
    pub fn start(args: &[&str]) -> Emulator {
        let mut child = Command::new(crate::binary("ledgerlink-unimicro-emulator"))
            .args(args)
            .env("UNIMICRO_EMULATOR_CLIENT_SECRET", CLIENT_SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("emulator starts");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("emulator prints its address");
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected: {line}"))
            .to_owned();
        Emulator { child, url }
    }

    /// `GET path` of the emulator's own (test) endpoints.
    pub fn get(&self, path: &str) -> Value {
        reqwest::blocking::get(format!("{}{path}", self.url))
            .and_then(|r| r.json())
            .expect("emulator answers")
    }

    /// Plugin settings that reach this emulator.
    pub fn settings(&self, extra: Value) -> Value {
        let mut settings = serde_json::json!({
            "base_url": self.url,
            "token_url": format!("{}/connect/token", self.url),
            "client_id": "ledgerlink-test",
            "client_secret": CLIENT_SECRET,
        });
        if let (Some(s), Value::Object(e)) = (settings.as_object_mut(), extra) {
            s.extend(e);
        }
        settings
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
