//! Benchmark of issue 9: Ledgerlink against odbc2parquet, odbcsv, ConnectorX and
//! PostgreSQL's own `COPY`, side by side in one run, as ratios.
//!
//! For each size (default 2 M voucher lines, `BENCH_LINES=2000000,10000000` for
//! more) it creates a Visma Business fixture of one company and two years in
//! PostgreSQL (databases `bench_cmp_*`, dropped at the end unless
//! `BENCH_KEEP=1`; `BENCH_REUSE=1` reuses a kept one of the same size), then runs
//! `BENCH_ROUNDS` rounds (default 3), each tool once per round, the order rotated
//! every round, and reports the median per metric:
//!
//! - `psql \copy (query) TO /dev/null`: the physical limit;
//! - `odbc2parquet query` and `odbcsv query` through psqlODBC with
//!   `UseDeclareFetch=1;Fetch=10000` (odbcsv is the floor for one ODBC stream);
//! - ConnectorX `read_sql(..., return_type="arrow")` in a Python venv;
//! - `ledgerlink plugins check` of the visma-business plugin (extract only);
//! - `ledgerlink sync` to a local hub (worker process, validate, zstd, spool,
//!   upload), its re-sync without changes (exit 7), and the full sync again through
//!   a loopback proxy that delays every chunk by 1 ms each way (2 ms round trip).
//!
//! Measured per run: wall time; client CPU as the growth of this process's
//! `cutime + cstime` in `/proc/self/stat` across spawn and wait (exact: the kernel
//! adds a reaped child's CPU, including its own reaped children such as the plugin
//! worker); database CPU as the growth of `utime + stime + cutime + cstime` summed
//! over every process named `postgres` (backends that exit are reaped by the
//! postmaster, so their CPU moves into its `cutime` and nothing is lost); peak RSS as
//! VmHWM of the process and of its children, sampled every 10 ms; hub CPU (syncs) as
//! the growth of the hub process's `utime + stime`. A "CPU floor" table divides each
//! run's CPU-seconds by the cores: the wall time it could reach if nothing waited.
//!
//! `BENCH_ONLY=sync,extract` runs only the named tools (`copy`, `odbc2parquet`,
//! `odbcsv`, `connectorx`, `extract`, `sync`, `sync-delayed`) and prints the table
//! without touching `docs/benchmarks.md`: for quick before/after comparisons.
//!
//! The tools are expected in `target/bench-tools` (`BENCH_TOOLS` overrides):
//! `bin/odbc2parquet`, `bin/odbcsv`, `venv/bin/python` with connectorx and pyarrow.
//! `scripts/bench-compare` installs them, builds the release binaries and runs this.
//! The table goes to stdout and to `docs/benchmarks.md`; whatever follows the line
//! `<!-- analysis -->` in that file is kept.

use ledgerlink_e2e::agent::{Agent, SourceConfig};
use ledgerlink_e2e::hub::Hub;
use ledgerlink_e2e::{binary, erp_plugin, repo_root, settings_file};
use ledgerlink_fixtures::{drop_pg_prefix, Backend, Erp, Fixture, FixtureSpec, PgConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PREFIX: &str = "bench_cmp_";
const FETCH_ROWS: u64 = 10_000;
const ANALYSIS_MARK: &str = "<!-- analysis -->";

/// The rows every tool reads: the plugin's voucher-line query over both years.
fn query() -> String {
    let dims: Vec<String> = (1..=12).map(|n| format!("t.R{n}")).collect();
    format!(
        "SELECT t.VoNo, t.JNo, t.EntNo, t.AcNo, t.VoDt, t.Txt, t.AcAm, c.ISO, t.CurAm, t.TxCd, t.Cust, t.Sup, {} \
         FROM AcTr t LEFT JOIN Cur c ON c.CurNo = t.Cur \
         WHERE t.AcYrPr BETWEEN 202400 AND 202599 ORDER BY t.VoNo, t.JNo, t.EntNo",
        dims.join(", ")
    )
}

// ---------------------------------------------------------------- measuring

/// Fields after `comm` of `/proc/PID/stat` (index 0 is the state).
fn stat_fields(pid: &str) -> Option<(String, Vec<u64>)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    let fields = text[close + 1..].split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    Some((comm, fields))
}

