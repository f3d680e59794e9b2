//! What the JSON API and the pages share in front of the desk: extractors for the caller and their input,
//! error answers, cookies and CSRF, and the middleware every request passes through.

pub mod cookies;
pub mod error;
pub mod extract;
pub mod upload;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::IntoResponse;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::desk::{AppError, Desk};

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Wraps the API's and the pages' `routes` in what every answer goes through: metrics, run-to-completion,
/// the 404 fallback, URL and body limits, the timeout, security headers, CORS, tracing and request ids.
pub fn app(desk: Desk, routes: Router<Desk>) -> Router {
    let cors = (!desk.settings.protection.cors_origins.is_empty()).then(|| {
        let origins: Vec<HeaderValue> =
            desk.settings.protection.cors_origins.iter().filter_map(|o| o.parse().ok()).collect();
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::RETRY_AFTER, HeaderName::from_static(REQUEST_ID)])
            .max_age(Duration::from_secs(3600))
    });
    routes
        .route_layer(axum::middleware::from_fn(crate::metrics::track_http))
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
        .with_state(desk)
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
