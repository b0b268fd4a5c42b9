//! Helpers of Ledgerlink's end-to-end tests: where the built binaries and plugin
//! libraries are, and plugin settings for the ERP fixture databases.
//!
//! The tests need `cargo build --workspace` (plugin libraries, binaries) and
//! `scripts/setup` (ODBC drivers, PostgreSQL with the test roles) first; the
//! project's test command does both.

pub mod agent;
pub mod emulator;
pub mod hub;
pub mod service;

use ledgerlink_fixtures::{Backend, Erp, Fixture, PgConfig};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The cargo target directory the tests were built into (`target/debug`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_owned()
}

/// A built binary of the workspace.
pub fn binary(name: &str) -> PathBuf {
    let path = target_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

/// A built plugin library of the workspace (crate name with underscores).
pub fn plugin_library(crate_name: &str) -> PathBuf {
    let name = format!("{}{crate_name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let path = target_dir().join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

/// The plugin library of an ERP.
pub fn erp_plugin(erp: Erp) -> PathBuf {
    plugin_library(match erp {
        Erp::VismaBusiness => "visma_business",
        Erp::VismaGlobal => "visma_global",
        Erp::SapB1 => "sap_b1",
    })
}

/// The read-only PostgreSQL password the fixtures grant (a test secret: tests
/// check it never appears in any output).
pub fn reader_password() -> String {
    PgConfig::from_env().reader_password
}

/// The `connection` settings that reach a fixture, with `password` for PostgreSQL.
pub fn connection(fixture: &Fixture, password: &str) -> Value {
    let info = fixture.info();
    match info.backend {
        Backend::Postgres => json!({
            "driver": "PostgreSQL Unicode",
            "server": info.pg_host,
            "port": info.pg_port,
            "user": info.reader_user,
            "password": password,
            "fetch_rows": 500,
        }),
        Backend::Sqlite => json!({ "driver": "SQLite3", "directory": info.sqlite_dir, "fetch_rows": 500 }),
    }
}

/// Complete plugin settings for a fixture of `erp` (which may differ from the
/// fixture's own ERP, to test a wrong choice).
pub fn settings_for(erp: Erp, fixture: &Fixture, password: &str) -> Value {
    let info = fixture.info();
    let mut settings = json!({ "connection": connection(fixture, password) });
    let object = settings.as_object_mut().expect("object");
    match erp {
        Erp::VismaBusiness => {
            object.insert("system_database".into(), json!(info.system_database));
            object.insert("company_database".into(), json!(format!("{}F{{company}}", info.prefix)));
        }
        Erp::VismaGlobal => {
            object.insert("database".into(), json!(info.system_database));
        }
        Erp::SapB1 => {
            object.insert("system_database".into(), json!(info.system_database));
        }
    }
    settings
}

/// Writes settings to a temporary JSON file.
pub fn settings_file(settings: &Value) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::with_suffix(".json").expect("temp file");
    std::fs::write(file.path(), serde_json::to_vec_pretty(settings).expect("json")).expect("write settings");
    file
}

/// Runs `ledgerlink plugins check PLUGIN --settings … --json`.
pub fn plugins_check(plugin: &Path, settings: &Value) -> (Output, Value) {
    let file = settings_file(settings);
    let output = Command::new(binary("ledgerlink"))
        .args(["plugins", "check"])
        .arg(plugin)
        .arg("--settings")
        .arg(file.path())
        .arg("--json")
        .output()
        .expect("ledgerlink runs");
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, json)
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// Validates an XML file against the SAF-T Financial 1.30 schema kept in `hub/saf-t/`
/// with `xmllint` (from libxml2-utils, installed by `scripts/setup`); the output on failure.
pub fn xmllint_saf_t_130(file: &Path) -> Result<(), String> {
    let schema = repo_root().join("hub/saf-t/Norwegian_SAF-T_Financial_Schema_v_1.30.xsd");
    let output = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&schema)
        .arg(file)
        .output()
        .expect("xmllint runs (scripts/setup installs libxml2-utils)");
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A tmpfs of `kib` KiB mounted for the test's lifetime (the tests run as root).
pub struct SmallDisk(pub std::path::PathBuf);

impl SmallDisk {
    /// Mounts it at `path` (created if missing); panics when mounting fails.
    pub fn mount(path: std::path::PathBuf, kib: u32) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a small tmpfs failed: the disk-full test needs root (CI runs as root)"
        );
        SmallDisk(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
