//! The API error table: every error an HTTP route can return, with its status, machine code and
//! message, in one place (interface contract: `{"error": {"code": "...", "message": "..."}}`).
//!
//! Messages are lower-case, without a trailing period, and name the offending value.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or malformed credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials, not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// Unknown resource.
    #[error("{0}")]
    NotFound(String),
    /// A malformed request (query, body, parameter).
    #[error("{0}")]
    BadRequest(String),
    /// A syntactically valid request that cannot be accepted.
    #[error("{0}")]
    Unprocessable(String),
    /// A conflicting create.
    #[error("{0}")]
    Conflict(String),
    /// Body over the documented limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Content type not accepted.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Accept header cannot be satisfied.
    #[error("{0}")]
    NotAcceptable(String),
    /// Over the documented rate limit; retry after the given seconds.
    #[error("{message}")]
    RateLimited {
        /// Message.
        message: String,
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The server is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// A failure of the server itself (storage, bug); logged.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// HTTP status and machine-readable code of each error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, "not_acceptable"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// Wraps an internal failure, logging it.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> ApiError {
        tracing::error!(%err, context, "internal error");
        ApiError::Internal(format!("{context}: {err}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = json!({"error": {"code": code, "message": self.to_string()}});
        let mut resp = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited {
            retry_after_secs, ..
        } = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if let ApiError::Unauthorized(_) = &self {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"threatfeed\""),
            );
        }
        resp
    }
}

/// Result type of route handlers.
pub type ApiResult<T> = Result<T, ApiError>;
