//! The team's own workflow as stored: canned responses (and which replies used them) and macros.

use serde::Serialize;
use smart_ticket_domain::workflow::{ActionSpec, ReplyTemplate, WorkflowName};
use sqlx::types::Json;

use super::{Db, StoreError, StoreResult, on_pool, unique_as};
use crate::model::{TicketId, Ts, UserId};

/// A canned response: a reply text with placeholders, shared (no owner) or one person's own.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CannedResponse {
    pub id: i64,
    pub name: String,
    /// The text with its `{{ placeholders }}` unfilled.
    pub body: String,
    /// Whose own it is; null for a shared one.
    pub owner_id: Option<UserId>,
    pub created_by: Option<UserId>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

/// A canned response and how many of the given tickets used it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CannedUse {
    #[sqlx(flatten)]
    pub canned: CannedResponse,
    pub tickets: i64,
}

/// A macro: named actions staff apply to a ticket in one step.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Macro {
    pub id: i64,
    pub name: String,
    pub description: String,
    #[sqlx(json)]
    pub actions: Vec<ActionSpec>,
    pub created_by: Option<UserId>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

const CANNED_COLUMNS: &str = "c.id, c.name, c.body, c.owner_id, c.created_by, c.created_at, c.updated_at";
const MACRO_COLUMNS: &str = "id, name, description, actions, created_by, created_at, updated_at";

/// `q` as a `LIKE` pattern matching it anywhere, its own `%`, `_` and `\` taken literally.
fn contains_pattern(q: &str) -> String {
    let escaped: String = q
        .to_lowercase()
        .chars()
        .flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] })
        .collect();
    format!("%{escaped}%")
}

