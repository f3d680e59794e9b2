//! Desk settings changed at run time, and the knowledge-base answers mailed to tickets filed by e-mail.

use sqlx::types::Json;

use super::jobs::enqueue;
use super::{Db, NewJob, StoreResult, on_pool};
use crate::model::{TicketId, Ts, UserId};

/// The answer mailed to one ticket, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MailAnswer {
    pub ticket_id: TicketId,
    /// The articles offered, best first.
    #[sqlx(json)]
    pub articles: Vec<i64>,
    pub sent_at: Ts,
    pub solved_at: Option<Ts>,
    pub solved_article: Option<i64>,
}

/// How many answers were mailed since a moment, and how many of them solved their ticket.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, utoipa::ToSchema)]
pub struct MailAnswerFigures {
    pub mailed: i64,
    pub solved: i64,
}

const COLUMNS: &str = "ticket_id, articles, sent_at, solved_at, solved_article";

impl Db {
    /// A desk setting's stored value (`None`: never set, the default applies).
    pub async fn desk_setting(&self, name: &str) -> StoreResult<Option<serde_json::Value>> {
        let value: Option<Json<serde_json::Value>> = on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar("SELECT value FROM desk_settings WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
        })?;
        Ok(value.map(|v| v.0))
    }

    /// Stores a desk setting's value, and who set it.
    pub async fn set_desk_setting(&self, name: &str, value: &serde_json::Value, by: UserId) -> StoreResult<()> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "INSERT INTO desk_settings (name, value, updated_by, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, \
                 updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(Json(value))
            .bind(by)
            .bind(now)
            .execute(pool)
            .await?;
        })
    }

    /// Records the answer mailed to `ticket` with the job that sends it, in one transaction; `false` (and
    /// nothing queued) when the ticket was answered before.
    pub async fn record_mail_answer(
        &self,
        ticket: TicketId,
        articles: &[i64],
        token_hash: &str,
        send: &NewJob,
    ) -> StoreResult<bool> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO mail_answers (ticket_id, articles, token_hash, sent_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (ticket_id) DO NOTHING",
            )
            .bind(ticket)
            .bind(Json(articles))
            .bind(token_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if inserted {
                enqueue!(&mut *tx, send, now)?;
            }
            tx.commit().await?;
            inserted
        })
    }

    pub async fn mail_answer(&self, ticket: TicketId) -> StoreResult<Option<MailAnswer>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM mail_answers WHERE ticket_id = $1")))
                .bind(ticket)
                .fetch_optional(pool)
                .await?
        })
    }

    /// The answer whose link carries the token hashed as `token_hash`.
    pub async fn mail_answer_by_token(&self, token_hash: &str) -> StoreResult<Option<MailAnswer>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM mail_answers WHERE token_hash = $1")))
                .bind(token_hash)
                .fetch_optional(pool)
                .await?
        })
    }

    /// Marks `ticket`'s answer solved by `article`; `false` when it was marked before.
    pub async fn solve_mail_answer(&self, ticket: TicketId, article: i64) -> StoreResult<bool> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "UPDATE mail_answers SET solved_at = $1, solved_article = $2 WHERE ticket_id = $3 AND solved_at IS NULL",
            )
            .bind(now)
            .bind(article)
            .bind(ticket)
            .execute(pool)
            .await?
            .rows_affected()
                > 0
        })
    }

    /// Answers mailed since `since`, and how many of them were solved.
    pub async fn mail_answer_figures(&self, since: Ts) -> StoreResult<MailAnswerFigures> {
        let (mailed, solved): (i64, i64) = on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN solved_at IS NOT NULL THEN 1 ELSE 0 END), 0) \
                 FROM mail_answers WHERE sent_at >= $1",
            )
            .bind(since)
            .fetch_one(pool)
            .await?
        })?;
        Ok(MailAnswerFigures { mailed, solved })
    }
}
