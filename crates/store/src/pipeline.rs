//! Storage of the pipeline's later steps: routing in one transaction, sent mail, SLA breaches.

use serde_json::json;
use smart_ticket_domain::{Priority, Role};
use sqlx::types::Json;
use std::collections::HashMap;

use super::jobs::enqueue;
use super::tickets::record_event;
use super::{Db, NewJob, StoreError, StoreResult, on_pool};
use crate::model::Actor;
use smart_ticket_domain::routing::{Candidate, Decision};
use smart_ticket_domain::{TicketId, Ts, UserId};

/// What routing did.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed {
    Assigned(Decision),
    /// Someone (an admin by hand, or an earlier attempt) assigned it already: left as it is.
    AlreadyAssigned,
    /// No moderator or admin exists at all.
    NobodyAvailable,
}

/// A ticket past its response deadline, as the escalation needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Breach {
    pub id: TicketId,
    pub number: i64,
    pub title: String,
    pub priority: String,
    pub deadline: Ts,
    pub assignee_email: Option<String>,
}

/// What routing reads of the ticket.
#[derive(sqlx::FromRow)]
struct RoutingTicket {
    assigned_to: Option<UserId>,
    skills: Json<Vec<String>>,
    ai_triage: Option<Json<smart_ticket_domain::triage::Triage>>,
}

impl RoutingTicket {
    /// The ticket's current skills (a person may have edited them), with the AI's confidence where it proposed
    /// the same skill, else full confidence.
    fn needed_skills(&self) -> Vec<(String, f64)> {
        let said = |s: &String| {
            let ai = self.ai_triage.as_ref()?;
            ai.skills.iter().find(|g| &g.value == s).map(|g| f64::from(g.confidence))
        };
        self.skills.0.iter().map(|s| (s.clone(), said(s).unwrap_or(1.0))).collect()
    }
}

/// A moderator or admin as routing reads them.
#[derive(sqlx::FromRow)]
struct StaffRow {
    id: UserId,
    email: String,
    role: String,
    skills: Json<Vec<String>>,
    away: bool,
    capacity: i32,
    last_assigned_at: Option<Ts>,
}

/// How many open tickets of one priority a person holds.
#[derive(sqlx::FromRow)]
struct LoadRow {
    assigned_to: UserId,
    priority: String,
    count: i64,
}

/// The staff as routing's candidates, each with their open tickets and priority-weighted load.
fn candidates(staff: Vec<StaffRow>, loads: &[LoadRow]) -> Vec<Candidate> {
    let mut load: HashMap<UserId, (i64, i64)> = HashMap::new();
    for l in loads {
        let w = l.priority.parse::<Priority>().map_or(2, |p| i64::from(p.weight()));
        let e = load.entry(l.assigned_to).or_default();
        e.0 += l.count;
        e.1 += l.count * w;
    }
    let candidate = |s: StaffRow| {
        let (open, weighted_load) = load.get(&s.id).copied().unwrap_or_default();
        Some(Candidate {
            id: s.id,
            email: s.email,
            role: s.role.parse::<Role>().ok()?,
            skills: s.skills.0,
            away: s.away,
            capacity: i64::from(s.capacity),
            open,
            weighted_load,
            last_assigned_at: s.last_assigned_at,
        })
    };
    staff.into_iter().filter_map(candidate).collect()
}

