//! `GET /v1/companies/{company_id}/saf-t?year=Y[&source=S]`: the SAF-T 1.30 file, streamed.

use super::{prepare, ExportError, ExportOptions};
use crate::api::{resolve_company, year_param};
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::storage::Tenant;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use std::collections::HashMap;
use std::io::Write;

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::NoSnapshot { .. } => ApiError::not_found("no_current_snapshot", e.to_string()),
            ExportError::Data(_) | ExportError::Unmapped(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "saf_t_not_exportable", e.to_string())
            }
            ExportError::Store(s) => ApiError::from(s),
            ExportError::Io(io) => ApiError::internal(io),
        }
    }
}

/// Sends what is written, in chunks, to the response body.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /v1/companies/{company_id}/saf-t?year=Y`: a SAF-T Financial 1.30 file of the current snapshot.
pub async fn export(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(company_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let year = year_param(&query, true)?.unwrap_or_default();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<ApiResult<String>>();
    tokio::task::spawn_blocking(move || {
        let run = || -> ApiResult<(super::Prepared<'_>, String)> {
            let key = resolve_company(&*state.meta, &tenant, &company_id, &query)?;
            let prepared =
                prepare(&*state.meta, &*state.blobs, &tenant, &key, year, ExportOptions::default())?;
            let org = key.company_id.clone();
            Ok((prepared, org))
        };
        match run() {
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
            Ok((prepared, company)) => {
                let _ = ready_tx.send(Ok(company));
                let mut writer = ChannelWriter(tx.clone());
                if let Err(e) = prepared.write(&mut writer) {
                    tracing::warn!(error = %e, "SAF-T export stopped.");
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                }
            }
        }
    });
    let company = ready_rx.await.map_err(ApiError::internal)??;
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let file_name = format!("attachment; filename=\"SAF-T_{}_{year}.xml\"", sanitize(&company));
    let disposition =
        HeaderValue::from_str(&file_name).unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok((
        [(CONTENT_TYPE, HeaderValue::from_static("application/xml")), (CONTENT_DISPOSITION, disposition)],
        Body::from_stream(stream),
    )
        .into_response())
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}
