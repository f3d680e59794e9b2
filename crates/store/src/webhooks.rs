//! Webhooks as stored: the subscriptions, and each delivery with how its last attempt went (the delivery log).

use serde::Serialize;
use serde_json::{Value, json};
use smart_ticket_domain::JobKind;
use sqlx::types::Json;
use uuid::Uuid;

use super::jobs::enqueue;
use super::{Db, NewJob, StoreError, StoreResult, on_pool, unique_as};
use crate::model::{Ts, UserId};

/// A subscription: where to post which events. Its secret signs every delivery and is never shown again.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Webhook {
    pub id: i64,
    pub name: String,
    pub url: String,
    #[sqlx(json)]
    pub events: Vec<String>,
    #[serde(skip)]
    pub secret: String,
    pub enabled: bool,
    /// An admin allowed an address in a loopback or private range.
    pub allow_private: bool,
    pub created_by: Option<UserId>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

/// One event delivered (or being delivered) to one webhook, and how its last attempt went.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Delivery {
    /// Also the idempotency key the receiver is sent (in the payload and the `X-SmartTicket-Delivery` header).
    pub id: Uuid,
    pub webhook_id: i64,
    pub event: String,
    #[serde(skip)]
    pub event_key: String,
    #[sqlx(json)]
    #[schema(value_type = Object)]
    pub payload: Value,
    /// `pending` (being tried), `delivered` (a 2xx answer) or `dead` (out of attempts).
    pub state: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_latency_ms: Option<i32>,
    /// The start of the last answer's body (at most 1,000 characters).
    pub last_response: Option<String>,
    pub last_error: Option<String>,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub delivered_at: Option<Ts>,
}

/// A delivery to queue: to `webhook`, about `event`, once per `event_key`.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub webhook_id: i64,
    pub event: &'static str,
    pub event_key: String,
    /// The body without its `id`, which the delivery's id becomes.
    pub payload: Value,
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status: Option<i32>,
    pub latency_ms: i32,
    pub response: Option<String>,
    pub error: Option<String>,
    /// The state it leaves the delivery in.
    pub state: &'static str,
}

const WEBHOOK_COLUMNS: &str =
    "id, name, url, events, secret, enabled, allow_private, created_by, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "id, webhook_id, event, event_key, payload, state, attempts, last_status, \
     last_latency_ms, last_response, last_error, created_at, updated_at, delivered_at";

/// The job that delivers `delivery`; `again` keys a delivery sent again by hand apart from its first run.
pub fn delivery_job(delivery: Uuid, again: Option<Ts>) -> NewJob {
    let key = match again {
        Some(at) => format!("{delivery}:again:{}", at.0.timestamp_micros()),
        None => delivery.to_string(),
    };
    NewJob { kind: JobKind::WebhookDeliver, payload: json!({ "delivery_id": delivery }), idempotency_key: key }
}

