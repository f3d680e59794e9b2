//! The one error type handlers return, and its JSON form `{"error": {"code", "message", "fields"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use smart_ticket_domain::ParseError;
use std::collections::BTreeMap;

use crate::db::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("authentication required")]
    Unauthorized,
    #[error("the token or session is invalid or has expired")]
    InvalidToken,
    #[error("invalid email or password")]
    BadCredentials,
    #[error("you may not do this")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("invalid input")]
    Validation(BTreeMap<&'static str, String>),
    #[error("{0}")]
    Unprocessable(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("too many attempts; try again in {retry_after} seconds")]
    TooManyRequests { retry_after: u64 },
    #[error("expected a JSON body (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        AppError::Validation(BTreeMap::from([(field, message.into())]))
    }

    /// A query string parameter that does not parse or is out of range.
    pub fn bad_query(message: impl Into<String>) -> Self {
        AppError::BadRequest { code: "bad_query", message: message.into() }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            AppError::BadCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            AppError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            AppError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AppError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            AppError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            AppError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// Both parsed values, or one 422 naming every field that failed.
pub fn parse_both<A, B>(a: Result<A, ParseError>, b: Result<B, ParseError>) -> AppResult<(A, B)> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => Err(AppError::Validation(
            [a.err(), b.err()].into_iter().flatten().map(|e| (e.field, e.message.into_owned())).collect(),
        )),
    }
}

impl From<ParseError> for AppError {
    fn from(e: ParseError) -> Self {
        AppError::field(e.field, e.message)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate(what) => AppError::Conflict(format!("{what} already exists")),
            StoreError::NotFound => AppError::NotFound,
            StoreError::Conflict(why) => AppError::Conflict(why.to_owned()),
            StoreError::Invalid(p) => p.into(),
            StoreError::Transition(t) => AppError::Conflict(t.to_string()),
            StoreError::Db(e) => AppError::Internal(anyhow::Error::new(e).context("database")),
        }
    }
}

/// Every error answer: `{"error": {"code", "message", "fields"}}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, e.g. `validation_failed`, `not_found`, `rate_limited`.
    pub code: String,
    /// For people; on a validation failure it lists each field's problem.
    pub message: String,
    /// On a validation failure: what is wrong with each field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let (message, fields) = match &self {
            AppError::Internal(e) => {
                tracing::error!(error = ?e, "request failed");
                ("internal server error".to_owned(), None)
            }
            AppError::Validation(fields) => (
                fields.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; "),
                Some(fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()),
            ),
            other => (other.to_string(), None),
        };
        let retry_after = match &self {
            AppError::TooManyRequests { retry_after } => Some(*retry_after),
            _ => None,
        };
        let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message, fields } };
        let mut res = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        res
    }
}

pub type AppResult<T> = Result<T, AppError>;
