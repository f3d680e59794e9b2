//! The summaries a language model wrote of long ticket conversations.

use sqlx::types::Json;

use super::{Db, StoreResult, on_pool};
use crate::model::{TicketId, Ts};

/// A language model's summary of a ticket's conversation, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredSummary {
    /// The comments it covered.
    pub turns: i32,
    #[sqlx(json)]
    pub summary: serde_json::Value,
    pub engine: String,
    pub updated_at: Ts,
}

impl Db {
    pub async fn ticket_summary(&self, ticket: TicketId) -> StoreResult<Option<StoredSummary>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as("SELECT turns, summary, engine, updated_at FROM ticket_summaries WHERE ticket_id = $1")
                .bind(ticket)
                .fetch_optional(pool)
                .await?
        })
    }

    /// Stores a summary of the first `turns` comments, unless one of more turns is stored already.
    pub async fn save_ticket_summary(
        &self,
        ticket: TicketId,
        turns: i32,
        summary: &serde_json::Value,
        engine: &str,
    ) -> StoreResult<()> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "INSERT INTO ticket_summaries (ticket_id, turns, summary, engine, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (ticket_id) DO UPDATE SET turns = excluded.turns, summary = excluded.summary, \
                 engine = excluded.engine, updated_at = excluded.updated_at WHERE excluded.turns >= ticket_summaries.turns",
            )
            .bind(ticket)
            .bind(turns)
            .bind(Json(summary))
            .bind(engine)
            .bind(now)
            .execute(pool)
            .await?;
        })
    }
}
