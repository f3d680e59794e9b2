//! Smart Ticket's storage: one interface, two backends (SQLite embedded, PostgreSQL for scale-out), chosen by
//! URL scheme; the row types ([`model`]); the migrations of each backend (`migrations/`).
//!
//! Queries are written once with `$N` placeholders, which both backends accept; [`on_pool!`] runs the same
//! code against whichever pool is configured, and the few dialect differences are spelled out where they occur.

pub mod articles;
pub mod attachments;
mod import;
mod jobs;
mod mail;
mod mail_answers;
mod mailboxes;
pub mod model;
mod pipeline;
mod proposals;
mod reports;
mod rules;
mod sessions;
mod summaries;
mod taxonomy;
mod tickets;
mod triage;
mod users;
mod webhooks;
mod workflow;

pub use articles::{
    Article, ArticleFilter, ArticlePatch, ArticleRevision, ArticleVectorRow, KnowledgeFigures, NewArticle,
};
pub use attachments::{AttachTo, Attachment, NewAttachment};
pub use import::ImportedTicket;
pub use jobs::{Job, NewJob, QueueStat};
pub use mail::{HEAD_BYTES, InboundMessage, InboundSummary, MailOrigin, NewInbound};
pub use mail_answers::{MailAnswer, MailAnswerFigures};
pub use mailboxes::MailboxState;
pub use pipeline::{Breach, Routed};
pub use proposals::{NewProposal, Proposal, ResolvedRow};
pub use reports::DashboardRow;
pub use rules::{Scan, StoredRule};
pub use sessions::SessionKind;
pub use summaries::StoredSummary;
pub use taxonomy::{Category, SkillInfo};
pub use tickets::{
    AssigneeFilter, Cause, Change as FieldChange, Firing, IndexRow, RerankRow, TicketFilter, TicketPatch, TicketWork,
    Via, WorkComment, fts5_query, notify_job, plan_work, rules_job, search_excludes,
};
pub use triage::{
    LabelledRow, OpenTicket, QualityRow, StoredModel, TicketText, TriageWrite, vector_from_bytes, vector_to_bytes,
};
pub use users::UserPatch;
pub use webhooks::{Attempt, Delivery, NewDelivery, Webhook, delivery_job};
pub use workflow::{CannedResponse, CannedUse, Macro};

use anyhow::Context;
use smart_ticket_domain::{InvalidTransition, ParseError};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// The configured database. Cheap to clone (pools are reference-counted).
///
/// SQLite allows one writer at a time: writes go through a one-connection pool, so they queue in order
/// here instead of retrying on `SQLITE_BUSY`, while reads use their own pool and never wait for writes (WAL).
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

/// The pool one query runs on; see [`Db::reader`] and [`Db::writer`].
pub(crate) enum PoolRef<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

/// Evaluates `$body` with `$pool` bound to the concrete pool, `$DB` to its database type and `$pg` to whether
/// it is PostgreSQL, so one piece of query code serves both backends. The body runs in its own async block:
/// its `?` and `return` end the body, never the function around it, and the macro evaluates to the body's
/// value as a [`StoreResult`], which the caller handles in the open (usually with a visible `?`).
macro_rules! on_pool {
    ($db:expr, |$pool:ident, $DB:ident, $pg:ident| $body:expr) => {
        match $db {
            $crate::PoolRef::Sqlite($pool) => {
                #[allow(dead_code)]
                type $DB = sqlx::Sqlite;
                #[allow(unused_variables)]
                let $pg = false;
                $crate::scoped(async { Ok($body) }).await
            }
            $crate::PoolRef::Postgres($pool) => {
                #[allow(dead_code)]
                type $DB = sqlx::Postgres;
                #[allow(unused_variables)]
                let $pg = true;
                $crate::scoped(async { Ok($body) }).await
            }
        }
    };
}
pub(crate) use on_pool;

/// What a storage call can fail with, beyond the database itself failing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Duplicate(&'static str),
    #[error("not found")]
    NotFound,
    /// The change contradicts the stored state (e.g. merging a ticket twice).
    #[error("{0}")]
    Conflict(&'static str),
    /// The work was done for this event already (a rule fires once per event and ticket).
    #[error("already done")]
    Repeated,
    #[error(transparent)]
    Invalid(#[from] ParseError),
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Awaits one backend's query code (see [`on_pool!`]); naming the output type here is what lets the body's
/// `?` convert database errors into [`StoreError`].
pub(crate) async fn scoped<T>(body: impl std::future::Future<Output = StoreResult<T>>) -> StoreResult<T> {
    body.await
}

impl Db {
    /// Opens (and for SQLite, creates) the database named by `url`.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .context("DATABASE_URL is not a valid sqlite:// URL")?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            if let Some(dir) = opts.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts.clone())
                .await
                .context("opening the SQLite database")?;
            let read = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .connect_with(opts)
                .await
                .context("opening the SQLite database")?;
            Ok(Db::Sqlite { read, write })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .context("connecting to PostgreSQL")?;
            Ok(Db::Postgres(pool))
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres://")
        }
    }

    /// Applies the migrations of this backend that have not run yet, then fills what SQL cannot compute.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite { write, .. } => sqlx::migrate!("./migrations/sqlite").run(write).await,
            Db::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await,
        }
        .context("running database migrations")?;
        let filled = self.backfill_email_skeletons().await.context("filling address skeletons")?;
        if filled > 0 {
            tracing::info!(accounts = filled, "filled the look-alike check of older accounts");
        }
        Ok(())
    }

    /// Migrations this build carries that the database has not applied (0 when current).
    pub async fn pending_migrations(&self) -> StoreResult<usize> {
        let (migrator, applied): (sqlx::migrate::Migrator, Vec<i64>) = match self {
            Db::Sqlite { read, .. } => (
                sqlx::migrate!("./migrations/sqlite"),
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(read).await?,
            ),
            Db::Postgres(p) => (
                sqlx::migrate!("./migrations/postgres"),
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(p).await?,
            ),
        };
        Ok(migrator.iter().filter(|m| !applied.contains(&m.version)).count())
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub(crate) fn reader(&self) -> PoolRef<'_> {
        match self {
            Db::Sqlite { read, .. } => PoolRef::Sqlite(read),
            Db::Postgres(p) => PoolRef::Postgres(p),
        }
    }

    pub(crate) fn writer(&self) -> PoolRef<'_> {
        match self {
            Db::Sqlite { write, .. } => PoolRef::Sqlite(write),
            Db::Postgres(p) => PoolRef::Postgres(p),
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query("SELECT 1").execute(pool).await?;
        })?;
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }
}

/// Maps a unique-constraint violation to [`StoreError::Duplicate`] naming `what`.
fn unique_as(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Duplicate(what),
        _ => StoreError::Db(e),
    }
}
