//! Mail received for the support address: the raw message is stored (with the job that ingests it) before
//! anything is derived from it; what became of it; and the Message-IDs that thread mail to tickets.

use serde_json::json;
use smart_ticket_domain::{InboundState, JobKind};

use super::jobs::enqueue;
use super::tickets::record_event;
use super::{Db, NewJob, StoreResult, on_pool};
use crate::model::{Actor, TicketId, Ts};

/// A message as it arrived: where from (`mail-in`, or a mailbox with its UIDVALIDITY and the message's UID),
/// its Message-ID, and its bytes.
#[derive(Debug, Clone)]
pub struct NewInbound<'a> {
    pub source: &'a str,
    pub uid_validity: Option<i64>,
    pub uid: Option<i64>,
    pub message_id: Option<&'a str>,
    /// The sender's address as the message gives it.
    pub sender: Option<&'a str>,
    pub raw: &'a [u8],
    /// Set when `raw` is only the header of a message over the size limit: the size the message had.
    pub oversize: Option<i64>,
}

/// A stored message and what became of it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboundMessage {
    pub id: i64,
    pub source: String,
    pub message_id: Option<String>,
    pub raw: Vec<u8>,
    /// The size of a message over the limit, of which `raw` is the header only.
    pub oversize: Option<i64>,
    #[sqlx(try_from = "String")]
    pub state: InboundState,
    pub reason: Option<String>,
    pub ticket_id: Option<TicketId>,
    pub received_at: Ts,
}

/// A stored message as a list shows it: its first [`HEAD_BYTES`] (enough for its headers) and its size, not the
/// whole of a message that may be megabytes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboundSummary {
    pub id: i64,
    pub source: String,
    pub message_id: Option<String>,
    pub head: Vec<u8>,
    pub size: i64,
    #[sqlx(try_from = "String")]
    pub state: InboundState,
    pub reason: Option<String>,
    pub ticket_id: Option<TicketId>,
    pub received_at: Ts,
}

/// How much of each message a list reads.
pub const HEAD_BYTES: i64 = 64 * 1024;

/// Which received message a ticket or a comment is being made from.
#[derive(Debug, Clone)]
pub struct MailOrigin {
    pub inbound: i64,
    pub message_id: Option<String>,
}

impl Db {
    /// Stores a received message and queues its ingestion, in one transaction. `None` when it was stored
    /// before (the same mailbox UID, or the same Message-ID): a repeated delivery or fetch adds nothing.
    pub async fn store_inbound(&self, m: &NewInbound<'_>) -> StoreResult<Option<i64>> {
        Ok(self.store_inbound_all(std::slice::from_ref(m)).await?.pop().flatten())
    }

