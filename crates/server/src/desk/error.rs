//! The one error type every use-case returns; `front::error` turns it into an answer (a JSON body or a page).

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
    /// A file over the attachment size limit: says which and the limit.
    #[error("{0}")]
    FileTooLarge(String),
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
            StoreError::Repeated => AppError::Conflict("this was done already".into()),
            StoreError::Invalid(p) => p.into(),
            StoreError::Transition(t) => AppError::Conflict(t.to_string()),
            StoreError::Db(e) => AppError::Internal(anyhow::Error::new(e).context("database")),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