fn ticks_per_second() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().ok();
    out.and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0)
}

/// `cutime + cstime` of this process: the CPU of every child it has reaped.
fn reaped_children_ticks() -> u64 {
    let (_, f) = stat_fields("self").expect("/proc/self/stat");
    f[12] + f[13]
}

/// `utime + stime` of a running process (all its threads).
fn process_ticks(pid: u32) -> u64 {
    stat_fields(&pid.to_string()).map_or(0, |(_, f)| f[10] + f[11])
}

/// CPU of all PostgreSQL processes, the exited ones included (via the postmaster).
fn postgres_ticks() -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Some((comm, f)) = stat_fields(&name) {
            if comm == "postgres" {
                total += f[10] + f[11] + f[12] + f[13];
            }
        }
    }
    total
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Children of a process (all its threads).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    out
}

/// One measured process run.
#[derive(Debug, Clone, Default)]
struct Run {
    wall: f64,
    client_cpu: f64,
    db_cpu: f64,
    /// VmHWM of the process, MB.
    peak_main: f64,
    /// Largest VmHWM of any child (the plugin worker for `ledgerlink sync`), MB.
    peak_child: f64,
    exit: i32,
    stdout: String,
    stderr: String,
}

fn measure(command: &mut Command, tick: f64) -> Run {
    let db_before = postgres_ticks();
    let cpu_before = reaped_children_ticks();
    let begin = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let pid = child.id();
    let mut peak_main = 0;
    let mut peak_children: BTreeMap<u32, u64> = BTreeMap::new();
    let status = loop {
        peak_main = peak_main.max(vm_hwm_kb(pid).unwrap_or(0));
        for c in children(pid) {
            let peak = vm_hwm_kb(c).unwrap_or(0);
            let entry = peak_children.entry(c).or_default();
            *entry = (*entry).max(peak);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = begin.elapsed().as_secs_f64();
    let client = reaped_children_ticks() - cpu_before;
    // Let the server finish the backend's exit before reading its CPU.
    std::thread::sleep(Duration::from_millis(200));
    let db = postgres_ticks() - db_before;
    Run {
        wall,
        client_cpu: client as f64 / tick,
        db_cpu: db as f64 / tick,
        peak_main: peak_main as f64 / 1024.0,
        peak_child: peak_children.values().copied().max().unwrap_or(0) as f64 / 1024.0,
        exit: status.code().unwrap_or(-1),
        stdout: out.join().expect("stdout"),
        stderr: err.join().expect("stderr"),
    }
}

// ---------------------------------------------------------------- delay proxy

/// Starts a TCP proxy on 127.0.0.1 to `target` that delays every chunk by
/// `one_way` in each direction, preserving order; returns its port.
fn start_delay_proxy(target: SocketAddr, one_way: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        delay: Duration,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send((tokio::time::Instant::now() + delay, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
        reader.abort();
    }

    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy listens");
            port_tx.send(listener.local_addr().expect("address").port()).expect("port");
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(pipe(client_read, server_write, one_way));
                    pipe(server_read, client_write, one_way).await;
                });
            }
        });
    });
    port_rx.recv().expect("proxy port")
}

// ---------------------------------------------------------------- tools

struct Env {
    tick: f64,
    pg: PgConfig,
    database: String,
    system_database: String,
    lines: u64,
    tools: PathBuf,
    work: tempfile::TempDir,
    proxy_port: u16,
}

impl Env {
    fn odbc_connection_string(&self) -> String {
        format!(
            "Driver={{PostgreSQL Unicode}};Server={};Port={};Database={};Uid={};Pwd={};UseDeclareFetch=1;Fetch={FETCH_ROWS};",
            self.pg.host, self.pg.port, self.database, self.pg.reader_user, self.pg.reader_password
        )
    }