    /// [`Db::store_inbound`] for several messages (a mailbox's fetch) in one transaction: each one's id, `None`
    /// for one stored before.
    pub async fn store_inbound_all(&self, messages: &[NewInbound<'_>]) -> StoreResult<Vec<Option<i64>>> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            let mut ids = Vec::with_capacity(messages.len());
            for m in messages {
                let id: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO inbound_messages (source, uid_validity, uid, message_id, sender, raw, oversize, \
                     received_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $8, $7, $7) ON CONFLICT DO NOTHING \
                     RETURNING id",
                )
                .bind(m.source)
                .bind(m.uid_validity)
                .bind(m.uid)
                .bind(m.message_id)
                .bind(m.sender.map(str::to_lowercase))
                .bind(m.raw)
                .bind(now)
                .bind(m.oversize)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(id) = id {
                    let job = NewJob {
                        kind: JobKind::MailIngest,
                        payload: json!({ "inbound_id": id }),
                        idempotency_key: id.to_string(),
                    };
                    enqueue!(&mut *tx, &job, now)?;
                }
                ids.push(id);
            }
            tx.commit().await?;
            ids
        })
    }

    /// A stored message.
    pub async fn inbound(&self, id: i64) -> StoreResult<Option<InboundMessage>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(
                "SELECT id, source, message_id, raw, oversize, state, reason, ticket_id, received_at \
                 FROM inbound_messages WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        })
    }

    /// Records that a message was ignored or refused (with why); a message already settled is left as it is.
    pub async fn set_inbound_outcome(&self, id: i64, state: InboundState, reason: &str) -> StoreResult<()> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "UPDATE inbound_messages SET state = $2, reason = $3, updated_at = $4 WHERE id = $1 AND state = 'stored'",
            )
            .bind(id)
            .bind(state.as_str())
            .bind(reason)
            .bind(Ts::now())
            .execute(pool)
            .await?;
        })?;
        Ok(())
    }

    /// How many messages from `sender` arrived in the hour up to message `id` (itself included).
    pub async fn inbound_from_in_hour_before(&self, sender: &str, id: i64, received_at: Ts) -> StoreResult<i64> {
        let since = received_at + chrono::Duration::hours(-1);
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, i64>(
                "SELECT COUNT(*) FROM inbound_messages WHERE sender = $1 AND received_at >= $2 AND id <= $3",
            )
            .bind(sender.to_lowercase())
            .bind(since)
            .bind(id)
            .fetch_one(pool)
            .await?
        })
    }

    /// The ticket the first of `message_ids` that we sent or received belongs to.
    pub async fn thread_ticket(&self, message_ids: &[String]) -> StoreResult<Option<TicketId>> {
        for message_id in message_ids {
            let found: Option<TicketId> = on_pool!(self.reader(), |pool, DB, pg| {
                sqlx::query_scalar("SELECT ticket_id FROM mail_threads WHERE message_id = $1")
                    .bind(message_id.as_str())
                    .fetch_optional(pool)
                    .await?
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Records that Message-ID `message_id` (one we are about to send) belongs to `ticket`.
    pub async fn remember_thread(&self, message_id: &str, ticket: TicketId) -> StoreResult<()> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "INSERT INTO mail_threads (message_id, ticket_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(message_id)
            .bind(ticket)
            .bind(Ts::now())
            .execute(pool)
            .await?;
        })?;
        Ok(())
    }

    /// The first Message-ID of `ticket`'s conversation (the message that filed it, or our first mail about it).
    pub async fn thread_root(&self, ticket: TicketId) -> StoreResult<Option<String>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar(
                "SELECT message_id FROM mail_threads WHERE ticket_id = $1 ORDER BY created_at, message_id LIMIT 1",
            )
            .bind(ticket)
            .fetch_optional(pool)
            .await?
        })
    }

    /// Puts a refused or ignored message back to be ingested again (with a new ingest job, in one transaction);
    /// `false` when it is in no such state.
    pub async fn retry_inbound(&self, id: i64) -> StoreResult<bool> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE inbound_messages SET state = 'stored', reason = NULL, updated_at = $2 \
                 WHERE id = $1 AND state IN ('rejected', 'ignored')",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if done {
                let job = NewJob {
                    kind: JobKind::MailIngest,
                    payload: json!({ "inbound_id": id }),
                    idempotency_key: format!("{id}:retry:{}", now.0.timestamp_micros()),
                };
                enqueue!(&mut *tx, &job, now)?;
            }
            tx.commit().await?;
            done
        })
    }

    /// Sets a refused or ignored message aside for good; `false` when it is in no such state.
    pub async fn dismiss_inbound(&self, id: i64) -> StoreResult<bool> {
        let done = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "UPDATE inbound_messages SET state = 'dismissed', updated_at = $2 \
                 WHERE id = $1 AND state IN ('rejected', 'ignored')",
            )
            .bind(id)
            .bind(Ts::now())
            .execute(pool)
            .await?
            .rows_affected()
        })?;
        Ok(done == 1)
    }

    /// Records on `ticket`'s history that the mail with Message-ID `message_id` bounced (once per mail).
    pub async fn note_undeliverable(&self, ticket: TicketId, message_id: &str) -> StoreResult<()> {
        let now = Ts::now();
        let value = json!({ "message_id": message_id });
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            let seen: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM ticket_events WHERE ticket_id = $1 AND field = 'mail_undeliverable' AND new_value = $2",
            )
            .bind(ticket)
            .bind(sqlx::types::Json(&value))
            .fetch_one(&mut *tx)
            .await?;
            if seen == 0 {
                record_event!(&mut *tx, ticket, Actor::System, "mail_undeliverable", None, Some(value.clone()), now)?;
            }
            tx.commit().await?;
        })?;
        Ok(())
    }

    /// Messages in `state`, newest first (the admin's list of refused mail).
    pub async fn inbound_in_state(&self, state: InboundState, limit: i64) -> StoreResult<Vec<InboundSummary>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SUMMARY_COLUMNS} FROM inbound_messages WHERE state = $1 ORDER BY id DESC LIMIT $2"
            )))
            .bind(state.as_str())
            .bind(limit)
            .bind(HEAD_BYTES)
            .fetch_all(pool)
            .await?
        })
    }

    /// The messages that filed or replied on `ticket`, oldest first (what staff open as "the original").
    pub async fn inbound_of_ticket(&self, ticket: TicketId) -> StoreResult<Vec<InboundSummary>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SUMMARY_COLUMNS} FROM inbound_messages WHERE ticket_id = $1 ORDER BY id LIMIT $2"
            )))
            .bind(ticket)
            .bind(200i64)
            .bind(HEAD_BYTES)
            .fetch_all(pool)
            .await?
        })
    }
}

/// The columns of an [`InboundSummary`]; `$3` is [`HEAD_BYTES`].
const SUMMARY_COLUMNS: &str = "id, source, message_id, substr(raw, 1, CAST($3 AS INTEGER)) AS head, \
     CAST(length(raw) AS BIGINT) AS size, state, reason, ticket_id, received_at";
