//! How an [`AppError`] answers: its status, and the JSON form `{"error": {"code", "message", "fields"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

use crate::desk::error::AppError;

impl AppError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    pub(crate) fn status_and_code(&self) -> (StatusCode, &'static str) {
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
            AppError::FileTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "file_too_large"),
            AppError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
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