    fn plugin_settings(&self, port: u16) -> Value {
        json!({
            "connection": {
                "driver": "PostgreSQL Unicode",
                "server": self.pg.host,
                "port": port,
                "user": self.pg.reader_user,
                "password": self.pg.reader_password,
                "fetch_rows": FETCH_ROWS,
            },
            "system_database": self.system_database,
            "company_database": format!("{PREFIX}F{{company}}"),
        })
    }
}

/// A tool's result of one round.
#[derive(Debug, Clone, Default)]
struct Sample {
    run: Run,
    rows: u64,
    bytes: u64,
    /// CPU-seconds of the hub during the run (syncs only).
    hub_cpu: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tool {
    Copy,
    Odbc2Parquet,
    Odbcsv,
    ConnectorX,
    Extract,
    Sync,
    Resync,
    SyncDelayed,
}

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::Copy => "psql \\copy to /dev/null",
            Tool::Odbc2Parquet => "odbc2parquet",
            Tool::Odbcsv => "odbcsv",
            Tool::ConnectorX => "ConnectorX (arrow)",
            Tool::Extract => "ledgerlink extract (plugins check)",
            Tool::Sync => "ledgerlink sync (full)",
            Tool::Resync => "ledgerlink sync (unchanged, exit 7)",
            Tool::SyncDelayed => "ledgerlink sync (+2 ms RTT)",
        }
    }

    /// The name `BENCH_ONLY` selects the tool by.
    fn key(self) -> &'static str {
        match self {
            Tool::Copy => "copy",
            Tool::Odbc2Parquet => "odbc2parquet",
            Tool::Odbcsv => "odbcsv",
            Tool::ConnectorX => "connectorx",
            Tool::Extract => "extract",
            Tool::Sync | Tool::Resync => "sync",
            Tool::SyncDelayed => "sync-delayed",
        }
    }
}

fn check(tool: Tool, run: &Run, expected: &[i32]) {
    assert!(
        expected.contains(&run.exit),
        "{} exited with {}:\n{}\n{}",
        tool.label(),
        run.exit,
        run.stdout.chars().take(2000).collect::<String>(),
        run.stderr.chars().take(4000).collect::<String>()
    );
}

fn dir_bytes(dir: &Path, suffix: &str) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            total += dir_bytes(&path, suffix);
        } else if path.to_string_lossy().ends_with(suffix) {
            total += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    total
}

fn run_copy(env: &Env) -> Sample {
    let sql = format!("\\copy ({}) TO '/dev/null'", query());
    let run = measure(
        Command::new("psql")
            .args(["-X", "-h", &env.pg.host, "-p", &env.pg.port.to_string(), "-U", &env.pg.reader_user])
            .args(["-d", &env.database, "-c", &sql])
            .env("PGPASSWORD", &env.pg.reader_password),
        env.tick,
    );
    check(Tool::Copy, &run, &[0]);
    let rows = run.stdout.trim().strip_prefix("COPY ").and_then(|n| n.parse().ok()).unwrap_or(0);
    Sample { run, rows, ..Sample::default() }
}

fn run_odbc2parquet(env: &Env) -> Sample {
    let out = env.work.path().join("out.parquet");
    let _ = std::fs::remove_file(&out);
    let run = measure(
        Command::new(env.tools.join("bin/odbc2parquet"))
            .args(["query", "--connection-string", &env.odbc_connection_string()])
            .arg(&out)
            .arg(query()),
        env.tick,
    );
    check(Tool::Odbc2Parquet, &run, &[0]);
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&out);
    Sample { run, rows: env.lines, bytes, ..Sample::default() }
}