impl Db {
    pub async fn webhooks(&self) -> StoreResult<Vec<Webhook>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY lower(name), id"
            )))
            .fetch_all(pool)
            .await?
        })
    }

    pub async fn webhook(&self, id: i64) -> StoreResult<Option<Webhook>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
    }

    pub async fn insert_webhook(
        &self,
        name: &str,
        url: &str,
        events: &[String],
        secret: &str,
        allow_private: bool,
        by: UserId,
    ) -> StoreResult<Webhook> {
        let now = Ts::now();
        let id: i64 = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query_scalar(
                "INSERT INTO webhooks (name, url, events, secret, allow_private, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
            )
            .bind(name)
            .bind(url)
            .bind(Json(events))
            .bind(secret)
            .bind(allow_private)
            .bind(by)
            .bind(now)
            .fetch_one(pool)
            .await
            .map_err(unique_as("a webhook with this name"))?
        })?;
        self.webhook(id).await?.ok_or(StoreError::NotFound)
    }

    /// Writes a webhook's changeable fields as given (the caller read and changed it).
    pub async fn update_webhook(&self, w: &Webhook) -> StoreResult<Webhook> {
        let now = Ts::now();
        let n = on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "UPDATE webhooks SET name = $2, url = $3, events = $4, enabled = $5, allow_private = $6, \
                 updated_at = $7 WHERE id = $1",
            )
            .bind(w.id)
            .bind(&w.name)
            .bind(&w.url)
            .bind(Json(&w.events))
            .bind(w.enabled)
            .bind(w.allow_private)
            .bind(now)
            .execute(pool)
            .await
            .map_err(unique_as("a webhook with this name"))?
            .rows_affected()
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.webhook(w.id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn delete_webhook(&self, id: i64) -> StoreResult<bool> {
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query("DELETE FROM webhooks WHERE id = $1").bind(id).execute(pool).await?.rows_affected() > 0
        })
    }

    /// Stores each delivery and its job in one transaction; one already queued for its event is left alone.
    pub async fn queue_deliveries(&self, deliveries: &[NewDelivery]) -> StoreResult<usize> {
        if deliveries.is_empty() {
            return Ok(0);
        }
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            let mut queued = 0;
            for d in deliveries {
                let id = Uuid::new_v4();
                let mut payload = d.payload.clone();
                payload["id"] = json!(id);
                let added = sqlx::query(
                    "INSERT INTO webhook_deliveries (id, webhook_id, event, event_key, payload, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (webhook_id, event_key) DO NOTHING",
                )
                .bind(id)
                .bind(d.webhook_id)
                .bind(d.event)
                .bind(&d.event_key)
                .bind(Json(&payload))
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if added > 0 {
                    enqueue!(&mut *tx, &delivery_job(id, None), now)?;
                    queued += 1;
                }
            }
            tx.commit().await?;
            queued
        })
    }

    pub async fn delivery(&self, id: Uuid) -> StoreResult<Option<Delivery>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?
        })
    }

    /// A webhook's deliveries, newest first.
    pub async fn deliveries(&self, webhook: i64, limit: i64) -> StoreResult<Vec<Delivery>> {
        on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 \
                 ORDER BY created_at DESC, id LIMIT $2"
            )))
            .bind(webhook)
            .bind(limit)
            .fetch_all(pool)
            .await?
        })
    }

    /// Records one attempt at delivery `id`.
    pub async fn record_attempt(&self, id: Uuid, a: &Attempt) -> StoreResult<()> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            sqlx::query(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_latency_ms = $3, \
                 last_response = $4, last_error = $5, state = $6, updated_at = $7, \
                 delivered_at = CASE WHEN $6 = 'delivered' THEN $7 ELSE delivered_at END WHERE id = $1",
            )
            .bind(id)
            .bind(a.status)
            .bind(a.latency_ms)
            .bind(a.response.as_deref())
            .bind(a.error.as_deref())
            .bind(a.state)
            .bind(now)
            .execute(pool)
            .await?;
        })
    }

    /// "Deliver pending now" (the receiver is back): the waiting attempts of webhook `webhook`'s pending
    /// deliveries are due at once instead of at their backoff; how many were moved. Attempts left as they were.
    pub async fn deliver_pending_now(&self, webhook: i64) -> StoreResult<u64> {
        let pending: Vec<Uuid> = on_pool!(self.reader(), |pool, DB, pg| {
            sqlx::query_scalar::<DB, Uuid>(
                "SELECT id FROM webhook_deliveries WHERE webhook_id = $1 AND state = 'pending'",
            )
            .bind(webhook)
            .fetch_all(pool)
            .await?
        })?;
        let now = Ts::now();
        let mut moved = 0;
        for chunk in pending.chunks(500) {
            moved += on_pool!(self.writer(), |pool, DB, pg| {
                // A delivery's jobs are keyed by its id, alone or followed by when it was sent again (`delivery_job`).
                let mut qb = sqlx::QueryBuilder::<DB>::new("UPDATE jobs SET run_at = ");
                qb.push_bind(now).push(", updated_at = ").push_bind(now);
                qb.push(" WHERE kind = ").push_bind(JobKind::WebhookDeliver.as_str());
                qb.push(" AND state = 'queued' AND run_at > ").push_bind(now);
                qb.push(" AND substr(idempotency_key, 1, 36) IN (");
                let mut keys = qb.separated(", ");
                for id in chunk {
                    keys.push_bind(id.to_string());
                }
                qb.push(")");
                qb.build().execute(pool).await?.rows_affected()
            })?;
        }
        Ok(moved)
    }

    /// Sends delivery `id` again ("send again"): pending, with a job of its own; the same id and payload.
    pub async fn redeliver(&self, id: Uuid) -> StoreResult<bool> {
        let now = Ts::now();
        on_pool!(self.writer(), |pool, DB, pg| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("UPDATE webhook_deliveries SET state = 'pending', updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                enqueue!(&mut *tx, &delivery_job(id, Some(now)), now)?;
            }
            tx.commit().await?;
            n > 0
        })
    }
}
