//! Helpers of the hub's integration tests: the real binary, tenants, an HTTP client, sample books.

#![allow(dead_code)]

use ledgerlink_plugin_api::canonical::{
    Account, Company, Decimal, Entity, FiscalYear, NaiveDate, Party, RecordBatch, Voucher, VoucherLine,
    SCHEMA_VERSION,
};
use ledgerlink_protocol::{encode_part, EncodedPart, Manifest, PartFormat, PluginRef};
use reqwest::blocking::{Client as HttpClient, Response};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ledgerlink-hub");

/// A running hub process; killed on drop.
pub struct Hub {
    child: Child,
    /// `http://127.0.0.1:PORT` (or https).
    pub url: String,
}

impl Hub {
    /// Starts `ledgerlink-hub serve` on 127.0.0.1:0 with `data` and extra arguments.
    pub fn start(data: &Path, extra: &[&str]) -> Hub {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.with_extension("log"))
            .expect("hub log file");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start the hub");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("the hub did not print its address within 60 s; log: {}", read_log(data));
            }
        };
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| {
            let _ = child.kill();
            panic!("unexpected first line {line:?}; log: {}", read_log(data))
        });
        Hub { child, url: url.to_owned() }
    }

    /// Kills the process hard (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        self.child.kill().expect("kill the hub");
        self.child.wait().expect("reap the hub");
    }

    /// A client for this hub with an API key.
    pub fn client(&self, key: &str) -> Client {
        Client {
            http: HttpClient::builder().timeout(Duration::from_secs(60)).build().unwrap(),
            base: self.url.clone(),
            key: key.into(),
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_log(data: &Path) -> String {
    std::fs::read_to_string(data.with_extension("log")).unwrap_or_default()
}

/// Runs the hub binary to completion.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run the hub binary")
}

/// Creates a tenant and returns its API key.
pub fn create_tenant(data: &Path, name: &str) -> String {
    let out = run(&["tenant", "create", name, "--data", data.to_str().unwrap()]);
    assert!(out.status.success(), "tenant create failed: {}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("llk_") && key.len() == 68, "unexpected key {key:?}");
    key
}

/// A support token of `role` (`viewer` or `support`), created with the hub CLI.
pub fn support_token(data: &Path, name: &str, role: &str) -> String {
    let out = run(&["support-token", "create", name, "--role", role, "--data", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A hub with tenants `acme` and `globex` and the support tokens `alice` (support) and `victor` (viewer).
pub struct TwoTenants {
    /// Keep: the data directory.
    pub data: DataDir,
    /// acme's API key.
    pub acme_key: String,
    /// globex's API key.
    pub globex_key: String,
    /// A support token with the role support.
    pub alice: String,
    /// A support token with the role viewer.
    pub victor: String,
    /// The running hub.
    pub hub: Hub,
}

impl TwoTenants {
    /// Creates the tenants and tokens and starts the hub.
    pub fn start() -> TwoTenants {
        let data = DataDir::new();
        let acme_key = create_tenant(&data.path, "acme");
        let globex_key = create_tenant(&data.path, "globex");
        let alice = support_token(&data.path, "alice", "support");
        let victor = support_token(&data.path, "victor", "viewer");
        let hub = Hub::start(&data.path, &[]);
        TwoTenants { data, acme_key, globex_key, alice, victor, hub }
    }
}

/// Revokes a tenant.
pub fn revoke_tenant(data: &Path, name: &str) {
    let out = run(&["tenant", "revoke", name, "--data", data.to_str().unwrap()]);
    assert!(out.status.success(), "tenant revoke failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A fresh temporary data directory (removed on drop).
pub struct DataDir {
    _tmp: tempfile::TempDir,
    /// The data directory itself.
    pub path: PathBuf,
}

impl DataDir {
    /// Creates one.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("hub-data");
        Self { _tmp: tmp, path }
    }
}

/// Status and body of a response.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Content type header.
    pub content_type: String,
    /// The body as text.
    pub text: String,
}

impl Reply {
    fn from(r: Response) -> Reply {
        let status = r.status();
        let content_type =
            r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        Reply { status, content_type, text: r.text().unwrap() }
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts a JSON error with this status and code whose message contains `needle`; returns the body.
    pub fn assert_error(&self, status: u16, code: &str, needle: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert!(self.content_type.starts_with("application/json"), "content type {}", self.content_type);
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "body: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "message {message:?} lacks {needle:?}");
        body
    }
}

/// An authenticated client of one hub.
pub struct Client {
    /// The HTTP client.
    pub http: HttpClient,
    /// Base URL.
    pub base: String,
    /// The API key.
    pub key: String,
}

impl Client {
    /// GET with the key.
    pub fn get(&self, path: &str) -> Reply {
        Reply::from(self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.key).send().unwrap())
    }

    /// POST raw bytes as JSON with the key.
    pub fn post_raw(&self, path: &str, body: Vec<u8>) -> Reply {
        Reply::from(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .unwrap(),
        )
    }

    /// POST a JSON value with the key.
    pub fn post(&self, path: &str, body: &impl serde::Serialize) -> Reply {
        self.post_raw(path, serde_json::to_vec(body).unwrap())
    }

    /// PUT raw bytes with the key.
    pub fn put(&self, path: &str, body: Vec<u8>) -> Reply {
        Reply::from(
            self.http
                .put(format!("{}{path}", self.base))
                .bearer_auth(&self.key)
                .header("content-type", "application/zstd")
                .body(body)
                .send()
                .unwrap(),
        )
    }

    /// POST a manifest; returns the reply.
    pub fn open_snapshot(&self, manifest: &Manifest) -> Reply {
        self.post("/v1/snapshots", manifest)
    }

    /// PUT one part.
    pub fn put_part(&self, id: &str, index: usize, bytes: &[u8]) -> Reply {
        self.put(&format!("/v1/snapshots/{id}/parts/{index}"), bytes.to_vec())
    }

    /// POST commit.
    pub fn commit(&self, id: &str) -> Reply {
        self.post_raw(&format!("/v1/snapshots/{id}/commit"), Vec::new())
    }

    /// Opens a snapshot and uploads every part; returns its id.
    pub fn upload(&self, snap: &Snapshot) -> String {
        let reply = self.open_snapshot(&snap.manifest);
        assert!(reply.status.is_success(), "open: {}", reply.text);
        let id = reply.json()["snapshot_id"].as_str().unwrap().to_owned();
        for (i, part) in snap.parts.iter().enumerate() {
            let r = self.put_part(&id, i, &part.bytes);
            assert_eq!(r.status, StatusCode::NO_CONTENT, "part {i}: {}", r.text);
        }
        id
    }

    /// Opens a snapshot and uploads every part but those in `skip`; returns its id.
    pub fn upload_parts_except(&self, snap: &Snapshot, skip: &[usize]) -> String {
        let reply = self.open_snapshot(&snap.manifest);
        assert!(reply.status.is_success(), "open: {}", reply.text);
        let id = reply.json()["snapshot_id"].as_str().unwrap().to_owned();
        for (i, part) in snap.parts.iter().enumerate().filter(|(i, _)| !skip.contains(i)) {
            let r = self.put_part(&id, i, &part.bytes);
            assert_eq!(r.status, StatusCode::NO_CONTENT, "part {i}: {}", r.text);
        }
        id
    }

    /// Uploads and commits; returns the id.
    pub fn upload_and_commit(&self, snap: &Snapshot) -> String {
        let id = self.upload(snap);
        let r = self.commit(&id);
        assert_eq!(r.status, StatusCode::OK, "commit: {}", r.text);
        id
    }

    /// Snapshot ids in a company's history.
    pub fn history(&self, company: &str, year: i32) -> Vec<String> {
        let r = self.get(&format!("/v1/companies/{company}/snapshots?year={year}"));
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json()["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["snapshot_id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The current snapshot id of a company and year, if any.
    pub fn current(&self, company: &str, year: i32) -> Option<String> {
        let r = self.get(&format!("/v1/companies/{company}/current?year={year}"));
        match r.status.as_u16() {
            200 => Some(r.json()["snapshot_id"].as_str().unwrap().to_owned()),
            404 => None,
            _ => panic!("current: {}", r.text),
        }
    }

    /// Polls `GET /v1/snapshots/{id}` until it is committed, for at most `timeout`.
    pub fn wait_committed(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let r = self.get(&format!("/v1/snapshots/{id}"));
            if r.status == StatusCode::OK && r.json()["state"] == "committed" {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// Company, master data and balanced vouchers of one fiscal year.
#[derive(Debug, Clone)]
pub struct Books {
    /// The company.
    pub company: Company,
    /// Chart of accounts.
    pub accounts: Vec<Account>,
    /// Customers.
    pub customers: Vec<Party>,
    /// Voucher headers.
    pub vouchers: Vec<Voucher>,
    /// Voucher lines, contiguous per voucher.
    pub lines: Vec<VoucherLine>,
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Deterministic sample books: `vouchers` balanced vouchers of 2–4 lines with cent and mill amounts.
pub fn sample_books(company_id: &str, vouchers: usize, seed: u64) -> Books {
    let company = Company {
        id: company_id.into(),
        name: format!("Eksempel {company_id} AS"),
        organisation_number: Some("999888777".into()),
        currency: "NOK".into(),
        fiscal_years: vec![FiscalYear { year: 2025, start: date(2025, 1, 1), end: date(2025, 12, 31) }],
        source_key: format!("Frm:{company_id}"),
    };
    let ids = ["1500", "1920", "2400", "2700", "3000", "4000", "6300", "7700"];
    let accounts = ids
        .iter()
        .map(|id| Account {
            id: (*id).into(),
            name: format!("Konto {id}"),
            grouping_category: None,
            grouping_code: None,
            standard_account: Some(id[..2].into()),
            default_tax_code: None,
            source_key: format!("Ac:{id}"),
        })
        .collect();
    let customers = vec![Party {
        id: "10001".into(),
        name: "Kunde Én AS".into(),
        organisation_number: None,
        street: Some("Storgata 1".into()),
        postal_code: Some("0155".into()),
        city: Some("Oslo".into()),
        country: Some("NO".into()),
        email: None,
        phone: None,
        currency: Some("NOK".into()),
        source_key: "Cu:10001".into(),
    }];
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move |n: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let mut headers = Vec::new();
    let mut lines = Vec::new();
    for v in 0..vouchers {
        let id = format!("{}", 1000 + v);
        let day = date(2025, 1 + (v % 12) as u32, 1 + (v % 28) as u32);
        headers.push(Voucher {
            id: id.clone(),
            date: day,
            period: Some(1 + (v % 12) as u8),
            voucher_type: Some("GL".into()),
            description: Some(format!("Bilag {id}")),
            source_key: format!("Vo:{id}"),
        });
        let n = 2 + next(3) as usize;
        let mut sum = Decimal::ZERO;
        for l in 0..n {
            let amount = if l + 1 == n {
                -sum
            } else {
                // Mixed scales: cents and, now and then, mills.
                let scale = if next(5) == 0 { 3 } else { 2 };
                let magnitude = Decimal::new(next(5_000_000) as i64 + 1, scale);
                if next(2) == 0 {
                    magnitude
                } else {
                    -magnitude
                }
            };
            sum += amount;
            lines.push(VoucherLine {
                voucher_id: id.clone(),
                line_no: l as u32 + 1,
                account_id: ids[next(ids.len() as u64) as usize].into(),
                date: day,
                description: Some("Varesalg – ÆØÅ".into()),
                amount,
                currency: None,
                amount_currency: None,
                tax_code: None,
                tax_amount: None,
                dimensions: vec![],
                customer_id: if l == 0 { Some("10001".into()) } else { None },
                supplier_id: None,
                source_key: format!("AcTr:{id}:{}", l + 1),
            });
        }
    }
    Books { company, accounts, customers, vouchers: headers, lines }
}

/// A manifest and its encoded parts.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The manifest.
    pub manifest: Manifest,
    /// Part `i` is `parts[i]`.
    pub parts: Vec<EncodedPart>,
}

/// Encodes books as an NDJSON snapshot; voucher lines are split over two parts mid-voucher.
pub fn build_snapshot(books: &Books, source_id: &str) -> Snapshot {
    build_snapshot_as(PartFormat::Ndjson, books, source_id)
}

/// Encodes books as a snapshot in `format`; voucher lines are split over two parts mid-voucher.
pub fn build_snapshot_as(format: PartFormat, books: &Books, source_id: &str) -> Snapshot {
    let encode = |batch: RecordBatch| encode_part(format, &batch).unwrap();
    let split = books.lines.len() / 2 + 1;
    let parts = vec![
        encode(RecordBatch::Accounts(books.accounts.clone())),
        encode(RecordBatch::Customers(books.customers.clone())),
        encode(RecordBatch::Vouchers(books.vouchers.clone())),
        encode(RecordBatch::VoucherLines(books.lines[..split].to_vec())),
        encode(RecordBatch::VoucherLines(books.lines[split..].to_vec())),
    ];
    let mut snapshot = manifest_for(books, source_id, parts);
    snapshot.manifest.part_format = format;
    snapshot
}

/// Builds the manifest for given NDJSON parts.
pub fn manifest_for(books: &Books, source_id: &str, parts: Vec<EncodedPart>) -> Snapshot {
    let manifest = Manifest {
        protocol_version: 1,
        schema_version: SCHEMA_VERSION,
        agent_id: "agent-test".into(),
        source_id: source_id.into(),
        plugin: PluginRef { id: "synthetic".into(), version: "1.0.0".into() },
        company: books.company.clone(),
        fiscal_year: 2025,
        change_token: Some(format!("lines:{}", books.lines.len())),
        parts: parts.iter().enumerate().map(|(i, p)| p.info(i as u32)).collect(),
        part_format: PartFormat::Ndjson,
    };
    Snapshot { manifest, parts }
}

/// The trial balance computed here, independently of the hub and plugin-api: account → (debit, credit, net).
pub fn expected_trial_balance(lines: &[VoucherLine]) -> BTreeMap<String, (Decimal, Decimal, Decimal)> {
    let mut tb: BTreeMap<String, (Decimal, Decimal, Decimal)> = BTreeMap::new();
    for line in lines {
        let row = tb.entry(line.account_id.clone()).or_default();
        if line.amount < Decimal::ZERO {
            row.1 += line.amount.abs();
        } else {
            row.0 += line.amount;
        }
        row.2 += line.amount;
    }
    tb
}

/// Parses a trial balance response's accounts into exact decimals; refuses anything but exact strings.
pub fn parse_trial_balance(body: &Value) -> BTreeMap<String, (Decimal, Decimal, Decimal)> {
    let exact = |v: &Value| -> Decimal {
        let text = v.as_str().unwrap_or_else(|| panic!("amount {v} is not a string"));
        Decimal::from_str_exact(text).unwrap_or_else(|e| panic!("`{text}` is not exact: {e}"))
    };
    body["accounts"]
        .as_object()
        .expect("accounts object")
        .iter()
        .map(|(id, row)| (id.clone(), (exact(&row["debit"]), exact(&row["credit"]), exact(&row["net"]))))
        .collect()
}

/// Reads NDJSON records of one entity.
pub fn ndjson_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Decimal from text.
pub fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// The entity names of a manifest's parts.
pub fn entities(snap: &Snapshot) -> Vec<Entity> {
    snap.manifest.parts.iter().map(|p| p.entity).collect()
}