fn run_odbcsv(env: &Env) -> Sample {
    let out = env.work.path().join("out.csv");
    let _ = std::fs::remove_file(&out);
    let run = measure(
        Command::new(env.tools.join("bin/odbcsv"))
            .args(["query", "--connection-string", &env.odbc_connection_string(), "--output"])
            .arg(&out)
            .arg(query()),
        env.tick,
    );
    check(Tool::Odbcsv, &run, &[0]);
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let mut rows = 0u64;
    let mut file = std::fs::File::open(&out).expect("CSV output");
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).expect("read CSV");
        if n == 0 {
            break;
        }
        rows += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    let _ = std::fs::remove_file(&out);
    Sample { run, rows: rows.saturating_sub(1), bytes, ..Sample::default() }
}

fn run_connectorx(env: &Env) -> Sample {
    let script = "import sys, connectorx as cx\n\
                  t = cx.read_sql(sys.argv[1], sys.argv[2], return_type='arrow')\n\
                  print(t.num_rows)\n";
    let url = format!(
        "postgresql://{}:{}@{}:{}/{}",
        env.pg.reader_user, env.pg.reader_password, env.pg.host, env.pg.port, env.database
    );
    let run = measure(
        Command::new(env.tools.join("venv/bin/python")).args(["-c", script]).arg(url).arg(query()),
        env.tick,
    );
    check(Tool::ConnectorX, &run, &[0]);
    let rows = run.stdout.trim().parse().unwrap_or(0);
    Sample { run, rows, ..Sample::default() }
}

fn run_extract(env: &Env) -> Sample {
    let file = settings_file(&env.plugin_settings(env.pg.port));
    let run = measure(
        Command::new(binary("ledgerlink"))
            .args(["plugins", "check"])
            .arg(erp_plugin(Erp::VismaBusiness))
            .arg("--settings")
            .arg(file.path())
            .arg("--json"),
        env.tick,
    );
    check(Tool::Extract, &run, &[0]);
    let report: Value = serde_json::from_str(&run.stdout).expect("JSON report");
    let rows = report["companies"][0]["years"]
        .as_array()
        .expect("years")
        .iter()
        .map(|y| y["counts"]["voucher_lines"].as_u64().unwrap_or(0))
        .sum();
    Sample { run, rows, ..Sample::default() }
}

/// A full sync to a fresh hub and agent, then the unchanged re-sync.
fn run_sync(env: &Env, port: u16, resync: bool) -> (Sample, Option<Sample>) {
    let hub = Hub::start();
    let key = hub.create_tenant("bench");
    let agent = Agent::new(
        &[erp_plugin(Erp::VismaBusiness)],
        &hub.url,
        &key,
        &[SourceConfig {
            id: "vb".into(),
            plugin: "visma-business".into(),
            settings: env.plugin_settings(port),
            years: vec![2024, 2025],
            extra: String::new(),
        }],
    );
    let hub_pid = hub.pid().expect("the hub runs");
    let hub_before = process_ticks(hub_pid);
    let run = measure(&mut agent.command(&["sync", "--source", "vb"]), env.tick);
    check(Tool::Sync, &run, &[0]);
    let hub_cpu = (process_ticks(hub_pid) - hub_before) as f64 / env.tick;
    let bytes = dir_bytes(&hub.data_dir().join("hub/parts"), ".zst");
    let full = Sample { run, rows: env.lines, bytes, hub_cpu };
    let again = resync.then(|| {
        let run = measure(&mut agent.command(&["sync", "--source", "vb"]), env.tick);
        check(Tool::Resync, &run, &[7]);
        Sample { run, rows: env.lines, ..Sample::default() }
    });
    (full, again)
}

// ---------------------------------------------------------------- report

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Medians of a tool's rounds.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    wall: f64,
    rows: u64,
    client_cpu: f64,
    db_cpu: f64,
    peak_main: f64,
    peak_child: f64,
    bytes: u64,
    hub_cpu: f64,
}

