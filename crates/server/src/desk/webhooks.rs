//! Webhooks: admins subscribe an address to ticket events; each event becomes one delivery per webhook,
//! posted by the durable job queue (retried with exponential backoff for about an hour, then dead; "send
//! again" by hand), signed with HMAC-SHA256 over the timestamp and the body, with one idempotency key for
//! every attempt. Loopback and private addresses are refused unless the admin allowed them for that webhook,
//! checked again at every delivery against the addresses the name resolves to (and the connection pinned to
//! them, so a name cannot change its answer in between).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use smart_ticket_domain::access::may_manage_workflow;
use smart_ticket_domain::rules::{Happened, RulesRun};
use smart_ticket_domain::webhooks::{WebhookEvent, WebhookUrl, is_private, parse_events};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{AppError, AppResult};
use super::{AuthUser, Desk};
use crate::db::{Attempt, Delivery, Job, NewDelivery, Webhook};
use crate::model::{Ticket, Ts};
use crate::pipeline::Pipeline;
use smart_ticket_domain::Status;

/// The most of an answer's body read (the rest is dropped) and the most kept in the delivery log.
const RESPONSE_CAP: usize = 64 * 1024;
const EXCERPT_CHARS: usize = 1000;

fn require_admin(auth: &AuthUser) -> AppResult<()> {
    if may_manage_workflow(auth.user.role) { Ok(()) } else { Err(AppError::Forbidden) }
}

/// A webhook as written.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookInput {
    pub name: String,
    /// `http(s)://…`; loopback and private addresses only with `allow_private`.
    pub url: String,
    /// Any of `ticket.created`, `ticket.triaged`, `ticket.assigned`, `ticket.updated`, `ticket.resolved`,
    /// `comment.added`.
    pub events: Vec<String>,
    #[serde(default)]
    pub allow_private: bool,
}

/// Fields to change; absent ones stay.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookChange {
    pub name: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub allow_private: Option<bool>,
}

/// A new webhook and its signing secret, shown this once.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedWebhook {
    pub webhook: Webhook,
    /// Verify `X-SmartTicket-Signature` with it: `v1` is the hex HMAC-SHA256 of `{t}.{body}`.
    pub secret: String,
}

/// The address if it may be delivered to: 422 when it does not parse, or names (or resolves to) a loopback
/// or private address that `allow_private` does not allow.
async fn checked_url(raw: &str, allow_private: bool) -> AppResult<WebhookUrl> {
    let url = WebhookUrl::parse(raw)?;
    if !allow_private {
        match resolve(&url).await {
            Ok(_) => {}
            Err(Refusal::Private(why)) => return Err(AppError::field("url", why)),
            // A name that does not resolve now may later; delivery checks again.
            Err(Refusal::Unresolved(_)) => {}
        }
    }
    Ok(url)
}

pub(crate) async fn create(desk: &Desk, auth: &AuthUser, input: WebhookInput) -> AppResult<CreatedWebhook> {
    require_admin(auth)?;
    let name = smart_ticket_domain::workflow::WorkflowName::parse(&input.name)?;
    let events: Vec<String> = parse_events(&input.events)?.iter().map(|e| e.as_str().to_owned()).collect();
    let url = checked_url(&input.url, input.allow_private).await?;
    let secret = crate::auth::random_token();
    let webhook = desk
        .db
        .insert_webhook(name.as_str(), url.as_str(), &events, &secret, input.allow_private, auth.user.id)
        .await?;
    tracing::info!(webhook = webhook.id, by = %auth.user.id, "webhook added");
    Ok(CreatedWebhook { webhook, secret })
}

pub(crate) async fn list(desk: &Desk, auth: &AuthUser) -> AppResult<Vec<Webhook>> {
    require_admin(auth)?;
    Ok(desk.db.webhooks().await?)
}

