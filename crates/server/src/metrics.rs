//! Prometheus metrics: the process-wide recorder, the HTTP middleware that counts and times requests, and the
//! names every part of the service records under.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

/// Latency buckets in seconds, 1 ms to 30 s.
const SECONDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The recorder, installed on first use (once per process: tests start many apps in one).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new().set_buckets(SECONDS).and_then(|b| b.install_recorder());
            match built {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics are off: the Prometheus recorder could not be installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Counts requests by method, route (the matched pattern, never the raw path) and status, and times them.
pub async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}

/// A job's outcome (succeeded, retrying, dead, lost).
pub fn job_outcome(kind: &str, outcome: &'static str, seconds: f64) {
    metrics::counter!("jobs_total", "kind" => kind.to_owned(), "outcome" => outcome).increment(1);
    metrics::histogram!("job_duration_seconds", "kind" => kind.to_owned()).record(seconds);
}

/// Triage of one ticket, by the engine that answered.
pub fn triage(engine: &str, seconds: f64) {
    metrics::counter!("triage_total", "engine" => engine.to_owned()).increment(1);
    metrics::histogram!("triage_duration_seconds", "engine" => engine.to_owned()).record(seconds);
}

/// A language-model provider failed and the embedded engine answered instead.
pub fn provider_fallback(provider: &str) {
    metrics::counter!("ai_provider_fallbacks_total", "provider" => provider.to_owned()).increment(1);
}

/// An e-mail handed to the transport, or a failed attempt.
pub fn email(transport: &str, outcome: &'static str) {
    metrics::counter!("emails_total", "transport" => transport.to_owned(), "outcome" => outcome).increment(1);
}

/// Queue depth and the age of the oldest job, per kind and state, read from the database at scrape time.
pub fn queue(kind: &str, state: &str, count: i64, oldest_seconds: f64) {
    let labels = [("kind", kind.to_owned()), ("state", state.to_owned())];
    metrics::gauge!("job_queue_depth", &labels).set(count as f64);
    metrics::gauge!("job_queue_oldest_age_seconds", &labels).set(oldest_seconds);
}

/// Messages fetched from a mailbox, and how many of them were new.
pub fn mail_fetched(mailbox: &str, fetched: usize, stored: usize) {
    metrics::counter!("mail_fetched_total", "mailbox" => mailbox.to_owned()).increment(fetched as u64);
    metrics::counter!("mail_stored_total", "mailbox" => mailbox.to_owned()).increment(stored as u64);
}

/// A poll of a mailbox that read everything new.
pub fn mail_polled(mailbox: &str) {
    metrics::counter!("mail_polls_total", "mailbox" => mailbox.to_owned(), "outcome" => "ok").increment(1);
}

/// A poll of a mailbox that failed (the server down, a refused login, a timeout).
pub fn mail_poll_failed(mailbox: &str) {
    metrics::counter!("mail_polls_total", "mailbox" => mailbox.to_owned(), "outcome" => "failed").increment(1);
}

/// What a received message became: `ticket`, `reply`, `ignored` or `rejected`, with why (a short code).
pub fn mail_ingested(outcome: &'static str, reason: &'static str) {
    metrics::counter!("mail_ingested_total", "outcome" => outcome, "reason" => reason).increment(1);
}

/// An answer by e-mail `mailed` to a ticket, or `solved` by its customer.
pub fn mail_answer(outcome: &'static str) {
    metrics::counter!("mail_answers_total", "outcome" => outcome).increment(1);
}

/// A mailbox's health as the database records it (shared by every process), at scrape time.
pub fn mailbox(name: &str, last_success: Option<f64>, failing: bool, fetched: i64) {
    let label = [("mailbox", name.to_owned())];
    metrics::gauge!("mail_last_poll_success_timestamp_seconds", &label).set(last_success.unwrap_or(0.0));
    metrics::gauge!("mail_mailbox_failing", &label).set(if failing { 1.0 } else { 0.0 });
    metrics::gauge!("mail_mailbox_messages_stored", &label).set(fetched as f64);
}
