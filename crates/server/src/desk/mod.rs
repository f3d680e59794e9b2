//! The desk: every use-case of the helpdesk ("file a ticket", "who may change it", "what happens when it is
//! resolved"), as functions over one [`Desk`]. The JSON API (`http/`) and the pages (`web/`) both call these
//! and never each other; side effects (waking the workers, scheduling retraining) happen here, not in
//! handlers. Who may see and do what is stated once, in `smart_ticket_domain::access`.

pub mod accounts;
pub mod ai_admin;
pub mod articles;
pub mod attachments;
pub mod canned;
pub mod counters;
pub mod error;
pub mod jobs;
pub mod limits;
pub mod macros;
pub mod mail;
pub mod mail_answers;
pub mod proposals;
pub mod rules;
pub mod settings;
pub mod summaries;
pub mod taxonomy;
pub mod tickets;
pub mod views;
pub mod webhooks;

use std::sync::Arc;

use crate::auth::TokenKeys;
use crate::config::Settings;
use crate::db::Db;
use crate::model::User;
pub use error::{AppError, AppResult};

/// Everything a use-case needs: storage, the workflow and its AI, token keys, settings, the workers'
/// wake-up, and the rate limits. Cheap to clone.
#[derive(Clone)]
pub struct Desk {
    pub db: Db,
    /// The background workflow and the AI engine it runs.
    pub pipeline: crate::pipeline::Pipeline,
    pub keys: TokenKeys,
    pub settings: Arc<Settings>,
    /// Wakes an idle in-process worker when a request enqueued a job.
    pub wake: Arc<tokio::sync::Notify>,
    /// Unix milliseconds of the in-process workers' last loop turn (0: none has run).
    pub heartbeat: Arc<std::sync::atomic::AtomicI64>,
    /// Log-in, sign-up, search and costly-read rate limits.
    pub limits: Arc<limits::Limits>,
    /// Article page views not written yet.
    pub views: Arc<counters::ViewCounts>,
}

impl Desk {
    /// Tells an idle worker that a job waits (the queue is durable: this only shortens the wait).
    pub fn wake_workers(&self) {
        self.wake.notify_one();
    }
}

/// The signed-in caller (from a bearer token or the session cookie) and the session they use.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: User,
    pub session_id: String,
}

/// The peer address of the connection (the service is meant to face clients directly or sit behind a proxy
/// that limits on its own).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl ClientAddr {
    pub fn key(&self) -> String {
        self.0.map_or_else(|| "unknown".to_owned(), |a| a.to_string())
    }
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

/// A `?state=` filter: `default` when absent, else one of `T`'s names; the error names the allowed ones.
pub(crate) fn state_filter<T>(raw: Option<&str>, default: T) -> Result<T, String>
where
    T: std::str::FromStr<Err = smart_ticket_domain::ParseError>,
{
    raw.map_or(Ok(default), |s| s.parse().map_err(|e: smart_ticket_domain::ParseError| format!("state {}", e.message)))
}

/// A page size from `?limit=`: 1 to 100, 25 when absent.
pub(crate) fn page_limit(limit: Option<i64>) -> Result<i64, AppError> {
    match limit {
        None => Ok(25),
        Some(n @ 1..=100) => Ok(n),
        Some(_) => Err(AppError::bad_query("limit must be between 1 and 100")),
    }
}
