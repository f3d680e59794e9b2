//! What the AI reads and writes: labelled tickets to learn from, triage results, embeddings, trained models.

use serde_json::json;
use smart_ticket_domain::triage::Triage;
use sqlx::types::Json;

use super::jobs::enqueue;
use super::tickets::record_event;
use super::{Db, NewJob, StoreResult, on_pool};
use crate::model::Actor;
use smart_ticket_domain::{TicketId, Ts, UserId};

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

/// A ticket's id and words (what an embedding is computed from).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TicketText {
    pub id: TicketId,
    pub title: String,
    pub description: String,
}

/// An open or in-progress ticket a draft or a new ticket may duplicate, with its stored embedding.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OpenTicket {
    pub number: i64,
    pub id: TicketId,
    pub title: String,
    pub description: String,
    pub status: String,
    pub embedding: Option<Vec<u8>>,
}

const OPEN_TICKET_COLUMNS: &str = "number, id, title, description, status, embedding";

/// The labels triage fills in, as stored, and whether the ticket was triaged already.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Labels {
    triaged_at: Option<Ts>,
    category: Option<String>,
    priority: String,
    skills: Json<Vec<String>>,
    helpful_notes: Option<String>,
    deadline: Option<Ts>,
}

impl Labels {
    /// These labels after the AI's triage `w`: each field a person has not `edited` takes the AI's value.
    fn triaged(&self, w: &TriageWrite, edited: &[String]) -> Labels {
        let free = |f: &str| !edited.iter().any(|e| e == f);
        let t = &w.triage;
        Labels {
            triaged_at: self.triaged_at,
            category: match (&t.category, free("category")) {
                (Some(g), true) => Some(g.value.clone()),
                _ => self.category.clone(),
            },
            priority: if free("priority") { t.priority.value.clone() } else { self.priority.clone() },
            skills: if free("skills") {
                Json(t.skills.iter().map(|g| g.value.clone()).collect())
            } else {
                self.skills.clone()
            },
            helpful_notes: if free("helpful_notes") { Some(w.note.clone()) } else { self.helpful_notes.clone() },
            deadline: if free("deadline") { w.deadline.or(self.deadline) } else { self.deadline },
        }
    }

    /// The fields `new` changes, as history rows.
    fn changes_to(&self, new: &Labels) -> Vec<super::tickets::Change> {
        let mut changes = Vec::new();
        super::tickets::changed(&mut changes, "category", &self.category, &new.category);
        super::tickets::changed(&mut changes, "priority", &self.priority, &new.priority);
        super::tickets::changed(&mut changes, "skills", &self.skills.0, &new.skills.0);
        super::tickets::changed(&mut changes, "helpful_notes", &self.helpful_notes, &new.helpful_notes);
        super::tickets::changed(&mut changes, "deadline", &self.deadline, &new.deadline);
        changes
    }
}

