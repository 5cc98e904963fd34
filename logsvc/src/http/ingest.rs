//! `POST /api/v1/readings`: authenticate, check the media type and size, parse with field paths,
//! validate, and answer only after the writer committed the batch.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use stressmix_api::readings::{ReadingBatch, ValidationError};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::{ApiError, json_response};
use crate::store::StoreError;

/// Why a batch was refused. Each carries what its answer needs; `reason` labels the
/// `stressmix_logsvc_rejected_total` counter.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("missing or wrong bearer token (Authorization: Bearer <token>)")]
    Unauthorized,
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The connection failed while the body was read.
    #[error("could not read the body: {0}")]
    UnreadableBody(#[source] axum::BoxError),
    /// Not JSON, or JSON of the wrong shape; the answer names the path when one is to blame.
    #[error("{message}")]
    Malformed {
        field: Option<String>,
        message: String,
    },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("storing the batch failed")]
    Store(#[source] StoreError),
}

impl IngestError {
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Unauthorized => "unauthorized",
            IngestError::UnsupportedMediaType => "unsupported_media_type",
            IngestError::TooLarge { .. } => "too_large",
            IngestError::UnreadableBody(_) | IngestError::Malformed { .. } => "bad_json",
            IngestError::Invalid(_) => "invalid",
            IngestError::Store(StoreError::WriterGone) => "shutting_down",
            IngestError::Store(_) => "storage_failed",
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let error = match self {
            IngestError::Unauthorized => {
                let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            IngestError::UnsupportedMediaType => {
                ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
            }
            IngestError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message),
            IngestError::UnreadableBody(_) => ApiError::new(StatusCode::BAD_REQUEST, message),
            IngestError::Malformed { field, .. } => ApiError {
                field,
                ..ApiError::new(StatusCode::BAD_REQUEST, message)
            },
            IngestError::Invalid(e) => ApiError::bad_request(e.field, e.message),
            IngestError::Store(e) => ApiError::from_store(&e, "storing a batch"),
        };
        error.into_response()
    }
}

pub async fn post_readings(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match ingest(&state, &headers, body).await {
        Ok(response) => response,
        Err(refusal) => {
            state.metrics.record_rejection(refusal.reason());
            refusal.into_response()
        }
    }
}

fn authorized(expected: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant time over the contents; only the length can leak, which a token's entropy covers.
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

async fn ingest(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, IngestError> {
    if !authorized(state.config.token.as_deref(), headers) {
        return Err(IngestError::Unauthorized);
    }
    if !is_json(headers) {
        return Err(IngestError::UnsupportedMediaType);
    }
    let limit = state.config.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(IngestError::TooLarge { limit });
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(IngestError::TooLarge { limit }),
        Err(e) => return Err(IngestError::UnreadableBody(e)),
    };
    let batch = parse_batch(&bytes)?;
    batch.validate()?;
    let boot_id = batch.boot_id.clone();
    let sequence = batch.sequence;
    let outcome = state
        .db
        .ingest(Box::new(batch))
        .await
        .map_err(IngestError::Store)?;
    let body = serde_json::json!({
        "status": if outcome.duplicate { "duplicate" } else { "stored" },
        "boot_id": boot_id,
        "sequence": sequence,
        "readings": outcome.readings,
    });
    Ok(json_response(StatusCode::OK, body.to_string().into_bytes()))
}

/// Parses a batch; errors name the JSON path of the offending value.
pub fn parse_batch(bytes: &[u8]) -> Result<ReadingBatch, IngestError> {
    // Fast path: one UTF-8 check of the whole body, then plain serde_json on the text, which
    // spares a check per string. Only a failure pays for a second, path-tracking parse.
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(batch) = serde_json::from_str::<ReadingBatch>(text)
    {
        return Ok(batch);
    }
    let malformed =
        |field: Option<String>, message: String| IngestError::Malformed { field, message };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let batch: ReadingBatch = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // Syntax errors have no meaningful path ("." or "?"): no field to name.
        if e.inner().is_syntax() || e.inner().is_eof() || matches!(path.as_str(), "." | "?" | "") {
            malformed(None, format!("invalid JSON: {message}"))
        } else {
            malformed(Some(path), format!("invalid value: {message}"))
        }
    })?;
    de.end()
        .map_err(|e| malformed(None, format!("invalid JSON after the batch: {e}")))?;
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[tokio::test]
    async fn a_storage_failure_is_a_500_without_its_text() {
        let secret = "no such table: samples_secret_internal";
        let failure = || {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(1),
                Some(secret.to_string()),
            ))
        };
        let shared = StoreError::GroupCommit(std::sync::Arc::new(failure()));
        for error in [failure(), shared] {
            let error = IngestError::Store(error);
            assert_eq!(error.reason(), "storage_failed");
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let body = body_of(response).await;
            assert_eq!(body["code"], "internal");
            assert!(!body.to_string().contains("samples_secret"), "{body}");
        }
    }

    #[tokio::test]
    async fn shutting_down_is_a_503_to_retry() {
        let error = IngestError::Store(StoreError::WriterGone);
        assert_eq!(error.reason(), "shutting_down");
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body_of(response).await["code"], "unavailable");
    }
}