impl Summary {
    fn of(samples: &[Sample]) -> Summary {
        let m = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
        Summary {
            wall: m(&|s| s.run.wall),
            rows: samples.first().map_or(0, |s| s.rows),
            client_cpu: m(&|s| s.run.client_cpu),
            db_cpu: m(&|s| s.run.db_cpu),
            peak_main: m(&|s| s.run.peak_main),
            peak_child: m(&|s| s.run.peak_child),
            bytes: m(&|s| s.bytes as f64) as u64,
            hub_cpu: m(&|s| s.hub_cpu),
        }
    }

    fn rows_per_s(&self) -> f64 {
        self.rows as f64 / self.wall
    }

    fn per_million(&self, cpu: f64) -> f64 {
        cpu / (self.rows as f64 / 1e6)
    }

    fn peak_total(&self) -> f64 {
        self.peak_main + self.peak_child
    }

    /// Every CPU-second the run cost the machine: client, database and hub.
    fn total_cpu(&self) -> f64 {
        self.client_cpu + self.db_cpu + self.hub_cpu
    }
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown".into(), |m| m.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let pg = PgConfig::from_env();
    let version = pg
        .reader("postgres")
        .ok()
        .and_then(|mut c| c.query_one("SHOW server_version", &[]).ok())
        .map_or("unknown".into(), |r| r.get::<_, String>(0));
    let command_text = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let date = command_text("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let driver = command_text("sh", &["-c", "dpkg-query -W -f '${Version}' odbc-postgresql 2>/dev/null"]);
    format!(
        "- date: {date}\n- CPU: {model}, {cores} cores (nproc)\n- memory: {:.1} GiB\n\
         - PostgreSQL {version} on the same machine (loopback TCP), psqlODBC {driver}\n",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

fn tool_versions(tools: &Path) -> String {
    let version = |program: PathBuf, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().replace('\n', " "))
            .unwrap_or_else(|_| "missing".into())
    };
    format!(
        "- tools: {}, {}, connectorx {}\n",
        version(tools.join("bin/odbc2parquet"), &["--version"]),
        version(tools.join("bin/odbcsv"), &["--version"]),
        version(
            tools.join("venv/bin/python"),
            &[
                "-c",
                "import connectorx, pyarrow; print(connectorx.__version__, '/ pyarrow', pyarrow.__version__)"
            ]
        ),
    )
}

fn table(lines: u64, rounds: usize, results: &BTreeMap<Tool, Summary>) -> String {
    let base = |t| results.get(&t).map_or(f64::NAN, |s: &Summary| s.wall);
    let (o2p, copy) = (base(Tool::Odbc2Parquet), base(Tool::Copy));
    let mut out = format!(
        "### {} voucher lines (median of {rounds} rounds)\n\n\
         | tool | wall s | rows/s | client CPU s/M rows | DB CPU s/M rows | hub CPU s/M rows | peak RSS MB (process + largest child) | bytes out | wall ÷ odbc2parquet | wall ÷ COPY |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        group(lines)
    );
    for (tool, s) in results {
        let peak = if s.peak_child > 0.0 {
            format!("{:.1} ({:.1} + {:.1})", s.peak_total(), s.peak_main, s.peak_child)
        } else {
            format!("{:.1}", s.peak_main)
        };
        let bytes = if s.bytes > 0 { format!("{:.1} MB", s.bytes as f64 / 1e6) } else { "–".into() };
        let hub = if s.hub_cpu > 0.0 { format!("{:.2}", s.per_million(s.hub_cpu)) } else { "–".into() };
        let _ = writeln!(
            out,
            "| {} | {:.2} | {} | {:.2} | {:.2} | {hub} | {peak} | {bytes} | {:.2} | {:.2} |",
            tool.label(),
            s.wall,
            group(s.rows_per_s() as u64),
            s.per_million(s.client_cpu),
            s.per_million(s.db_cpu),
            s.wall / o2p,
            s.wall / copy
        );
    }
    out
}

/// The wall time no run can beat on this machine: its CPU-seconds (client,
/// database, hub) spread perfectly over every core.
fn cpu_floors(lines: u64, results: &BTreeMap<Tool, Summary>) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let o2p = results.get(&Tool::Odbc2Parquet).map_or(f64::NAN, |s| s.wall);
    let mut out = format!(
        "### CPU floor at {} lines ({cores} cores)\n\n\
         Everything runs on this machine, so no run can finish before its CPU-seconds (client + DB + hub)\n\
         divided by the cores. A tool far above its floor waits (latency); one near it is CPU-bound.\n\n\
         | tool | CPU s (client + DB + hub) | floor s | wall ÷ floor | floor ÷ odbc2parquet wall |\n\
         |---|---:|---:|---:|---:|\n",
        group(lines)
    );
    for (tool, s) in results.iter().filter(|(t, _)| **t != Tool::Resync) {
        let floor = s.total_cpu() / cores;
        let _ = writeln!(
            out,
            "| {} | {:.1} ({:.1} + {:.1} + {:.1}) | {floor:.2} | {:.2} | {:.2} |",
            tool.label(),
            s.total_cpu(),
            s.client_cpu,
            s.db_cpu,
            s.hub_cpu,
            s.wall / floor,
            floor / o2p
        );
    }
    out
}

fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn targets(lines: u64, r: &BTreeMap<Tool, Summary>) -> String {
    let get = |t| r.get(&t).copied().unwrap_or_default();
    let (sync, o2p, copy, cx, resync, delayed, odbcsv, extract) = (
        get(Tool::Sync),
        get(Tool::Odbc2Parquet),
        get(Tool::Copy),
        get(Tool::ConnectorX),
        get(Tool::Resync),
        get(Tool::SyncDelayed),
        get(Tool::Odbcsv),
        get(Tool::Extract),
    );
    let verdict = |ok: bool| if ok { "**met**" } else { "**missed**" };
    let mut rows: Vec<(String, String, bool)> = Vec::new();
    rows.push((
        "full sync ≤ 0.7 × odbc2parquet wall time".into(),
        format!("{:.2} ×", sync.wall / o2p.wall),
        sync.wall <= 0.7 * o2p.wall,
    ));
    rows.push((
        "full sync within 3 × of COPY".into(),
        format!("{:.2} ×", sync.wall / copy.wall),
        sync.wall <= 3.0 * copy.wall,
    ));
    rows.push((
        "≥ 0.8 × ConnectorX's rows/s (full sync)".into(),
        format!(
            "{:.2} × (extract only: {:.2} ×)",
            sync.rows_per_s() / cx.rows_per_s(),
            extract.rows_per_s() / cx.rows_per_s()
        ),
        sync.rows_per_s() >= 0.8 * cx.rows_per_s(),
    ));
    rows.push((
        "… at ≤ 1/4 of ConnectorX's peak memory (host + worker)".into(),
        format!(
            "{:.1} MB vs {:.1} MB = {:.2} ×",
            sync.peak_total(),
            cx.peak_main,
            sync.peak_total() / cx.peak_main
        ),
        sync.peak_total() <= cx.peak_main / 4.0,
    ));
    rows.push((
        format!("peak RSS host + worker ≤ 64 MB ({} lines)", group(lines)),
        format!("{:.1} MB ({:.1} + {:.1})", sync.peak_total(), sync.peak_main, sync.peak_child),
        sync.peak_total() <= 64.0,
    ));
    rows.push((
        "re-sync of unchanged data ≤ 2 % of full sync".into(),
        format!("{:.2} s = {:.1} %", resync.wall, 100.0 * resync.wall / sync.wall),
        resync.wall <= 0.02 * sync.wall,
    ));
    rows.push((
        "bytes uploaded ≤ 1/3 of CSV size".into(),
        format!(
            "{:.1} MB vs {:.1} MB = {:.3} ×",
            sync.bytes as f64 / 1e6,
            odbcsv.bytes as f64 / 1e6,
            sync.bytes as f64 / odbcsv.bytes as f64
        ),
        sync.bytes as f64 <= odbcsv.bytes as f64 / 3.0,
    ));
    rows.push((
        "with 2 ms RTT ≤ 1.3 × no-delay time".into(),
        format!("{:.2} ×", delayed.wall / sync.wall),
        delayed.wall <= 1.3 * sync.wall,
    ));
    rows.push((
        "client CPU s/M rows ≤ 1.2 × odbcsv (full sync)".into(),
        format!(
            "{:.2} × (extract only: {:.2} ×)",
            sync.client_cpu / odbcsv.client_cpu,
            extract.client_cpu / odbcsv.client_cpu
        ),
        sync.client_cpu <= 1.2 * odbcsv.client_cpu,
    ));
    let mut out =
        format!("### Targets at {} lines\n\n| target | measured | verdict |\n|---|---|---|\n", group(lines));
    for (target, measured, ok) in rows {
        let _ = writeln!(out, "| {target} | {measured} | {} |", verdict(ok));
    }
    out
}