impl Db {
    /// Labelled tickets whose labels were confirmed at or after `since` (all when `None`), oldest first.
    pub async fn labelled_since(&self, since: Option<Ts>, limit: i64) -> StoreResult<Vec<LabelledRow>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(
                "SELECT number, title, description, category, priority, skills, resolution, embedding, labelled_at \
                 FROM tickets WHERE labelled_at IS NOT NULL AND ($1 IS NULL OR labelled_at >= $1) \
                 ORDER BY labelled_at, number LIMIT $2",
            )
            .bind(since)
            .bind(limit)
            .fetch_all(pool)
            .await?
        })
    }

    pub async fn count_labelled(&self) -> StoreResult<i64> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM tickets WHERE labelled_at IS NOT NULL")
                .fetch_one(pool)
                .await?
        })
    }

    pub async fn ai_model_version(&self, name: &str) -> StoreResult<Option<i64>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, i64>("SELECT version FROM ai_models WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
        })
    }

    pub async fn ai_model(&self, name: &str) -> StoreResult<Option<StoredModel>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as("SELECT version, n_labels, trained_at, state FROM ai_models WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
        })
    }

    /// Stores a newly trained model as the next version; returns that version.
    pub async fn save_ai_model(&self, name: &str, n_labels: i64, state: &[u8]) -> StoreResult<i64> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
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
        })
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
            let current: Option<Labels> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT triaged_at, category, priority, skills, helpful_notes, deadline FROM tickets WHERE id = $1{lock}"
            )))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let current = current.ok_or(super::StoreError::NotFound)?;
            if current.triaged_at.is_some() {
                enqueue!(&mut *tx, next, now)?;
                tx.commit().await?;
                return Ok(false);
            }
            let edited: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT field FROM ticket_events WHERE ticket_id = $1 AND (actor_kind = 'user' OR via IS NOT NULL)",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let new = current.triaged(w, &edited);
            sqlx::query(
                "UPDATE tickets SET category = $2, priority = $3, skills = $4, helpful_notes = $5, deadline = $6, \
                 ai_triage = $7, triaged_at = $8, embedding = COALESCE($9, embedding), updated_at = $8, \
                 duplicate_of = $10, duplicate_score = $11 WHERE id = $1",
            )
            .bind(id)
            .bind(new.category.as_deref())
            .bind(new.priority.as_str())
            .bind(Json(&new.skills.0))
            .bind(new.helpful_notes.as_deref())
            .bind(new.deadline)
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
            for c in current.changes_to(&new) {
                record_event!(&mut *tx, id, Actor::Ai, c.field, Some(c.old), Some(c.new), now)?;
            }
            for remark in &w.remarks {
                record_event!(&mut *tx, id, Actor::Ai, "ai_provider", None, Some(json!(remark)), now)?;
            }
            enqueue!(&mut *tx, next, now)?;
            let rules = super::tickets::rules_job(
                id,
                smart_ticket_domain::rules::Happened::Triaged,
                super::tickets::Cause::default(),
                format!("triaged:{id}"),
            );
            enqueue!(&mut *tx, &rules, now)?;
            tx.commit().await?;
            true
        })
    }

    /// A ticket's stored embedding.
    pub async fn ticket_embedding(&self, id: TicketId) -> StoreResult<Option<Vec<f32>>> {
        let bytes: Option<Option<Vec<u8>>> = on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, Option<Vec<u8>>>("SELECT embedding FROM tickets WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        })?;
        Ok(bytes.flatten().as_deref().and_then(vector_from_bytes))
    }

    /// Up to `limit` triaged tickets without a multilingual vector (filed before the model was installed),
    /// oldest first.
    pub async fn tickets_missing_search_vector(&self, limit: i64) -> StoreResult<Vec<TicketText>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as::<DB, TicketText>(
                "SELECT id, title, description FROM tickets WHERE search_vector IS NULL AND triaged_at IS NOT NULL \
                 ORDER BY number LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        })
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
        })?;
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
        })?;
        Ok(row.and_then(|(v, l)| v.as_deref().and_then(vector_from_bytes).map(|v| (v, l))))
    }

    /// Open or in-progress tickets `viewer` may see (the newest `limit`), with their embeddings: the
    /// candidates of a duplicate check. Visibility is applied in the query.
    pub async fn visible_open_tickets(&self, viewer: &crate::model::User, limit: i64) -> StoreResult<Vec<OpenTicket>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            let mut qb = sqlx::QueryBuilder::<DB>::new(format!(
                "SELECT {OPEN_TICKET_COLUMNS} FROM tickets WHERE status IN ('open', 'in_progress')"
            ));
            super::tickets::push_may_see(&mut qb, viewer, "");
            qb.push(" ORDER BY number DESC LIMIT ").push_bind(limit);
            qb.build_query_as().fetch_all(pool).await?
        })
    }

    /// Open or in-progress tickets filed before ticket `number` and not merged (the newest `limit`), with their
    /// embeddings: whom a new ticket may duplicate.
    pub async fn open_tickets_before(&self, number: i64, limit: i64) -> StoreResult<Vec<OpenTicket>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            let hint = if pg { "" } else { " INDEXED BY tickets_open_number_idx" };
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {OPEN_TICKET_COLUMNS} FROM tickets{hint} \
                 WHERE status IN ('open', 'in_progress') AND merged_into IS NULL AND number < $1 \
                 ORDER BY number DESC LIMIT $2"
            )))
            .bind(number)
            .bind(limit)
            .fetch_all(pool)
            .await?
        })
    }

    /// Stores a ticket's embedding (computed once).
    pub async fn set_embedding(&self, id: TicketId, v: &[f32]) -> StoreResult<()> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("UPDATE tickets SET embedding = $2 WHERE id = $1")
                .bind(id)
                .bind(vector_to_bytes(v))
                .execute(pool)
                .await?;
        })?;
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
        })?;
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
        })? > 0)
    }

    /// `user`'s verdicts on the suggestions for ticket `id`: suggested number → helpful.
    pub async fn suggestion_feedback(&self, id: TicketId, user: UserId) -> StoreResult<Vec<(i64, bool)>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as::<DB, (i64, bool)>(
                "SELECT suggested_number, helpful FROM suggestion_feedback WHERE ticket_id = $1 AND user_id = $2",
            )
            .bind(id)
            .bind(user)
            .fetch_all(pool)
            .await?
        })
    }

    /// Verdicts given since `since`: (marked, helpful).
    pub async fn suggestion_feedback_counts(&self, since: Ts) -> StoreResult<(i64, i64)> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as::<DB, (i64, i64)>(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN helpful THEN 1 ELSE 0 END), 0) FROM suggestion_feedback                  WHERE created_at >= $1",
            )
            .bind(since)
            .fetch_one(pool)
            .await?
        })
    }

    /// Triaged tickets whose labels a person confirmed since `since`.
    pub async fn ai_quality_rows(&self, since: Ts) -> StoreResult<Vec<QualityRow>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(
                "SELECT ai_triage, category, priority, skills FROM tickets \
                 WHERE ai_triage IS NOT NULL AND labelled_at IS NOT NULL AND labelled_at >= $1",
            )
            .bind(since)
            .fetch_all(pool)
            .await?
        })
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
