//! What the AI reads and writes: labelled tickets to learn from, triage results, embeddings, trained models.

use serde_json::json;
use smart_ticket_ai::triage::Triage;
use sqlx::types::Json;

use super::jobs::enqueue;
use super::tickets::record_event;
use super::{Db, NewJob, StoreResult, on_pool};
use crate::model::{Actor, TicketId, Ts, UserId};

/// A ticket whose labels a person confirmed (resolved, or corrected), as the engine learns from it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LabelledRow {
    pub number: i64,
    pub title: String,
    pub description: String,
    pub category: Option<String>,
    pub priority: String,
    #[sqlx(json)]
    pub skills: Vec<String>,
    pub resolution: Option<String>,
    pub embedding: Option<Vec<u8>>,
    pub labelled_at: Ts,
}

/// A stored model.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredModel {
    pub version: i64,
    pub n_labels: i64,
    pub trained_at: Ts,
    pub state: Vec<u8>,
}

/// What the AI decided for one ticket, ready to store.
#[derive(Debug, Clone)]
pub struct TriageWrite {
    pub triage: Triage,
    pub note: String,
    pub embedding: Option<Vec<f32>>,
    /// Response deadline from the SLA of the chosen priority.
    pub deadline: Option<Ts>,
    /// Remarks for history, e.g. "gemini timed out after 3 attempts; triaged locally".
    pub remarks: Vec<String>,
    /// The open ticket (number) this one reads like, and how alike they are.
    pub duplicate: Option<(i64, f32)>,
}

/// One ticket's AI answers next to the final human values, for quality reports.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QualityRow {
    pub ai_triage: Json<Triage>,
    pub category: Option<String>,
    pub priority: String,
    #[sqlx(json)]
    pub skills: Vec<String>,
}

