//! Articles the knowledge base proposes from repeated problems among resolved tickets.

use smart_ticket_domain::article::ProposalState;
use sqlx::types::Json;

use super::{Db, StoreResult, on_pool};
use crate::model::{Ts, UserId};

/// A resolved ticket as the proposal job reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ResolvedRow {
    pub number: i64,
    pub title: String,
    pub description: String,
    pub resolution: String,
    pub requester_email: String,
    pub category: Option<String>,
    pub resolved_at: Ts,
}

/// A proposed article, as stored.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Proposal {
    pub id: i64,
    pub title: String,
    /// Markdown, personal data removed, citing its tickets.
    pub body: String,
    pub language: String,
    pub category: Option<String>,
    /// The repeated problem's resolved tickets (numbers), the most typical first.
    #[sqlx(json)]
    pub tickets: Vec<i64>,
    /// Those the draft's text was taken from (or the language model cited).
    #[sqlx(json)]
    pub cited: Vec<i64>,
    pub ticket_count: i32,
    /// How many of them were resolved in the last 30 days.
    pub recent_count: i32,
    /// How often and how recently the problem recurs: each ticket counts 1, halved every 30 days of age.
    pub score: f64,
    pub last_resolved: Ts,
    /// `local` (extractive) or the language model that wrote the draft.
    pub engine: String,
    #[sqlx(try_from = "String")]
    #[schema(value_type = String)]
    pub state: ProposalState,
    /// The draft article written when it was accepted.
    pub article_id: Option<i64>,
    pub decided_by: Option<UserId>,
    pub created_at: Ts,
    pub decided_at: Option<Ts>,
}

/// A proposal to store.
#[derive(Debug, Clone)]
pub struct NewProposal {
    pub title: String,
    pub body: String,
    pub language: String,
    pub category: Option<String>,
    pub tickets: Vec<i64>,
    pub cited: Vec<i64>,
    pub recent_count: i32,
    pub score: f64,
    pub last_resolved: Ts,
    pub engine: String,
}

const PROPOSAL_COLUMNS: &str = "id, title, body, language, category, tickets, cited, ticket_count, recent_count, score, \
     last_resolved, engine, state, article_id, decided_by, created_at, decided_at";

impl Db {
    /// Tickets resolved since `since` that have a resolution (merged duplicates left out), newest first.
    pub async fn resolved_since(&self, since: Ts, limit: i64) -> StoreResult<Vec<ResolvedRow>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(
                "SELECT t.number, t.title, t.description, t.resolution, u.email AS requester_email, t.category, \
                 t.resolved_at FROM tickets t JOIN users u ON u.id = t.created_by \
                 WHERE t.resolved_at >= $1 AND t.status IN ('resolved', 'closed') AND t.resolution IS NOT NULL \
                 AND t.merged_into IS NULL ORDER BY t.resolved_at DESC LIMIT $2",
            )
            .bind(since)
            .bind(limit)
            .fetch_all(pool)
            .await?
        })
    }

    /// The ticket numbers every article (any state) was drafted from.
    pub async fn article_source_tickets(&self) -> StoreResult<Vec<i64>> {
        let lists: Vec<Json<Vec<i64>>> = on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar("SELECT source_tickets FROM articles").fetch_all(pool).await?
        })?;
        Ok(lists.into_iter().flat_map(|l| l.0).collect())
    }

    /// The tickets of every proposal a person accepted or dismissed (so the same problem is not proposed again).
    pub async fn decided_proposal_tickets(&self) -> StoreResult<Vec<Vec<i64>>> {
        let lists: Vec<Json<Vec<i64>>> = on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar("SELECT tickets FROM article_proposals WHERE state <> 'open'").fetch_all(pool).await?
        })?;
        Ok(lists.into_iter().map(|l| l.0).collect())
    }

    /// Replaces the open proposals with `proposals`, in one transaction.
    pub async fn replace_open_proposals(&self, proposals: &[NewProposal]) -> StoreResult<()> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM article_proposals WHERE state = 'open'").execute(&mut *tx).await?;
            for p in proposals {
                sqlx::query(
                    "INSERT INTO article_proposals (title, body, language, category, tickets, cited, \
                     ticket_count, recent_count, score, last_resolved, engine, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&p.title)
                .bind(&p.body)
                .bind(&p.language)
                .bind(&p.category)
                .bind(Json(&p.tickets))
                .bind(Json(&p.cited))
                .bind(p.tickets.len() as i32)
                .bind(p.recent_count)
                .bind(p.score)
                .bind(p.last_resolved)
                .bind(&p.engine)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        })
    }

    /// Proposals in `state`, the highest score first.
    pub async fn proposals(&self, state: ProposalState, limit: i64) -> StoreResult<Vec<Proposal>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {PROPOSAL_COLUMNS} FROM article_proposals WHERE state = $1 \
                 ORDER BY score DESC, id LIMIT $2"
            )))
            .bind(state.as_str())
            .bind(limit)
            .fetch_all(pool)
            .await?
        })
    }

    pub async fn proposal(&self, id: i64) -> StoreResult<Option<Proposal>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {PROPOSAL_COLUMNS} FROM article_proposals WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?
        })
    }

    /// Settles an open proposal as `state` (with the draft written from it); `false` when it was not open.
    pub async fn decide_proposal(
        &self,
        id: i64,
        state: ProposalState,
        article: Option<i64>,
        by: UserId,
    ) -> StoreResult<bool> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "UPDATE article_proposals SET state = $1, article_id = $2, decided_by = $3, decided_at = $4 \
                 WHERE id = $5 AND state = 'open'",
            )
            .bind(state.as_str())
            .bind(article)
            .bind(by)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
                > 0
        })
    }
}
