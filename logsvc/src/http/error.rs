//! JSON error answers: `{"error": "...", "code": "bad_request", "field": "containers[3].cpu_percent"}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The offending field or query parameter, when one is to blame.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }

    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// A failure of the store, answered without its text (it may name files, SQL or internals):
    /// the cause goes to the log, the client gets a stable code and what to do.
    pub fn from_store(error: &StoreError, doing: &'static str) -> Self {
        match error {
            StoreError::WriterGone => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service is shutting down; retry",
            ),
            other => {
                tracing::error!(error = %other, cause = ?std::error::Error::source(other), doing, "store failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal error while {doing}; see the log service's log"),
                )
            }
        }
    }

    /// A stable, machine-readable name of the status (the message may change; this does not).
    pub fn code(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "internal",
        }
    }

    /// Every code [`ApiError::code`] can give (the OpenAPI document lists them).
    pub const CODES: [&'static str; 8] = [
        "bad_request",
        "unauthorized",
        "not_found",
        "method_not_allowed",
        "payload_too_large",
        "unsupported_media_type",
        "unavailable",
        "internal",
    ];
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message, "code": self.code() });
        if let Some(field) = self.field {
            body["field"] = serde_json::Value::String(field);
        }
        json_response(self.status, body.to_string().into_bytes())
    }
}

/// A response with a JSON body already serialized.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
