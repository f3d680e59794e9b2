//! The HTTP surface: one router per resource, merged here.

pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod ai;
pub mod error;
pub mod extract;
pub mod limits;
pub mod openapi;
mod ops;
pub(crate) mod taxonomy;
pub(crate) mod tickets;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::IntoResponse;
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
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
    /// Log-in and sign-up rate limits.
    pub limits: Arc<limits::Limits>,
}

pub fn router(state: AppState) -> Router {
    let cors = (!state.settings.protection.cors_origins.is_empty()).then(|| {
        let origins: Vec<HeaderValue> =
            state.settings.protection.cors_origins.iter().filter_map(|o| o.parse().ok()).collect();
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::RETRY_AFTER, HeaderName::from_static(REQUEST_ID)])
            .max_age(Duration::from_secs(3600))
    });
    Router::new()
        .merge(accounts::router())
        .merge(tickets::router())
        .merge(admin::router())
        .merge(taxonomy::router())
        .merge(ai::router())
        .merge(crate::web::router(state.clone()))
        .merge(ops::router())
        .merge(openapi::router())
        .route_layer(axum::middleware::from_fn(crate::observe::track_http))
        .route_layer(axum::middleware::from_fn(run_to_completion))
        .fallback(|| async { AppError::NotFound })
        .layer(axum::middleware::from_fn(refuse_nul_in_url))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(tower::util::option_layer(cors))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static(REQUEST_ID)))
        .layer(SetRequestIdLayer::new(HeaderName::from_static(REQUEST_ID), MakeRequestUuid))
        .layer(axum::middleware::from_fn(drop_unsafe_request_id))
        .with_state(state)
}

/// Runs each handler in its own task, so a client that disconnects (or the request timeout) cannot cancel it
/// halfway through a database transaction: a transaction dropped mid-statement left its connection — and the
/// row locks it held — in limbo until reused, and under load that stalled the pool for seconds.
async fn run_to_completion(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use tracing::Instrument;
    match tokio::spawn(next.run(req).instrument(tracing::Span::current())).await {
        Ok(res) => res,
        Err(e) => {
            tracing::error!(error = %e, "request handler panicked");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A NUL character (`%00`) in the path or query is refused up front: PostgreSQL cannot store or compare text
/// holding one, so a search or cursor with it would otherwise fail deep in a query (schemathesis found it).
async fn refuse_nul_in_url(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let uri = req.uri();
    if uri.path().contains("%00") || uri.query().is_some_and(|q| q.contains("%00")) {
        return AppError::BadRequest {
            code: "bad_request",
            message: "the URL must not contain NUL characters (%00)".into(),
        }
        .into_response();
    }
    next.run(req).await
}

/// Every response's request id header (set from the request's, or generated); logged on every line.
const REQUEST_ID: &str = "x-request-id";
/// The longest request id a caller may set.
const REQUEST_ID_MAX: usize = 128;

/// A caller's request id is kept only when it is short and made of letters, digits and `-_.:/`; any other is
/// dropped, so a fresh one is generated instead of echoing and logging the caller's text.
async fn drop_unsafe_request_id(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let safe = |v: &HeaderValue| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= REQUEST_ID_MAX
            && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':' | b'/'))
    };
    let ids: Vec<bool> = req.headers().get_all(REQUEST_ID).iter().map(safe).collect();
    if ids.len() > 1 || ids.first() == Some(&false) {
        req.headers_mut().remove(REQUEST_ID);
    }
    next.run(req).await
}

/// Headers every response carries unless the handler chose its own (pages set a richer policy). API answers
/// are never stored by caches (they hold one account's data).
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let api = req.uri().path().starts_with("/api/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if api && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    res
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
