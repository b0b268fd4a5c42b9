//! The worker process side: `ledgerlink plugin-worker PATH`.
//!
//! Loads one plugin, says hello, then answers requests from stdin on stdout.
//! Plugin log lines go to stderr as JSON, where the host picks them up.

use super::protocol::{
    decode, read_frame, write_frame, write_message, Request, Response, WireError, KIND_BATCH, KIND_MESSAGE,
    PROTOCOL_VERSION,
};
use crate::plugins::{BatchBytes, LoadedPlugin, PluginSource, SourceError};
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_plugin_api::canonical::{encode_companies, Entity};
use ledgerlink_plugin_api::ErrorKind;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex};

fn wire(error: SourceError) -> WireError {
    match error {
        SourceError::Plugin { error, .. } => WireError {
            kind: error.kind.0,
            message: error.message.into_string(),
            resolution: error.resolution.into_string(),
        },
        other => WireError {
            kind: ErrorKind::DATA.0,
            message: other.to_string(),
            resolution: "Report this to the plugin's vendor.".into(),
        },
    }
}

/// Runs the worker until stdin closes.
pub fn run_worker_child(path: &Path) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("LEDGERLINK_LOG").unwrap_or_else(|_| "info".into()),
        ))
        .try_init();
    let mut out = BufWriter::with_capacity(256 << 10, std::io::stdout().lock());
    let plugin = match LoadedPlugin::load_vetted(path) {
        Ok(plugin) => plugin,
        Err(e) => {
            let _ = write_message(
                &mut out,
                &Response::LoadFailed(format!("{e}. Resolution: {}", e.resolution())),
            );
            return ExitCode::from(1);
        }
    };
    let manifest_json = serde_json::to_string(plugin.manifest()).expect("manifests serialize");
    if write_message(&mut out, &Response::Hello { protocol: PROTOCOL_VERSION, manifest_json }).is_err() {
        return ExitCode::from(1);
    }

    // Requests arrive on a thread of their own, so a Cancel reaches a running extraction.
    let current_cancel: Arc<Mutex<CancelFlag>> = Arc::new(Mutex::new(CancelFlag::new()));
    let (requests, incoming) = mpsc::channel::<Request>();
    {
        let current_cancel = current_cancel.clone();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            while let Ok(Some((KIND_MESSAGE, payload))) = read_frame(&mut stdin) {
                match decode::<Request>(&payload) {
                    Ok(Request::Cancel) => current_cancel.lock().expect("cancel lock").cancel(),
                    Ok(request) => {
                        if requests.send(request).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
    }

    let mut source: Option<PluginSource> = None;
    for request in incoming {
        let result = serve(&plugin, &mut source, request, &current_cancel, &mut out);
        if result.is_err() {
            // The host went away; nothing left to do.
            break;
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}

fn not_open() -> Response {
    Response::Error(WireError {
        kind: ErrorKind::INTERNAL.0,
        message: "the source is not open".into(),
        resolution: "This is a bug in the host.".into(),
    })
}

fn serve(
    plugin: &LoadedPlugin,
    source: &mut Option<PluginSource>,
    request: Request,
    current_cancel: &Arc<Mutex<CancelFlag>>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let response = match request {
        Request::Open { settings_json } => {
            let settings: serde_json::Value = serde_json::from_str(&settings_json).unwrap_or_default();
            match plugin.open(&settings) {
                Ok(opened) => {
                    *source = Some(opened);
                    Response::Text("opened".into())
                }
                Err(e) => Response::Error(wire(e)),
            }
        }
        Request::Check => match source {
            Some(s) => s.check().map(Response::Text).unwrap_or_else(|e| Response::Error(wire(e))),
            None => not_open(),
        },
        Request::Companies => match source {
            Some(s) => s
                .companies()
                .map(|c| Response::Companies(encode_companies(&c)))
                .unwrap_or_else(|e| Response::Error(wire(e))),
            None => not_open(),
        },
        Request::ChangeToken { company, year } => match source {
            Some(s) => s
                .change_token(&company, year)
                .map(Response::Text)
                .unwrap_or_else(|e| Response::Error(wire(e))),
            None => not_open(),
        },
        Request::Extract { company, entity, year } => {
            let Some(s) = source else { return write_message(out, &not_open()) };
            let entity: Entity = match entity.parse() {
                Ok(entity) => entity,
                Err(e) => {
                    let error = WireError {
                        kind: ErrorKind::UNSUPPORTED.0,
                        message: format!("{e}"),
                        resolution: String::new(),
                    };
                    return write_message(out, &Response::Error(error));
                }
            };
            let cancel = CancelFlag::new();
            *current_cancel.lock().expect("cancel lock") = cancel.clone();
            let mut raw = match s.extract_raw(&company, entity, year, cancel) {
                Ok(raw) => raw,
                Err(e) => return write_message(out, &Response::Error(wire(e))),
            };
            loop {
                match raw() {
                    None => break Response::End,
                    Some(Ok(bytes)) => {
                        let slice = match &bytes {
                            BatchBytes::Plugin(b) => b.as_slice(),
                            BatchBytes::Owned(b) => b.as_slice(),
                        };
                        write_frame(out, KIND_BATCH, slice)?;
                    }
                    Some(Err(e)) => break Response::Error(wire(e)),
                }
            }
        }
        Request::Cancel => return Ok(()),
    };
    write_message(out, &response)
}