/// Little-endian `f32`s, the stored form of an embedding.
pub fn vector_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn vector_from_bytes(b: &[u8]) -> Option<Vec<f32>> {
    (b.len().is_multiple_of(4) && !b.is_empty())
        .then(|| b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

impl Db {
    /// Labelled tickets whose labels were confirmed at or after `since` (all when `None`), oldest first.
    pub async fn labelled_since(&self, since: Option<Ts>, limit: i64) -> StoreResult<Vec<LabelledRow>> {
        Ok(on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(
                "SELECT number, title, description, category, priority, skills, resolution, embedding, labelled_at \
                 FROM tickets WHERE labelled_at IS NOT NULL AND ($1 IS NULL OR labelled_at >= $1) \
                 ORDER BY labelled_at, number LIMIT $2",
            )
            .bind(since)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn count_labelled(&self) -> StoreResult<i64> {
        Ok(on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM tickets WHERE labelled_at IS NOT NULL")
                .fetch_one(pool)
                .await?
        }))
    }

    pub async fn ai_model_version(&self, name: &str) -> StoreResult<Option<i64>> {
        Ok(on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, i64>("SELECT version FROM ai_models WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn ai_model(&self, name: &str) -> StoreResult<Option<StoredModel>> {
        Ok(on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as("SELECT version, n_labels, trained_at, state FROM ai_models WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Stores a newly trained model as the next version; returns that version.
    pub async fn save_ai_model(&self, name: &str, n_labels: i64, state: &[u8]) -> StoreResult<i64> {
        let now = Ts::now();
        Ok(on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, i64>(
                "INSERT INTO ai_models (name, version, n_labels, trained_at, state) VALUES ($1, 1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET version = ai_models.version + 1, n_labels = excluded.n_labels, \
                 trained_at = excluded.trained_at, state = excluded.state RETURNING version",
            )
            .bind(name)
            .bind(n_labels)
            .bind(now)
            .bind(state)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Stores the AI's triage of a ticket not yet triaged, with one history row (actor "ai") per field it
    /// changed, and enqueues `next` in the same transaction. A field a person already set is left alone.
    /// Returns false when the ticket was triaged before (a retried job).
    pub async fn apply_triage(&self, id: TicketId, w: &TriageWrite, next: &NewJob) -> StoreResult<bool> {
        let now = Ts::now();
        let embedding = w.embedding.as_deref().map(vector_to_bytes);
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = if pg { pool.begin().await? } else { pool.begin_with("BEGIN IMMEDIATE").await? };
            let lock = if pg { " FOR UPDATE" } else { "" };
            type Row = (Option<Ts>, Option<String>, String, Json<Vec<String>>, Option<String>, Option<Ts>);
            let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT triaged_at, category, priority, skills, helpful_notes, deadline FROM tickets WHERE id = $1{lock}"
            )))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((triaged_at, category, priority, skills, notes, deadline)) = row else {
                return Err(super::StoreError::NotFound);
            };
            if triaged_at.is_some() {
                enqueue!(&mut *tx, next, now)?;
                tx.commit().await?;
                return Ok(false);
            }
            // Whether a person edited a field before the AI got to it.
            let edited: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT field FROM ticket_events WHERE ticket_id = $1 AND actor_kind = 'user'",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let free = |f: &str| !edited.iter().any(|e| e == f);
            let new_category = match (&w.triage.category, free("category")) {
                (Some(g), true) => Some(g.value.clone()),
                _ => category.clone(),
            };
            let new_priority = if free("priority") { w.triage.priority.value.clone() } else { priority.clone() };
            let new_skills: Vec<String> = if free("skills") {
                w.triage.skills.iter().map(|g| g.value.clone()).collect()
            } else {
                skills.0.clone()
            };
            let new_notes = if free("helpful_notes") { Some(w.note.clone()) } else { notes.clone() };
            let new_deadline = if free("deadline") { w.deadline.or(deadline) } else { deadline };
            sqlx::query(
                "UPDATE tickets SET category = $2, priority = $3, skills = $4, helpful_notes = $5, deadline = $6, \
                 ai_triage = $7, triaged_at = $8, embedding = COALESCE($9, embedding), updated_at = $8, \
                 duplicate_of = $10, duplicate_score = $11 WHERE id = $1",
            )
            .bind(id)
            .bind(new_category.as_deref())
            .bind(new_priority.as_str())
            .bind(Json(&new_skills))
            .bind(new_notes.as_deref())
            .bind(new_deadline)
            .bind(Json(&w.triage))
            .bind(now)
            .bind(embedding)
            .bind(w.duplicate.map(|d| d.0))
            .bind(w.duplicate.map(|d| d.1))
            .execute(&mut *tx)
            .await?;
            if let Some((number, score)) = w.duplicate {
                let flag = json!({ "number": number, "similarity": score });
                record_event!(&mut *tx, id, Actor::Ai, "duplicate_of", None, Some(flag), now)?;
            }
            let changes = [
                ("category", json!(category), json!(new_category)),
                ("priority", json!(priority), json!(new_priority)),
                ("skills", json!(skills.0), json!(new_skills)),
                ("helpful_notes", json!(notes), json!(new_notes)),
                ("deadline", json!(deadline), json!(new_deadline)),
            ];
            for (field, old, new) in changes {
                if old != new {
                    record_event!(&mut *tx, id, Actor::Ai, field, Some(old), Some(new), now)?;
                }
            }
            for remark in &w.remarks {
                record_event!(&mut *tx, id, Actor::Ai, "ai_provider", None, Some(json!(remark)), now)?;
            }
            enqueue!(&mut *tx, next, now)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// A ticket's stored embedding.
    pub async fn ticket_embedding(&self, id: TicketId) -> StoreResult<Option<Vec<f32>>> {
        let bytes: Option<Option<Vec<u8>>> = on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, Option<Vec<u8>>>("SELECT embedding FROM tickets WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(bytes.flatten().as_deref().and_then(vector_from_bytes))
    }

    /// Up to `limit` triaged tickets without a multilingual vector (filed before the model was installed),
    /// oldest first: (id, title, description).
    pub async fn tickets_missing_search_vector(&self, limit: i64) -> StoreResult<Vec<(TicketId, String, String)>> {
        Ok(on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as::<DB, (TicketId, String, String)>(
                "SELECT id, title, description FROM tickets WHERE search_vector IS NULL AND triaged_at IS NOT NULL \
                 ORDER BY number LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Stores a ticket's multilingual vector unless it has one. Counts as a change (`updated_at`), so every
    /// process's vector index picks it up.
    pub async fn fill_search_vector(&self, id: TicketId, v: &[f32], language: Option<&str>) -> StoreResult<()> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "UPDATE tickets SET search_vector = $2, language = $3, updated_at = $4 \
                 WHERE id = $1 AND search_vector IS NULL",
            )
            .bind(id)
            .bind(vector_to_bytes(v))
            .bind(language)
            .bind(Ts::now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// A ticket's stored multilingual vector and language.
    pub async fn ticket_search_vector(&self, id: TicketId) -> StoreResult<Option<(Vec<f32>, Option<String>)>> {
        let row: Option<(Option<Vec<u8>>, Option<String>)> = on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as::<DB, (Option<Vec<u8>>, Option<String>)>(
                "SELECT search_vector, language FROM tickets WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.and_then(|(v, l)| v.as_deref().and_then(vector_from_bytes).map(|v| (v, l))))
    }

    /// Open or in-progress tickets `viewer` may see (the newest `limit`), with their embeddings: the
    /// candidates of a duplicate check. Visibility is applied in the query.
    pub async fn visible_open_tickets(
        &self,
        viewer: &crate::model::User,
        limit: i64,
    ) -> StoreResult<Vec<(i64, TicketId, String, String, String, Option<Vec<u8>>)>> {
        use smart_ticket_domain::Role;
        Ok(on_pool!(self.reader(), |pool, DB, pg| {
            let mut qb = sqlx::QueryBuilder::<DB>::new(
                "SELECT number, id, title, description, status, embedding FROM tickets \
                 WHERE status IN ('open', 'in_progress')",
            );
            match viewer.role {
                Role::Admin => {}
                Role::Moderator => {
                    qb.push(" AND (assigned_to = ")
                        .push_bind(viewer.id)
                        .push(" OR created_by = ")
                        .push_bind(viewer.id)
                        .push(")");
                }
                Role::User => {
                    qb.push(" AND created_by = ").push_bind(viewer.id);
                }
            }
            qb.push(" ORDER BY number DESC LIMIT ").push_bind(limit);
            qb.build_query_as().fetch_all(pool).await?
        }))
    }

    /// Open or in-progress tickets filed before ticket `number` and not merged (the newest `limit`), with their
    /// embeddings: whom a new ticket may duplicate.
    pub async fn open_tickets_before(
        &self,
        number: i64,
        limit: i64,
    ) -> StoreResult<Vec<(i64, String, String, Option<Vec<u8>>)>> {
        Ok(on_pool!(self.reader(), |pool, DB, pg| {
            let hint = if pg { "" } else { " INDEXED BY tickets_open_number_idx" };
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT number, title, description, embedding FROM tickets{hint} \
                 WHERE status IN ('open', 'in_progress') AND merged_into IS NULL AND number < $1 \
                 ORDER BY number DESC LIMIT $2"
            )))
            .bind(number)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Stores a ticket's embedding (computed once).
    pub async fn set_embedding(&self, id: TicketId, v: &[f32]) -> StoreResult<()> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("UPDATE tickets SET embedding = $2 WHERE id = $1")
                .bind(id)
                .bind(vector_to_bytes(v))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records (or replaces) `user`'s verdict on suggestion `number` for ticket `id`.
    pub async fn record_suggestion_feedback(
        &self,
        id: TicketId,
        number: i64,
        user: UserId,
        helpful: bool,
    ) -> StoreResult<()> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "INSERT INTO suggestion_feedback (ticket_id, suggested_number, user_id, helpful, created_at)                  VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ticket_id, suggested_number, user_id)                  DO UPDATE SET helpful = excluded.helpful, created_at = excluded.created_at",
            )
            .bind(id)
            .bind(number)
            .bind(user)
            .bind(helpful)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Whether ticket `number` exists and is resolved or closed.
    pub async fn is_resolved_number(&self, number: i64) -> StoreResult<bool> {
        Ok(on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, i64>(
                "SELECT COUNT(*) FROM tickets WHERE number = $1 AND status IN ('resolved', 'closed')",
            )
            .bind(number)
            .fetch_one(pool)
            .await?
        }) > 0)
    }

    /// `user`'s verdicts on the suggestions for ticket `id`: suggested number → helpful.
    pub async fn suggestion_feedback(&self, id: TicketId, user: UserId) -> StoreResult<Vec<(i64, bool)>> {
        Ok(on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as::<DB, (i64, bool)>(
                "SELECT suggested_number, helpful FROM suggestion_feedback WHERE ticket_id = $1 AND user_id = $2",
            )
            .bind(id)
            .bind(user)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Verdicts given since `since`: (marked, helpful).
    pub async fn suggestion_feedback_counts(&self, since: Ts) -> StoreResult<(i64, i64)> {
        Ok(on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as::<DB, (i64, i64)>(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN helpful THEN 1 ELSE 0 END), 0) FROM suggestion_feedback                  WHERE created_at >= $1",
            )
            .bind(since)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Triaged tickets whose labels a person confirmed since `since`.
    pub async fn ai_quality_rows(&self, since: Ts) -> StoreResult<Vec<QualityRow>> {
        Ok(on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(
                "SELECT ai_triage, category, priority, skills FROM tickets \
                 WHERE ai_triage IS NOT NULL AND labelled_at IS NOT NULL AND labelled_at >= $1",
            )
            .bind(since)
            .fetch_all(pool)
            .await?
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_through_bytes() {
        let v = vec![0.25f32, -1.5, 3.0e-7];
        assert_eq!(vector_from_bytes(&vector_to_bytes(&v)), Some(v));
        assert_eq!(vector_from_bytes(&[1, 2, 3]), None);
        assert_eq!(vector_from_bytes(&[]), None);
    }
}