impl Db {
    /// Routes a ticket in one transaction: reads everyone's load under a lock (so two tickets routed at the
    /// same moment never both see the same stale load), lets `decide` choose, stores the assignee, the
    /// reason and history, and enqueues `next(decision)`. A ticket that already has an assignee is left alone.
    pub async fn route_ticket(
        &self,
        id: TicketId,
        decide: impl FnOnce(&[(String, f64)], &[Candidate]) -> Option<Decision>,
        next: impl FnOnce(&Decision) -> NewJob,
    ) -> StoreResult<Routed> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = if pg { pool.begin().await? } else { pool.begin_with("BEGIN IMMEDIATE").await? };
            let lock = if pg { " FOR UPDATE" } else { "" };
            let ticket: RoutingTicket = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT assigned_to, skills, ai_triage FROM tickets WHERE id = $1{lock}"
            )))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            if ticket.assigned_to.is_some() {
                return Ok(Routed::AlreadyAssigned);
            }
            let staff: Vec<StaffRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, email, role, skills, away, capacity, last_assigned_at FROM users \
                 WHERE role IN ('moderator', 'admin') ORDER BY id{lock}"
            )))
            .fetch_all(&mut *tx)
            .await?;
            // SQLite's planner (no statistics) prefers the status index and walks every open ticket, inside
            // the one write transaction every worker waits on; name the partial index of assigned open tickets.
            let hint = if pg { "" } else { " INDEXED BY tickets_open_load_idx" };
            let loads: Vec<LoadRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT assigned_to, priority, COUNT(*) AS count FROM tickets{hint} \
                 WHERE assigned_to IS NOT NULL AND status IN ('open', 'in_progress') GROUP BY assigned_to, priority"
            )))
            .fetch_all(&mut *tx)
            .await?;
            let (needed, candidates) = (ticket.needed_skills(), candidates(staff, &loads));
            let Some(decision) = decide(&needed, &candidates) else {
                return Ok(Routed::NobodyAvailable);
            };
            sqlx::query("UPDATE tickets SET assigned_to = $2, routing_reason = $3, updated_at = $4 WHERE id = $1")
                .bind(id)
                .bind(decision.assignee)
                .bind(decision.reason.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE users SET last_assigned_at = $2 WHERE id = $1")
                .bind(decision.assignee)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let assignee = Some(json!(decision.assignee));
            record_event!(&mut *tx, id, Actor::System, "assignee", Some(json!(null)), assignee, now)?;
            record_event!(&mut *tx, id, Actor::System, "routing_reason", None, Some(json!(decision.reason)), now)?;
            enqueue!(&mut *tx, &next(&decision), now)?;
            let happened = smart_ticket_domain::rules::Happened::Updated { fields: vec!["assignee".into()] };
            let key = format!("routed:{id}:{}", decision.assignee);
            enqueue!(&mut *tx, &super::tickets::rules_job(id, happened, Default::default(), key), now)?;
            tx.commit().await?;
            Routed::Assigned(decision)
        })
    }

    /// Whether the notification with this key went out already.
    pub async fn email_sent(&self, key: &str) -> StoreResult<bool> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM emails WHERE key = $1")
                .bind(key)
                .fetch_one(pool)
                .await?
                > 0
        })
    }

    pub async fn record_email(&self, key: &str, recipient: &str, subject: &str, transport: &str) -> StoreResult<()> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "INSERT INTO emails (key, recipient, subject, transport, sent_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(recipient)
            .bind(subject)
            .bind(transport)
            .bind(Ts::now())
            .execute(pool)
            .await?;
        })?;
        Ok(())
    }

    /// Emails sent, by key prefix (for tests and the admin).
    pub async fn count_emails(&self, key_prefix: &str) -> StoreResult<i64> {
        let pattern = format!("{}%", super::users::escape_like(key_prefix));
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM emails WHERE key LIKE $1 ESCAPE '\\'")
                .bind(pattern)
                .fetch_one(pool)
                .await?
        })
    }

    /// Open tickets past their deadline that were not escalated for that deadline yet.
    pub async fn sla_breaches(&self, now: Ts, limit: i64) -> StoreResult<Vec<Breach>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(
                "SELECT t.id, t.number, t.title, t.priority, t.deadline, a.email AS assignee_email \
                 FROM tickets t LEFT JOIN users a ON a.id = t.assigned_to \
                 WHERE t.status = 'open' AND t.deadline IS NOT NULL AND t.deadline < $1 \
                 AND (t.sla_escalated_for IS NULL OR t.sla_escalated_for <> t.deadline) \
                 ORDER BY t.deadline LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
        })
    }

    /// Marks one breach escalated (history row included) and enqueues `jobs`, unless another worker did
    /// first. Returns whether this call escalated it.
    pub async fn escalate_breach(&self, b: &Breach, jobs: &[NewJob]) -> StoreResult<bool> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE tickets SET sla_escalated_for = deadline WHERE id = $1 AND deadline = $2 AND status = 'open' \
                 AND (sla_escalated_for IS NULL OR sla_escalated_for <> deadline)",
            )
            .bind(b.id)
            .bind(b.deadline)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done == 0 {
                return Ok(false);
            }
            record_event!(
                &mut *tx,
                b.id,
                Actor::System,
                "sla_breach",
                None,
                Some(json!({ "deadline": b.deadline })),
                now
            )?;
            for job in jobs {
                enqueue!(&mut *tx, job, now)?;
            }
            tx.commit().await?;
            true
        })
    }

    /// Housekeeping: forgets succeeded jobs and expired sessions older than `before`.
    pub async fn sweep(&self, before: Ts) -> StoreResult<(u64, u64)> {
        on_pool!(self.writer(), |pool, DB, pg| {
            let jobs = sqlx::query("DELETE FROM jobs WHERE state = 'succeeded' AND updated_at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected();
            let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
                .bind(Ts::now())
                .execute(pool)
                .await?
                .rows_affected();
            (jobs, sessions)
        })
    }

    /// E-mail addresses of all admins.
    pub async fn admin_emails(&self) -> StoreResult<Vec<String>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, String>("SELECT email FROM users WHERE role = 'admin' ORDER BY email")
                .fetch_all(pool)
                .await?
        })
    }
}