pub(crate) async fn get(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<Webhook> {
    require_admin(auth)?;
    desk.db.webhook(id).await?.ok_or(AppError::NotFound)
}

pub(crate) async fn update(desk: &Desk, auth: &AuthUser, id: i64, change: WebhookChange) -> AppResult<Webhook> {
    let mut w = get(desk, auth, id).await?;
    if let Some(name) = change.name {
        w.name = smart_ticket_domain::workflow::WorkflowName::parse(&name)?.as_str().to_owned();
    }
    if let Some(events) = change.events {
        w.events = parse_events(&events)?.iter().map(|e| e.as_str().to_owned()).collect();
    }
    w.enabled = change.enabled.unwrap_or(w.enabled);
    w.allow_private = change.allow_private.unwrap_or(w.allow_private);
    let url = change.url.unwrap_or_else(|| w.url.clone());
    w.url = checked_url(&url, w.allow_private).await?.as_str().to_owned();
    Ok(desk.db.update_webhook(&w).await?)
}

pub(crate) async fn delete(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<()> {
    require_admin(auth)?;
    if desk.db.delete_webhook(id).await? { Ok(()) } else { Err(AppError::NotFound) }
}

/// A webhook's delivery log, newest first (at most 100).
pub(crate) async fn log(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<Vec<Delivery>> {
    get(desk, auth, id).await?;
    Ok(desk.db.deliveries(id, 100).await?)
}

/// "Deliver pending now": the receiver is back, so the pending deliveries' next attempts are due at once
/// rather than at their backoff; how many attempts were moved.
pub(crate) async fn deliver_pending_now(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<u64> {
    get(desk, auth, id).await?;
    let moved = desk.db.deliver_pending_now(id).await?;
    desk.wake_workers();
    Ok(moved)
}

/// "Send again": the delivery is queued once more, with the same id and payload.
pub(crate) async fn send_again(desk: &Desk, auth: &AuthUser, id: i64, delivery: Uuid) -> AppResult<()> {
    get(desk, auth, id).await?;
    match desk.db.delivery(delivery).await? {
        Some(d) if d.webhook_id == id => {
            desk.db.redeliver(delivery).await?;
            desk.wake_workers();
            Ok(())
        }
        _ => Err(AppError::NotFound),
    }
}

/// The webhook events an event of the rules' stream is, for `ticket` as it is now.
fn events_of(happened: &Happened, ticket: &Ticket) -> Vec<WebhookEvent> {
    match happened {
        Happened::Created => vec![WebhookEvent::TicketCreated],
        Happened::Triaged => vec![WebhookEvent::TicketTriaged],
        Happened::Updated { fields } => {
            let mut out = vec![WebhookEvent::TicketUpdated];
            if fields.iter().any(|f| f == "assignee") && ticket.assigned_to.is_some() {
                out.push(WebhookEvent::TicketAssigned);
            }
            if fields.iter().any(|f| f == "status") && ticket.status == Status::Resolved {
                out.push(WebhookEvent::TicketResolved);
            }
            out
        }
        Happened::Commented { .. } => vec![WebhookEvent::CommentAdded],
        Happened::Scanned => Vec::new(),
    }
}

/// What a webhook is posted (`application/json`), the same on every attempt. Headers: `X-SmartTicket-Event`,
/// `X-SmartTicket-Delivery` (= `id`, the idempotency key), `X-SmartTicket-Signature: t={unix seconds},v1={hex
/// HMAC-SHA256 of "{t}.{body}" keyed by the webhook's secret}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookBody {
    /// The delivery's id: the same on every attempt and on "send again"; a receiver drops repeats by it.
    #[schema(value_type = String)]
    pub id: Option<Uuid>,
    /// `ticket.created`, `ticket.triaged`, `ticket.assigned`, `ticket.updated`, `ticket.resolved`,
    /// `comment.added`, `rule.fired`.
    pub event: &'static str,
    pub created_at: Ts,
    pub ticket: WebhookTicket,
    /// `ticket.updated` (and assigned, resolved): the fields that changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
    /// `comment.added`: the comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<WebhookComment>,
    /// `rule.fired`: the rule, `{id, name}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub rule: Option<Value>,
}

/// The ticket as a webhook is told it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookTicket {
    pub id: crate::model::TicketId,
    pub number: i64,
    pub title: String,
    pub status: String,
    pub priority: String,
    pub category: Option<String>,
    pub skills: Vec<String>,
    pub tags: Vec<String>,
    pub requester_email: String,
    pub assignee_email: Option<String>,
    pub created_at: Ts,
    pub updated_at: Ts,
    /// The ticket's page.
    pub url: String,
}

/// A comment as a webhook is told it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookComment {
    pub id: i64,
    pub author_email: String,
    pub body: String,
    pub internal: bool,
    pub created_at: Ts,
}

/// The body of a delivery (its `id` is set when it is stored).
async fn payload(p: &Pipeline, event: WebhookEvent, run: &RulesRun, t: &Ticket) -> anyhow::Result<Value> {
    let ticket = WebhookTicket {
        id: t.id,
        number: t.number,
        title: t.title.clone(),
        status: t.status.as_str().to_owned(),
        priority: t.priority.as_str().to_owned(),
        category: t.category.clone(),
        skills: t.skills.clone(),
        tags: t.tags.clone(),
        requester_email: t.requester_email.clone(),
        assignee_email: t.assignee_email.clone(),
        created_at: t.created_at,
        updated_at: t.updated_at,
        url: p.link(t.id),
    };
    let mut body = WebhookBody {
        id: None,
        event: event.as_str(),
        created_at: Ts::now(),
        ticket,
        changed: None,
        comment: None,
        rule: None,
    };
    match &run.happened {
        Happened::Updated { fields } => body.changed = Some(fields.clone()),
        Happened::Commented { comment_id: Some(id), .. } => {
            body.comment = p.db.comment(*id).await?.map(|c| WebhookComment {
                id: c.id,
                author_email: c.author_email,
                body: c.body,
                internal: c.internal,
                created_at: c.created_at,
            });
        }
        _ => {}
    }
    Ok(serde_json::to_value(body)?)
}

/// Queues a delivery to each enabled webhook subscribed to what happened (once per event: `event_key`).
pub(crate) async fn fan_out(p: &Pipeline, run: &RulesRun, ticket: &Ticket, event_key: &str) -> anyhow::Result<()> {
    let events = events_of(&run.happened, ticket);
    if events.is_empty() {
        return Ok(());
    }
    let webhooks = p.db.webhooks().await?;
    let mut deliveries = Vec::new();
    for event in events {
        for w in webhooks.iter().filter(|w| w.enabled && w.events.iter().any(|e| e == event.as_str())) {
            deliveries.push(NewDelivery {
                webhook_id: w.id,
                event: event.as_str(),
                event_key: format!("{event_key}:{}", event.as_str()),
                payload: payload(p, event, run, ticket).await?,
            });
        }
    }
    p.db.queue_deliveries(&deliveries).await?;
    Ok(())
}

/// A rule's `call_webhook`: a `rule.fired` delivery of `ticket` to webhook `id` (if it exists and is on), once
/// per event.
pub(crate) async fn call(
    p: &Pipeline,
    id: i64,
    rule: &crate::db::StoredRule,
    ticket: &Ticket,
    event_key: &str,
) -> anyhow::Result<()> {
    let Some(w) = p.db.webhook(id).await?.filter(|w| w.enabled) else { return Ok(()) };
    let run = RulesRun { ticket_id: ticket.id, happened: Happened::Scanned, depth: 0, by_rule: Some(rule.id) };
    let mut body = payload(p, WebhookEvent::RuleFired, &run, ticket).await?;
    body["rule"] = serde_json::json!({ "id": rule.id, "name": rule.name });
    let delivery = NewDelivery {
        webhook_id: w.id,
        event: WebhookEvent::RuleFired.as_str(),
        event_key: format!("{event_key}:rule:{}", rule.id),
        payload: body,
    };
    p.db.queue_deliveries(&[delivery]).await?;
    Ok(())
}

/// Why an address is not delivered to.
enum Refusal {
    Private(String),
    Unresolved(String),
}

/// The addresses `url`'s host resolves to, every one public (else [`Refusal::Private`]).
async fn resolve(url: &WebhookUrl) -> Result<Vec<SocketAddr>, Refusal> {
    let host = url.host().to_owned();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), url.port()))
        .await
        .map_err(|e| Refusal::Unresolved(format!("{host} does not resolve: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Refusal::Unresolved(format!("{host} does not resolve")));
    }
    if let Some(a) = addrs.iter().find(|a| is_private(a.ip())) {
        return Err(Refusal::Private(format!(
            "{host} is {}, a loopback or private address: allow private addresses for this webhook to use it",
            a.ip()
        )));
    }
    Ok(addrs)
}

/// `v1` of the signature header: the hex HMAC-SHA256, keyed by the webhook's secret, of `{timestamp}.{body}`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The `webhook.deliver` job: one attempt. A 2xx answer delivers it; any other answer, a timeout or a
/// connection failure is recorded and retried by the queue (the job fails) until its last attempt, which
/// leaves it dead. A refused address is dead at once.
pub(crate) async fn deliver(p: Pipeline, job: Job) -> anyhow::Result<()> {
    #[derive(Deserialize)]
    struct Payload {
        delivery_id: Uuid,
    }
    let Payload { delivery_id } = serde_json::from_value(job.payload.clone())?;
    let Some(d) = p.db.delivery(delivery_id).await? else { return Ok(()) };
    let webhook = p.db.webhook(d.webhook_id).await?;
    let last = job.attempts >= job.max_attempts;
    let started = Instant::now();
    let outcome = match &webhook {
        Some(w) if w.enabled => post(&p, w, &d).await,
        _ => Err((None, None, "the webhook was turned off or deleted".to_owned(), true)),
    };
    let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    match outcome {
        Ok((status, response)) => {
            let state = "delivered";
            let a = Attempt { status: Some(status), latency_ms, response, error: None, state };
            p.db.record_attempt(d.id, &a).await?;
            Ok(())
        }
        Err((status, response, error, final_now)) => {
            let state = if last || final_now { "dead" } else { "pending" };
            let a = Attempt { status, latency_ms, response, error: Some(error.clone()), state };
            p.db.record_attempt(d.id, &a).await?;
            if final_now { Ok(()) } else { Err(anyhow::anyhow!("webhook {}: {error}", d.webhook_id)) }
        }
    }
}

/// What one attempt ends in: the status and the answer's start, or (status, answer, why, and whether
/// trying again is pointless).
type PostResult = Result<(i32, Option<String>), (Option<i32>, Option<String>, String, bool)>;

/// Posts delivery `d` to webhook `w`, pinned to the addresses checked.
async fn post(p: &Pipeline, w: &Webhook, d: &Delivery) -> PostResult {
    let url = WebhookUrl::parse(&w.url).map_err(|e| (None, None, e.to_string(), true))?;
    let addrs = match resolve(&url).await {
        Ok(addrs) => addrs,
        Err(Refusal::Private(why)) if !w.allow_private => return Err((None, None, format!("refused: {why}"), true)),
        Err(Refusal::Private(_)) => tokio::net::lookup_host((url.host(), url.port()))
            .await
            .map_err(|e| (None, None, e.to_string(), false))?
            .collect(),
        Err(Refusal::Unresolved(why)) => return Err((None, None, why, false)),
    };
    let client = p
        .webhook_clients
        .pinned(url.host(), addrs, p.settings.webhook_timeout)
        .map_err(|e| (None, None, format!("client: {e}"), false))?;
    let body = serde_json::to_vec(&d.payload).map_err(|e| (None, None, e.to_string(), true))?;
    let timestamp = Ts::now().0.timestamp();
    let sent = client
        .post(url.as_str())
        .header("content-type", "application/json")
        .header("user-agent", "SmartTicket-Webhooks/1")
        .header("x-smartticket-event", &d.event)
        .header("x-smartticket-delivery", d.id.to_string())
        .header("x-smartticket-signature", format!("t={timestamp},v1={}", signature(&w.secret, timestamp, &body)))
        .body(body)
        .send()
        .await
        .map_err(|e| (None, None, if e.is_timeout() { "timed out".to_owned() } else { format!("{e}") }, false))?;
    let status = i32::from(sent.status().as_u16());
    let ok = sent.status().is_success();
    let response = read_capped(sent).await;
    if ok { Ok((status, response)) } else { Err((Some(status), response, format!("answered {status}"), false)) }
}

/// HTTP clients for deliveries, one per host and the addresses it was checked to resolve to, so deliveries
/// to one receiver reuse their connections. A client only ever connects to the addresses in its key; when the
/// name resolves to others, that is another key (checked first like every delivery's).
#[derive(Default)]
pub struct WebhookClients(std::sync::Mutex<HashMap<(String, Vec<SocketAddr>), reqwest::Client>>);

/// The most clients kept; past it the cache starts again (a client is cheap to make, not to make per call).
const CLIENTS_KEPT: usize = 64;

impl WebhookClients {
    /// The client for `host` pinned to `addrs`: no redirects followed, each request cut at `timeout`.
    fn pinned(&self, host: &str, addrs: Vec<SocketAddr>, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        let mut clients = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (host.to_owned(), addrs);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .resolve_to_addrs(host, &key.1)
            .build()?;
        if clients.len() >= CLIENTS_KEPT {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// The start of an answer's body: at most [`RESPONSE_CAP`] bytes read, [`EXCERPT_CHARS`] kept.
async fn read_capped(mut res: reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < RESPONSE_CAP {
        match res.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk[..chunk.len().min(RESPONSE_CAP - bytes.len())]),
            _ => break,
        }
    }
    let text: String = String::from_utf8_lossy(&bytes).chars().take(EXCERPT_CHARS).collect();
    Some(text).filter(|t| !t.is_empty())
}
