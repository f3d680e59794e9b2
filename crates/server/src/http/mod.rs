//! The HTTP surface: one router per resource, merged here.

pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod ai;
pub mod error;
pub mod extract;
mod ops;
pub(crate) mod taxonomy;
pub(crate) mod tickets;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use std::sync::Arc;
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::TokenKeys;
use crate::config::Settings;
use crate::db::Db;
use error::AppError;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// The background workflow and the AI engine it runs.
    pub pipeline: crate::pipeline::Pipeline,
    pub keys: TokenKeys,
    pub settings: Arc<Settings>,
    /// Wakes an idle in-process worker when a request enqueued a job.
    pub wake: Arc<tokio::sync::Notify>,
    /// Unix milliseconds of the in-process workers' last loop turn (0: none has run).
    pub heartbeat: Arc<std::sync::atomic::AtomicI64>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(accounts::router())
        .merge(tickets::router())
        .merge(admin::router())
        .merge(taxonomy::router())
        .merge(ai::router())
        .merge(crate::web::router(state.clone()))
        .merge(ops::router())
        .route("/healthz", get(|| async { "ok" }))
        .route_layer(axum::middleware::from_fn(crate::observe::track_http))
        .fallback(|| async { AppError::NotFound })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Accepts a field that may be absent (leave as is), `null` (clear) or a value (set).
pub(crate) fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

/// Splits the `limit + 1` rows a listing query returns into the page and the cursor of the next one
/// (`None` on the last page).
pub(crate) fn into_page<T, C>(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> C) -> (Vec<T>, Option<C>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(cursor);
        (rows, next)
    } else {
        (rows, None)
    }
}

/// A page size from `?limit=`: 1 to 100, 25 when absent.
pub(crate) fn page_limit(limit: Option<i64>) -> Result<i64, AppError> {
    match limit {
        None => Ok(25),
        Some(n @ 1..=100) => Ok(n),
        Some(_) => Err(AppError::bad_query("limit must be between 1 and 100")),
    }
}