impl Db {
    /// The canned responses `viewer` may use (shared, then their own), by name; with `q`, those whose name or
    /// text holds it (case-insensitive).
    pub async fn canned_responses(
        &self,
        viewer: UserId,
        q: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<CannedResponse>> {
        let pattern = contains_pattern(q.unwrap_or(""));
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {CANNED_COLUMNS} FROM canned_responses c WHERE (c.owner_id IS NULL OR c.owner_id = $1) \
                 AND (lower(c.name) LIKE $2 ESCAPE '\\' OR lower(c.body) LIKE $2 ESCAPE '\\') \
                 ORDER BY c.owner_id IS NOT NULL, lower(c.name), c.id LIMIT $3"
            )))
            .bind(viewer)
            .bind(&pattern)
            .bind(limit)
            .fetch_all(pool)
            .await?
        })
    }

    pub async fn canned_response(&self, id: i64) -> StoreResult<Option<CannedResponse>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {CANNED_COLUMNS} FROM canned_responses c WHERE c.id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?
        })
    }

    /// Stores a canned response owned by `owner` (shared when `None`); a name taken in that scope is a duplicate.
    pub async fn insert_canned_response(
        &self,
        name: &WorkflowName,
        body: &ReplyTemplate,
        owner: Option<UserId>,
        by: UserId,
    ) -> StoreResult<CannedResponse> {
        let now = Ts::now();
        let id: i64 = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query_scalar(
                "INSERT INTO canned_responses (name, body, owner_id, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            )
            .bind(name.as_str())
            .bind(body.as_str())
            .bind(owner)
            .bind(by)
            .bind(now)
            .fetch_one(pool)
            .await
            .map_err(unique_as("a canned response with this name"))?
        })?;
        self.canned_response(id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn update_canned_response(
        &self,
        id: i64,
        name: Option<&WorkflowName>,
        body: Option<&ReplyTemplate>,
    ) -> StoreResult<CannedResponse> {
        let now = Ts::now();
        let n = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "UPDATE canned_responses SET name = coalesce($2, name), body = coalesce($3, body), updated_at = $4 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(name.map(WorkflowName::as_str))
            .bind(body.map(ReplyTemplate::as_str))
            .bind(now)
            .execute(pool)
            .await
            .map_err(unique_as("a canned response with this name"))?
            .rows_affected()
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.canned_response(id).await?.ok_or(StoreError::NotFound)
    }

    /// Deletes a canned response; whether there was one.
    pub async fn delete_canned_response(&self, id: i64) -> StoreResult<bool> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("DELETE FROM canned_responses WHERE id = $1").bind(id).execute(pool).await?.rows_affected() > 0
        })
    }

    /// Records that comment `comment` on `ticket` was written by `user` from canned response `canned`.
    pub async fn record_canned_use(
        &self,
        canned: i64,
        ticket: TicketId,
        comment: i64,
        user: UserId,
    ) -> StoreResult<()> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "INSERT INTO canned_uses (canned_id, ticket_id, comment_id, user_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(canned)
            .bind(ticket)
            .bind(comment)
            .bind(user)
            .bind(now)
            .execute(pool)
            .await?;
        })
    }

    /// The canned responses `viewer` may use that replies on the tickets numbered `numbers` were written from,
    /// the most used (by tickets) first.
    pub async fn canned_used_on(&self, numbers: &[i64], viewer: UserId, limit: i64) -> StoreResult<Vec<CannedUse>> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self.reader(), |pool, DB, pg| {
            let mut qb = sqlx::QueryBuilder::<DB>::new(format!(
                "SELECT {CANNED_COLUMNS}, count(DISTINCT u.ticket_id) AS tickets FROM canned_uses u \
                 JOIN canned_responses c ON c.id = u.canned_id JOIN tickets t ON t.id = u.ticket_id \
                 WHERE (c.owner_id IS NULL OR c.owner_id = "
            ));
            qb.push_bind(viewer).push(") AND t.number IN (");
            let mut list = qb.separated(", ");
            for n in numbers {
                list.push_bind(*n);
            }
            qb.push(format!(") GROUP BY {CANNED_COLUMNS} ORDER BY tickets DESC, c.id LIMIT ")).push_bind(limit);
            qb.build_query_as::<CannedUse>().fetch_all(pool).await?
        })
    }

    pub async fn macros(&self) -> StoreResult<Vec<Macro>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {MACRO_COLUMNS} FROM macros ORDER BY lower(name), id")))
                .fetch_all(pool)
                .await?
        })
    }

    pub async fn macro_by_id(&self, id: i64) -> StoreResult<Option<Macro>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {MACRO_COLUMNS} FROM macros WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
    }

    /// Stores a macro (its actions as given: the caller parsed them); a name taken is a duplicate.
    pub async fn insert_macro(
        &self,
        name: &WorkflowName,
        description: &str,
        actions: &[ActionSpec],
        by: UserId,
    ) -> StoreResult<Macro> {
        let now = Ts::now();
        let id: i64 = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query_scalar(
                "INSERT INTO macros (name, description, actions, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            )
            .bind(name.as_str())
            .bind(description)
            .bind(Json(actions))
            .bind(by)
            .bind(now)
            .fetch_one(pool)
            .await
            .map_err(unique_as("a macro with this name"))?
        })?;
        self.macro_by_id(id).await?.ok_or(StoreError::NotFound)
    }

    /// Replaces a macro's name, description and actions.
    pub async fn update_macro(
        &self,
        id: i64,
        name: &WorkflowName,
        description: &str,
        actions: &[ActionSpec],
    ) -> StoreResult<Macro> {
        let now = Ts::now();
        let n = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("UPDATE macros SET name = $2, description = $3, actions = $4, updated_at = $5 WHERE id = $1")
                .bind(id)
                .bind(name.as_str())
                .bind(description)
                .bind(Json(actions))
                .bind(now)
                .execute(pool)
                .await
                .map_err(unique_as("a macro with this name"))?
                .rows_affected()
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.macro_by_id(id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn delete_macro(&self, id: i64) -> StoreResult<bool> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("DELETE FROM macros WHERE id = $1").bind(id).execute(pool).await?.rows_affected() > 0
        })
    }
}