// ---------------------------------------------------------------- main

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The company database holds exactly `lines` lines (a kept fixture to reuse)?
fn existing_fixture(pg: &PgConfig, database: &str, lines: u64) -> bool {
    pg.reader(database)
        .ok()
        .and_then(|mut c| c.query_one("SELECT COUNT(*) FROM AcTr", &[]).ok())
        .is_some_and(|r| r.get::<_, i64>(0) as u64 == lines)
}

fn prepare_fixture(pg: &PgConfig, lines: u64, reuse: bool) {
    let database = format!("{PREFIX}F0001");
    if reuse && existing_fixture(pg, &database, lines) {
        println!("Reusing the fixture {database} ({lines} lines)");
        return;
    }
    let begin = Instant::now();
    let mut spec = FixtureSpec::new(Erp::VismaBusiness, Backend::Postgres);
    spec.prefix = Some(PREFIX.into());
    spec.voucher_lines = lines;
    spec.companies = 1;
    spec.years = vec![2024, 2025];
    let mut fixture = Fixture::create(spec).expect("fixture (run scripts/setup first)");
    fixture.keep();
    // Settle the new tables so autovacuum does not run during the measurements.
    let mut admin = pg.admin(&database).expect("admin connection");
    admin.batch_execute("VACUUM ANALYZE").expect("VACUUM ANALYZE");
    println!(
        "Fixture: {lines} voucher lines in PostgreSQL, created in {:.1} s",
        begin.elapsed().as_secs_f64()
    );
}

