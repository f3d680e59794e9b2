//! Past tickets brought in as resolved history (`smart-ticket import`).

use serde_json::json;
use sqlx::types::Json;

use super::tickets::record_event;
use super::{Db, StoreResult, on_pool, vector_to_bytes};
use crate::model::Actor;
use smart_ticket_domain::{TicketId, Ts, UserId};

/// One past ticket, parsed, ready to store as resolved and labelled.
#[derive(Debug, Clone)]
pub struct ImportedTicket {
    pub key: String,
    pub title: String,
    pub description: String,
    pub resolution: String,
    pub category: Option<String>,
    pub priority: String,
    pub skills: Vec<String>,
    pub requester: UserId,
    pub created_at: Ts,
    /// When it counts as labelled: distinct per ticket, so the engine's paged sync never stalls on a tie. Also
    /// its `updated_at`: it changed here now, whenever it was filed, so running vector indexes pick it up.
    pub labelled_at: Ts,
    pub embedding: Option<Vec<f32>>,
    /// The multilingual vector and the language (as the server's engine computes them).
    pub search_vector: Option<(Vec<f32>, Option<&'static str>)>,
}

impl Db {
    /// Stores a batch in one transaction; `true` for each ticket added, `false` for one imported before.
    /// No pipeline job is queued: history is not triaged, routed or mailed.
    pub async fn import_tickets(&self, batch: &[ImportedTicket]) -> StoreResult<Vec<bool>> {
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            let mut added = Vec::with_capacity(batch.len());
            for t in batch {
                let id = TicketId::new();
                let number: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO tickets (id, title, description, status, priority, category, skills, created_by, \
                     resolution, created_at, updated_at, resolved_at, labelled_at, embedding, import_key, \
                     search_vector, language) \
                     VALUES ($1, $2, $3, 'resolved', $4, $5, $6, $7, $8, $9, $10, $9, $10, $11, $12, $13, $14) \
                     ON CONFLICT (import_key) WHERE import_key IS NOT NULL DO NOTHING RETURNING number",
                )
                .bind(id)
                .bind(&t.title)
                .bind(&t.description)
                .bind(&t.priority)
                .bind(&t.category)
                .bind(Json(&t.skills))
                .bind(t.requester)
                .bind(&t.resolution)
                .bind(t.created_at)
                .bind(t.labelled_at)
                .bind(t.embedding.as_deref().map(vector_to_bytes))
                .bind(&t.key)
                .bind(t.search_vector.as_ref().map(|(v, _)| vector_to_bytes(v)))
                .bind(t.search_vector.as_ref().and_then(|(_, l)| *l))
                .fetch_optional(&mut *tx)
                .await?;
                if number.is_some() {
                    record_event!(
                        &mut *tx,
                        id,
                        Actor::System,
                        "imported",
                        None,
                        Some(json!("resolved")),
                        t.created_at
                    )?;
                }
                added.push(number.is_some());
            }
            tx.commit().await?;
            added
        })
    }
}
