//! Errors of the web app and the one place that maps them to HTTP statuses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// What went wrong, with a sentence for the user.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Not logged in (or the session expired).
    #[error("{0}")]
    Unauthenticated(String),
    /// Logged in, but the role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// Missing or wrong CSRF token.
    #[error("{0}")]
    Csrf(String),
    /// Bad input from the client.
    #[error("{0}")]
    BadRequest(String),
    /// No such object.
    #[error("{0}")]
    NotFound(String),
    /// The object exists in another state (e.g. username taken).
    #[error("{0}")]
    Conflict(String),
    /// Too many login attempts; retry after this many seconds.
    #[error("too many login attempts; try again in {0} seconds")]
    RateLimited(u64),
    /// A failure on our side; the message is logged, not shown in full.
    #[error("{context}: {source}")]
    Internal {
        /// What we were doing.
        context: String,
        /// Why it failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl WebError {
    /// An internal error with context.
    pub fn internal(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> WebError {
        WebError::Internal {
            context: context.into(),
            source: source.into(),
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            WebError::Forbidden(_) | WebError::Csrf(_) => StatusCode::FORBIDDEN,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code for the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            WebError::Unauthenticated(_) => "unauthenticated",
            WebError::Forbidden(_) => "forbidden",
            WebError::Csrf(_) => "csrf",
            WebError::BadRequest(_) => "bad_request",
            WebError::NotFound(_) => "not_found",
            WebError::Conflict(_) => "conflict",
            WebError::RateLimited(_) => "rate_limited",
            WebError::Internal { .. } => "internal",
        }
    }
}

impl From<rusqlite::Error> for WebError {
    fn from(e: rusqlite::Error) -> Self {
        WebError::internal("database error", e)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let message = match &self {
            WebError::Internal { .. } => {
                tracing::error!(error = %self, "Web request failed");
                "internal error; the hub log has the details".to_string()
            }
            other => other.to_string(),
        };
        let body = serde_json::json!({"error": self.code(), "message": message});
        let mut resp = (self.status(), Json(body)).into_response();
        if let WebError::RateLimited(secs) = self {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}