fn main() {
    let sizes: Vec<u64> = std::env::var("BENCH_LINES")
        .unwrap_or_else(|_| "2000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("BENCH_LINES: numbers separated by commas"))
        .collect();
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let only: Option<Vec<String>> =
        std::env::var("BENCH_ONLY").ok().map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    let keep = std::env::var("BENCH_KEEP").is_ok_and(|v| v == "1");
    let reuse = std::env::var("BENCH_REUSE").is_ok_and(|v| v == "1");
    let tools = std::env::var("BENCH_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target/bench-tools"));
    let pg = PgConfig::from_env();
    let tick = ticks_per_second();
    let target: SocketAddr = format!("{}:{}", pg.host, pg.port)
        .parse()
        .or_else(|_| {
            use std::net::ToSocketAddrs;
            (pg.host.as_str(), pg.port).to_socket_addrs().map(|mut a| a.next().expect("address"))
        })
        .expect("PostgreSQL address");
    let proxy_port = start_delay_proxy(target, Duration::from_millis(1));

    let mut report = format!(
        "# Benchmarks: Ledgerlink against odbc2parquet, ConnectorX and COPY\n\n\
         Generated by `scripts/bench-compare` (`tests/e2e/benches/compare.rs`, which documents how each\n\
         number is measured). All tools read the same rows: the visma-business plugin's voucher-line\n\
         query (24 columns, `AcTr` joined with `Cur`, ordered) for one company and two years, from\n\
         PostgreSQL over loopback TCP; the ODBC tools use psqlODBC with `UseDeclareFetch=1;Fetch={FETCH_ROWS}`.\n\
         Client CPU is the tool's process (for `ledgerlink sync`: host + plugin worker); DB CPU is every\n\
         PostgreSQL process; hub CPU is the local hub's process during the sync (it shares the\n\
         machine). \"bytes out\" is the parquet file, the CSV file, or the zstd parts the hub stored.\n\n## Machine\n\n{}{}\n",
        machine(),
        tool_versions(&tools)
    );
    report.push_str("## Results\n\n");
    for &lines in &sizes {
        prepare_fixture(&pg, lines, reuse);
        let env = Env {
            tick,
            pg: pg.clone(),
            database: format!("{PREFIX}F0001"),
            system_database: format!("{PREFIX}vbsys"),
            lines,
            tools: tools.clone(),
            work: tempfile::tempdir().expect("work dir"),
            proxy_port,
        };
        let order: Vec<Tool> = [
            Tool::Copy,
            Tool::Odbc2Parquet,
            Tool::Odbcsv,
            Tool::ConnectorX,
            Tool::Extract,
            Tool::Sync,
            Tool::SyncDelayed,
        ]
        .into_iter()
        .filter(|tool| only.as_ref().is_none_or(|keys| keys.iter().any(|k| k == tool.key())))
        .collect();
        let mut samples: BTreeMap<Tool, Vec<Sample>> = BTreeMap::new();
        for round in 0..rounds {
            for i in 0..order.len() {
                let tool = order[(i + round) % order.len()];
                let sample = match tool {
                    Tool::Copy => run_copy(&env),
                    Tool::Odbc2Parquet => run_odbc2parquet(&env),
                    Tool::Odbcsv => run_odbcsv(&env),
                    Tool::ConnectorX => run_connectorx(&env),
                    Tool::Extract => run_extract(&env),
                    Tool::Sync => {
                        let (full, again) = run_sync(&env, env.pg.port, true);
                        let again = again.expect("re-sync");
                        eprintln!("  round {round}: {:<40} {:>7.2} s", Tool::Resync.label(), again.run.wall);
                        samples.entry(Tool::Resync).or_default().push(again);
                        full
                    }
                    Tool::SyncDelayed => run_sync(&env, env.proxy_port, false).0,
                    Tool::Resync => unreachable!("measured with the full sync"),
                };
                assert_eq!(sample.rows, lines, "{} read {} rows", tool.label(), sample.rows);
                eprintln!(
                    "  round {round}: {:<40} {:>7.2} s, client {:.2} s CPU, db {:.2} s CPU, peak {:.1}+{:.1} MB",
                    tool.label(),
                    sample.run.wall,
                    sample.run.client_cpu,
                    sample.run.db_cpu,
                    sample.run.peak_main,
                    sample.run.peak_child
                );
                samples.entry(tool).or_default().push(sample);
            }
        }
        let results: BTreeMap<Tool, Summary> = samples.iter().map(|(t, s)| (*t, Summary::of(s))).collect();
        let table = table(lines, rounds, &results);
        if only.is_some() {
            println!("\n{table}\n{}", cpu_floors(lines, &results));
            continue;
        }
        let verdicts = targets(lines, &results);
        let floors = cpu_floors(lines, &results);
        println!("\n{table}\n{verdicts}\n{floors}");
        let _ = write!(report, "{table}\n{verdicts}\n{floors}\n");
    }
    if !keep {
        let dropped = drop_pg_prefix(&pg, PREFIX).expect("drop the bench databases");
        println!("Dropped {}", dropped.join(", "));
    }
    if only.is_some() {
        return;
    }
    let path = repo_root().join("docs/benchmarks.md");
    let analysis = std::fs::read_to_string(&path)
        .ok()
        .and_then(|old| old.find(ANALYSIS_MARK).map(|i| old[i..].to_owned()))
        .unwrap_or_else(|| format!("{ANALYSIS_MARK}\n"));
    std::fs::write(&path, format!("{report}{analysis}")).expect("write docs/benchmarks.md");
    println!("Wrote {}", path.display());
}
