//! Control-channel benchmark: 500 simulated agents hold WebSocket connections to
//! one real `ledgerlink-hub` on loopback; commands are sent through the admin API
//! and acknowledged by the agents. Prints the hub's memory (VmHWM/VmRSS) and the
//! command round trip (admin POST until the hub stores the agent's result).
//!
//! Run with `scripts/bench-control` (builds the release hub first).

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const AGENTS: usize = 500;
const COMMANDS: usize = 300;

fn hub_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>");
    let path = dir.join("ledgerlink-hub");
    assert!(path.exists(), "{} is missing: run scripts/bench-control", path.display());
    path
}

fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn cli(hub: &PathBuf, data: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(hub).args(args).arg("--data").arg(data).output().expect("hub cli");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

async fn agent(url: String, key: String, id: String, ready: tokio::sync::mpsc::Sender<()>) {
    let mut request = format!("{url}/v1/control/ws?agent_id={id}&heartbeat_secs=60")
        .replace("http://", "ws://")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert("authorization", format!("Bearer {key}").parse().expect("header"));
    let host = url.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&host).await.expect("connect");
    let (socket, _) = tokio_tungstenite::client_async(request, stream).await.expect("websocket handshake");
    let (mut sink, mut stream) = socket.split();
    let _ = ready.send(()).await;
    while let Some(Ok(frame)) = stream.next().await {
        let Message::Text(text) = frame else { continue };
        let message: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
        let reply = match message["type"].as_str() {
            Some("command") => {
                json!({ "type": "ack", "ack": { "command_id": message["command"]["id"], "ok": true, "result": { "bench": true } } })
            }
            Some("ping") => json!({ "type": "pong" }),
            _ => continue,
        };
        if sink.send(Message::Text(reply.to_string().into())).await.is_err() {
            return;
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let hub = hub_binary();
    let data = tempfile::tempdir().expect("data dir");
    let key = cli(&hub, data.path(), &["tenant", "create", "bench"]);
    let token = cli(&hub, data.path(), &["support-token", "create", "bench", "--role", "support"]);
    let mut child = Command::new(&hub)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("hub starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("address");
    let url = line.trim().trim_start_matches("listening on ").to_owned();
    let pid = child.id();
    let (hwm0, rss0) = memory(pid);

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let connect_started = Instant::now();
    runtime.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel(AGENTS);
        for i in 0..AGENTS {
            tokio::spawn(agent(url.clone(), key.clone(), format!("bench-{i:04}"), tx.clone()));
        }
        for _ in 0..AGENTS {
            rx.recv().await.expect("agent connected");
        }
    });
    let connect_time = connect_started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let (hwm1, rss1) = memory(pid);

    let http = reqwest::blocking::Client::new();
    let mut latencies = Vec::with_capacity(COMMANDS);
    for n in 0..COMMANDS {
        let agent = format!("bench-{:04}", (n * 7919) % AGENTS);
        let base = format!("{url}/v1/admin/agents/bench/{agent}/commands");
        let started = Instant::now();
        let row: Value = http
            .post(&base)
            .bearer_auth(&token)
            .json(&json!({ "type": "status" }))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let id = row["command"]["id"].as_str().expect("command id").to_owned();
        loop {
            let row: Value =
                http.get(format!("{base}/{id}")).bearer_auth(&token).send().unwrap().json().unwrap();
            if row["state"] == "done" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "command {id} not acknowledged: {row}");
            std::thread::sleep(Duration::from_micros(500));
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let (hwm2, rss2) = memory(pid);
    let _ = child.kill();
    let _ = child.wait();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "control channel: {AGENTS} WebSocket agents, {COMMANDS} commands (admin POST → agent ack stored)"
    );
    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| hub memory idle (VmRSS / VmHWM) | {:.1} MiB / {:.1} MiB |",
        rss0 as f64 / 1024.0,
        hwm0 as f64 / 1024.0
    );
    println!(
        "| hub memory with {AGENTS} agents (VmRSS / VmHWM) | {:.1} MiB / {:.1} MiB |",
        rss1 as f64 / 1024.0,
        hwm1 as f64 / 1024.0
    );
    println!(
        "| hub memory after commands (VmRSS / VmHWM) | {:.1} MiB / {:.1} MiB |",
        rss2 as f64 / 1024.0,
        hwm2 as f64 / 1024.0
    );
    println!(
        "| per connected agent (VmRSS delta) | {:.1} KiB |",
        (rss1.saturating_sub(rss0)) as f64 / AGENTS as f64
    );
    println!("| time to connect {AGENTS} agents | {:.0} ms |", ms(connect_time));
    println!("| round trip p50 | {:.2} ms |", ms(percentile(&latencies, 0.50)));
    println!("| round trip p95 | {:.2} ms |", ms(percentile(&latencies, 0.95)));
    println!("| round trip p99 | {:.2} ms |", ms(percentile(&latencies, 0.99)));
}
