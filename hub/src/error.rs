//! API errors: a status, a stable code and a sentence, rendered as `{"error": {...}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledgerlink_protocol::api::{ErrorBody, ErrorDetail};
use ledgerlink_protocol::ManifestError;

/// An error answered to an API client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What was wrong, for a person.
    pub message: String,
    /// Structured facts, when any.
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: None }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 with a code.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 401: the request carries no valid API key.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404 for a snapshot the tenant does not have (whether or not another tenant does).
    pub fn snapshot_not_found(id: &str) -> Self {
        Self::not_found("snapshot_not_found", format!("snapshot `{id}` does not exist"))
    }

    /// 500: a fault of the hub, logged with its cause; the client gets no internals.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "Internal error.");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the hub failed to handle the request; see its log",
        )
    }
}

impl From<ManifestError> for ApiError {
    fn from(e: ManifestError) -> Self {
        ApiError::bad_request(e.code(), format!("invalid manifest: {e}"))
    }
}

impl From<crate::storage::StoreError> for ApiError {
    fn from(e: crate::storage::StoreError) -> Self {
        if e.is_storage_full() {
            tracing::error!(error = %e, "The hub's storage is full. Resolution: free space on the disk of the \
                hub's data directory (or grow it); agents keep their data and send it again.");
            return ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "the hub's storage is full, so it kept nothing of this request; the agent keeps its data and \
                 sends it again. Resolution: the central service must free space on the hub",
            );
        }
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail { code: self.code.to_owned(), message: self.message, details: self.details },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
