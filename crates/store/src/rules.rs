//! Rules as stored, the record of each time one acted, and what scheduled rules scan.

use serde::Serialize;
use smart_ticket_domain::rules::RuleSpec;
use sqlx::types::Json;

use super::tickets::record_event;
use super::{Db, StoreError, StoreResult, on_pool, unique_as};
use crate::model::{Actor, Ticket, TicketId, Ts, UserId};

/// A rule as stored: its place in the order, whether it runs, and the rule as written.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StoredRule {
    pub id: i64,
    pub name: String,
    pub position: i32,
    pub enabled: bool,
    pub event: String,
    #[sqlx(json)]
    pub spec: RuleSpec,
    pub created_by: Option<UserId>,
    pub created_at: Ts,
    pub updated_at: Ts,
    /// A scheduled rule's last scan.
    pub last_run_at: Option<Ts>,
}

/// What a scheduled rule's scan reads: active tickets (of `statuses`) unchanged since `updated_before`, or
/// filed before `created_before`, that the rule has not acted on as they are now.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub statuses: Vec<&'static str>,
    pub updated_before: Option<Ts>,
    pub created_before: Option<Ts>,
}

const RULE_COLUMNS: &str = "id, name, position, enabled, event, spec, created_by, created_at, updated_at, last_run_at";

impl Db {
    /// Every rule, in order.
    pub async fn rules(&self) -> StoreResult<Vec<StoredRule>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {RULE_COLUMNS} FROM rules ORDER BY position, id")))
                .fetch_all(pool)
                .await?
        })
    }

    /// The enabled rules waiting for `event`, in order.
    pub async fn enabled_rules(&self, event: &str) -> StoreResult<Vec<StoredRule>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {RULE_COLUMNS} FROM rules WHERE event = $1 AND enabled ORDER BY position, id"
            )))
            .bind(event)
            .fetch_all(pool)
            .await?
        })
    }

    pub async fn rule(&self, id: i64) -> StoreResult<Option<StoredRule>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {RULE_COLUMNS} FROM rules WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
    }

    /// Stores a rule (parsed by the caller) after the others.
    pub async fn insert_rule(&self, spec: &RuleSpec, event: &str, by: UserId) -> StoreResult<StoredRule> {
        let now = Ts::now();
        let id: i64 = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query_scalar(
                "INSERT INTO rules (name, position, enabled, event, spec, created_by, created_at, updated_at) \
                 VALUES ($1, (SELECT coalesce(max(position), 0) + 1 FROM rules), $2, $3, $4, $5, $6, $6) RETURNING id",
            )
            .bind(spec.name.trim())
            .bind(spec.enabled)
            .bind(event)
            .bind(Json(spec))
            .bind(by)
            .bind(now)
            .fetch_one(pool)
            .await
            .map_err(unique_as("a rule with this name"))?
        })?;
        self.rule(id).await?.ok_or(StoreError::NotFound)
    }

    /// Replaces a rule as written (its place stays, unless `position` moves it).
    pub async fn update_rule(
        &self,
        id: i64,
        spec: &RuleSpec,
        event: &str,
        position: Option<i32>,
    ) -> StoreResult<StoredRule> {
        let now = Ts::now();
        let n = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "UPDATE rules SET name = $2, enabled = $3, event = $4, spec = $5, updated_at = $6, \
                 position = coalesce($7, position) WHERE id = $1",
            )
            .bind(id)
            .bind(spec.name.trim())
            .bind(spec.enabled)
            .bind(event)
            .bind(Json(spec))
            .bind(now)
            .bind(position)
            .execute(pool)
            .await
            .map_err(unique_as("a rule with this name"))?
            .rows_affected()
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.rule(id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn delete_rule(&self, id: i64) -> StoreResult<bool> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("DELETE FROM rules WHERE id = $1").bind(id).execute(pool).await?.rows_affected() > 0
        })
    }

    /// What changes whenever a rule is added, changed (turned on or off included) or deleted: how many there
    /// are and the latest `updated_at`.
    pub async fn rules_version(&self) -> StoreResult<(i64, Option<Ts>)> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as::<DB, (i64, Option<Ts>)>("SELECT count(*), max(updated_at) FROM rules")
                .fetch_one(pool)
                .await?
        })
    }

    /// Notes that scheduled rule `id` scanned at `at`.
    pub async fn mark_rule_run(&self, id: i64, at: Ts) -> StoreResult<()> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("UPDATE rules SET last_run_at = $2 WHERE id = $1").bind(id).bind(at).execute(pool).await?;
        })
    }

    /// When the requester last wrote on the ticket (a public comment), if they have.
    pub async fn last_customer_reply(&self, ticket: TicketId) -> StoreResult<Option<Ts>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, Option<Ts>>(
                "SELECT max(c.created_at) FROM comments c JOIN tickets t ON t.id = c.ticket_id \
                 WHERE c.ticket_id = $1 AND c.author_id = t.created_by AND NOT c.internal",
            )
            .bind(ticket)
            .fetch_one(pool)
            .await?
        })
    }

    /// The language the ticket is written in, when its words told.
    pub async fn ticket_language(&self, ticket: TicketId) -> StoreResult<Option<String>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, Option<String>>("SELECT language FROM tickets WHERE id = $1")
                .bind(ticket)
                .fetch_optional(pool)
                .await?
                .flatten()
        })
    }

    /// Up to `limit` tickets scheduled rule `rule` should look at, oldest change first: through the index on
    /// `(status, updated_at)` (or `(status, created_at)`), each status a range of it; those the rule already
    /// acted on as they are now (same `updated_at`) left out.
    pub async fn scan_tickets(&self, rule: i64, scan: &Scan, limit: i64) -> StoreResult<Vec<Ticket>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            let mut qb =
                sqlx::QueryBuilder::<DB>::new(format!("{} WHERE t.status IN (", super::tickets::TICKET_SELECT));
            let mut list = qb.separated(", ");
            for s in &scan.statuses {
                list.push_bind(*s);
            }
            qb.push(")");
            if let Some(before) = scan.updated_before {
                qb.push(" AND t.updated_at < ").push_bind(before);
            }
            if let Some(before) = scan.created_before {
                qb.push(" AND t.created_at < ").push_bind(before);
            }
            qb.push(" AND NOT EXISTS (SELECT 1 FROM rule_firings f WHERE f.ticket_id = t.id AND f.rule_id = ")
                .push_bind(rule)
                .push(" AND f.version = t.updated_at) ORDER BY t.updated_at, t.number LIMIT ")
                .push_bind(limit);
            qb.build_query_as::<Ticket>().fetch_all(pool).await?
        })
    }

    /// The `limit` most recently changed tickets (what a rule's dry run tests).
    pub async fn recently_updated_tickets(&self, limit: i64) -> StoreResult<Vec<Ticket>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{} ORDER BY t.updated_at DESC, t.number DESC LIMIT $1",
                super::tickets::TICKET_SELECT
            )))
            .bind(limit)
            .fetch_all(pool)
            .await?
        })
    }

    /// Records on the ticket that a chain of rules was cut at `depth` before rule `name` could act again.
    pub async fn record_rule_chain_cut(
        &self,
        ticket: TicketId,
        depth: u32,
        last: &serde_json::Value,
    ) -> StoreResult<()> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            let value = serde_json::json!({ "depth": depth });
            record_event!(pool, ticket, Actor::System, "rule_chain_cut", None, Some(value), now, Some(last))?;
        })
    }
}
