//! A real hub process on loopback, and the HTTP calls tests make to it.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `ledgerlink-hub serve` process with its own data directory.
pub struct Hub {
    child: Option<Child>,
    data: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Where the hub's log goes.
    pub log: PathBuf,
    extra: Vec<String>,
    root_pem: Option<Vec<u8>>,
}

impl Hub {
    /// Starts a hub on a free port.
    pub fn start() -> Hub {
        Self::start_with(&[])
    }

    /// Starts a hub serving HTTPS with this certificate and key (PEM files).
    pub fn start_tls(cert: &Path, key: &Path) -> Hub {
        let mut hub = Self::start_with(&[
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ]);
        hub.root_pem = Some(std::fs::read(cert).expect("certificate"));
        hub
    }

    /// Starts a hub with extra `serve` arguments.
    pub fn start_args(args: &[&str]) -> Hub {
        Self::start_with(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    fn start_with(extra: &[String]) -> Hub {
        let data = tempfile::tempdir().expect("hub data dir");
        let log = data.path().join("hub.log");
        let mut hub =
            Hub { child: None, data, url: String::new(), log, extra: extra.to_vec(), root_pem: None };
        hub.spawn("127.0.0.1:0");
        hub
    }

    fn spawn(&mut self, listen: &str) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("hub log");
        let mut child = Command::new(crate::binary("ledgerlink-hub"))
            .args(["serve", "--data"])
            .arg(self.data.path().join("hub"))
            .args(["--listen", listen])
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("hub starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("hub prints its address");
        // Keep draining stdout so the hub never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected hub output: {line}"));
        self.url = url.to_owned();
        self.child = Some(child);
    }

    /// The hub's data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The hub's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the hub (SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the hub again on the same address and data with other `serve` arguments.
    pub fn restart_with_args(&mut self, args: &[&str]) {
        self.extra = args.iter().map(|a| (*a).to_owned()).collect();
        self.restart();
    }

    /// Starts the hub again on the same address and data.
    pub fn restart(&mut self) {
        self.stop();
        let address = self.url.trim_start_matches("http://").trim_start_matches("https://").to_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.spawn(&address)));
            match attempt {
                Ok(()) => return,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
    }

    /// Creates a tenant and returns its API key.
    pub fn create_tenant(&self, name: &str) -> String {
        let output = Command::new(crate::binary("ledgerlink-hub"))
            .args(["tenant", "create", name, "--data"])
            .arg(self.data.path().join("hub"))
            .output()
            .expect("tenant create runs");
        let text = String::from_utf8_lossy(&output.stdout);
        text.split_whitespace()
            .find(|w| w.starts_with("llk_"))
            .unwrap_or_else(|| panic!("no API key in: {text} {}", String::from_utf8_lossy(&output.stderr)))
            .to_owned()
    }

    /// `GET path` with the tenant key; returns status and JSON body.
    pub fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let response = self.send_get(key, path);
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// `PUT path` with the tenant key and a JSON body; returns status and JSON body.
    pub fn put(&self, key: &str, path: &str, body: &Value) -> (u16, Value) {
        let response = reqwest::blocking::Client::new()
            .put(format!("{}{path}", self.url))
            .bearer_auth(key)
            .json(body)
            .send()
            .unwrap_or_else(|e| panic!("PUT {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// `GET path` with the tenant key; returns status and body text.
    pub fn get_text(&self, key: &str, path: &str) -> (u16, String) {
        let response = self.send_get(key, path);
        let status = response.status().as_u16();
        (status, response.text().unwrap_or_else(|e| panic!("GET {path}: {e}")))
    }

    fn send_get(&self, key: &str, path: &str) -> reqwest::blocking::Response {
        let mut client = reqwest::blocking::Client::builder();
        if let Some(pem) = &self.root_pem {
            client = client.add_root_certificate(reqwest::Certificate::from_pem(pem).expect("PEM"));
        }
        client
            .build()
            .expect("client")
            .get(format!("{}{path}", self.url))
            .bearer_auth(key)
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The trial balance of a company's year from one source.
    pub fn trial_balance(&self, key: &str, source: &str, company: &str, year: i32) -> Value {
        let (status, body) =
            self.get(key, &format!("/v1/companies/{company}/trial-balance?year={year}&source={source}"));
        assert_eq!(status, 200, "trial balance of {source}/{company}/{year}: {body}");
        body
    }

    /// How many committed snapshots a company's year has (its history).
    pub fn snapshot_count(&self, key: &str, source: &str, company: &str, year: i32) -> usize {
        let (status, body) =
            self.get(key, &format!("/v1/companies/{company}/snapshots?year={year}&source={source}"));
        if status == 404 {
            return 0;
        }
        assert_eq!(status, 200, "{body}");
        body["snapshots"].as_array().map_or(0, |s| s.iter().filter(|s| s["state"] == "committed").count())
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop();
    }
}
