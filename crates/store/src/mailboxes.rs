//! The IMAP mailboxes the desk reads: how far each has been read (UIDVALIDITY and the highest UID stored, so
//! a poll after a crash starts where the last one committed) and its health for operators.

use super::{Db, StoreResult, on_pool};
use crate::model::Ts;

/// A mailbox's reading position and health.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct MailboxState {
    pub name: String,
    pub uid_validity: Option<i64>,
    /// The highest UID stored under `uid_validity`.
    pub last_uid: Option<i64>,
    /// Messages stored from this mailbox, ever.
    pub fetched: i64,
    pub last_poll_at: Option<Ts>,
    pub last_success_at: Option<Ts>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Ts>,
}

const COLUMNS: &str = "name, uid_validity, last_uid, fetched, last_poll_at, last_success_at, last_error, last_error_at";

impl Db {
    /// Mailbox `name`'s state; `None` before its first poll.
    pub async fn mailbox(&self, name: &str) -> StoreResult<Option<MailboxState>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM mailboxes WHERE name = $1")))
                .bind(name)
                .fetch_optional(pool)
                .await?
        })
    }

    /// Every mailbox polled at least once, by name.
    pub async fn mailboxes(&self) -> StoreResult<Vec<MailboxState>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM mailboxes ORDER BY name")))
                .fetch_all(pool)
                .await?
        })
    }

    /// Records that messages up to `last_uid` (under `uid_validity`) are stored, `stored` of them new.
    pub async fn mailbox_read_to(&self, name: &str, uid_validity: i64, last_uid: i64, stored: i64) -> StoreResult<()> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "INSERT INTO mailboxes (name, uid_validity, last_uid, fetched, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (name) DO UPDATE SET uid_validity = $2, last_uid = $3, \
                 fetched = mailboxes.fetched + $4, updated_at = $5",
            )
            .bind(name)
            .bind(uid_validity)
            .bind(last_uid)
            .bind(stored)
            .bind(now)
            .execute(pool)
            .await?;
        })?;
        Ok(())
    }

    /// Records a poll of mailbox `name` that reached the server and read everything new (`error: None`), or
    /// one that failed with `error`.
    pub async fn mailbox_polled(&self, name: &str, error: Option<&str>) -> StoreResult<()> {
        let now = Ts::now();
        let sql = if error.is_none() {
            "INSERT INTO mailboxes (name, last_poll_at, last_success_at, updated_at) VALUES ($1, $2, $2, $2) \
             ON CONFLICT (name) DO UPDATE SET last_poll_at = $2, last_success_at = $2, updated_at = $2"
        } else {
            "INSERT INTO mailboxes (name, last_poll_at, last_error, last_error_at, updated_at) \
             VALUES ($1, $2, $3, $2, $2) ON CONFLICT (name) DO UPDATE SET last_poll_at = $2, last_error = $3, \
             last_error_at = $2, updated_at = $2"
        };
        let error: Option<String> = error.map(|e| e.chars().take(1000).collect());
        on_pool!(self.writer(), |pool, DB, pg| {
            let q = sqlx::query(sql).bind(name).bind(now);
            let q = if error.is_some() { q.bind(error.as_deref()) } else { q };
            q.execute(pool).await?;
        })?;
        Ok(())
    }

    /// Moves mailbox `name`'s position back before its first message (an admin's re-read of a folder; tests).
    pub async fn forget_mailbox_position(&self, name: &str, uid_validity: i64) -> StoreResult<()> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("UPDATE mailboxes SET uid_validity = $2, last_uid = 0, updated_at = $3 WHERE name = $1")
                .bind(name)
                .bind(uid_validity)
                .bind(Ts::now())
                .execute(pool)
                .await?;
        })?;
        Ok(())
    }
}
