//! The admin API's error: a status and one of Toxiproxy's exact messages.

use axum::http::StatusCode;

/// An error answered as `{"error":"<message>","status":<code>}`, Toxiproxy's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status of the answer.
    pub status: StatusCode,
    /// The message clients compare against (see `toxiproxy-api.md`).
    pub message: String,
}

impl ApiError {
    /// A 400 with the given message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    /// 404 `proxy not found`.
    pub fn proxy_not_found() -> Self {
        Self { status: StatusCode::NOT_FOUND, message: "proxy not found".into() }
    }

    /// 404 `toxic not found`.
    pub fn toxic_not_found() -> Self {
        Self { status: StatusCode::NOT_FOUND, message: "toxic not found".into() }
    }

    /// 409 `proxy already exists`.
    pub fn proxy_exists() -> Self {
        Self { status: StatusCode::CONFLICT, message: "proxy already exists".into() }
    }

    /// 409 `toxic already exists`.
    pub fn toxic_exists() -> Self {
        Self { status: StatusCode::CONFLICT, message: "toxic already exists".into() }
    }

    /// 400 `missing required field: <field>`.
    pub fn missing_field(field: &str) -> Self {
        Self::bad_request(format!("missing required field: {field}"))
    }

    /// 500 for a listener that could not bind; the message carries the OS error text.
    pub fn bind(listen: &str, err: &std::io::Error) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: format!("listen tcp {listen}: {err}") }
    }
}
