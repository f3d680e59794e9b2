//! Received mail as admins oversee it: what was refused or ignored, and why; retrying or dismissing it.

use serde::Serialize;
use smart_ticket_domain::InboundState;
use utoipa::ToSchema;

use super::error::{AppError, AppResult};
use super::{AuthUser, Desk};
use crate::db::{InboundMessage, InboundSummary};
use crate::model::{TicketId, Ts};

/// A received message as the admin list shows it (its raw bytes stay stored).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailView {
    pub id: i64,
    /// `mail-in`, or the mailbox it was fetched from.
    pub source: String,
    pub message_id: Option<String>,
    pub state: InboundState,
    /// Why it was refused or ignored.
    pub reason: Option<String>,
    /// The ticket it filed or replied on.
    pub ticket_id: Option<TicketId>,
    pub received_at: Ts,
    /// The sender and subject as the message gives them (empty when it could not be read).
    pub from: String,
    pub subject: String,
    pub size: usize,
}

impl MailView {
    fn of(m: InboundSummary) -> Self {
        let parsed = mail_parser::MessageParser::default().parse_headers(&m.head);
        let from = parsed.as_ref().and_then(crate::mail::inbound::sender_address).unwrap_or("").to_owned();
        let subject = parsed.as_ref().and_then(|p| p.subject()).unwrap_or("").chars().take(200).collect();
        MailView {
            id: m.id,
            source: m.source,
            message_id: m.message_id,
            state: m.state,
            reason: m.reason,
            ticket_id: m.ticket_id,
            received_at: m.received_at,
            from,
            subject,
            size: usize::try_from(m.size).unwrap_or(0),
        }
    }

    fn of_message(m: InboundMessage) -> Self {
        let size = i64::try_from(m.raw.len()).unwrap_or(i64::MAX);
        let mut head = m.raw;
        head.truncate(usize::try_from(crate::db::HEAD_BYTES).unwrap_or(usize::MAX));
        MailView::of(InboundSummary {
            id: m.id,
            source: m.source,
            message_id: m.message_id,
            head,
            size,
            state: m.state,
            reason: m.reason,
            ticket_id: m.ticket_id,
            received_at: m.received_at,
        })
    }
}

/// Received messages in `state` (refused ones by default), newest first.
pub(crate) async fn list_mail(desk: &Desk, state: InboundState) -> AppResult<Vec<MailView>> {
    Ok(desk.db.inbound_in_state(state, 100).await?.into_iter().map(MailView::of).collect())
}

/// Ingests a refused or ignored message again.
pub(crate) async fn retry_mail(desk: &Desk, admin: &AuthUser, id: i64) -> AppResult<MailView> {
    if !desk.db.retry_inbound(id).await? {
        return Err(missing_or_settled(desk, id).await);
    }
    tracing::info!(admin = %admin.user.id, inbound_id = id, "received mail retried");
    desk.wake_workers();
    current(desk, id).await
}

/// Sets a refused or ignored message aside for good.
pub(crate) async fn dismiss_mail(desk: &Desk, admin: &AuthUser, id: i64) -> AppResult<MailView> {
    if !desk.db.dismiss_inbound(id).await? {
        return Err(missing_or_settled(desk, id).await);
    }
    tracing::info!(admin = %admin.user.id, inbound_id = id, "received mail dismissed");
    current(desk, id).await
}

/// The messages a ticket was filed or answered by, for those who work it ("show original").
pub(crate) async fn ticket_mail(desk: &Desk, auth: &AuthUser, ticket: TicketId) -> AppResult<Vec<MailView>> {
    super::tickets::workable_ticket(desk, auth, ticket).await?;
    Ok(desk.db.inbound_of_ticket(ticket).await?.into_iter().map(MailView::of).collect())
}

/// One of them as it came (raw, quoted history and signature included).
pub(crate) async fn ticket_mail_raw(desk: &Desk, auth: &AuthUser, ticket: TicketId, id: i64) -> AppResult<Vec<u8>> {
    super::tickets::workable_ticket(desk, auth, ticket).await?;
    let m = desk.db.inbound(id).await?.filter(|m| m.ticket_id == Some(ticket)).ok_or(AppError::NotFound)?;
    Ok(m.raw)
}

async fn current(desk: &Desk, id: i64) -> AppResult<MailView> {
    desk.db.inbound(id).await?.map(MailView::of_message).ok_or(AppError::NotFound)
}

/// 404 for no such message; 409 for one that is not refused or ignored.
async fn missing_or_settled(desk: &Desk, id: i64) -> AppError {
    match desk.db.inbound(id).await {
        Ok(Some(_)) => AppError::Conflict("only a refused or ignored message can be retried or dismissed".into()),
        Ok(None) => AppError::NotFound,
        Err(e) => e.into(),
    }
}

/// A configured mailbox's health: read recently and without error since, or why not.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailboxHealth {
    pub name: String,
    pub host: String,
    pub folder: String,
    pub healthy: bool,
    /// `ok`, `waiting for the first poll`, or what is wrong.
    pub state: String,
    pub last_poll_at: Option<Ts>,
    pub last_success_at: Option<Ts>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Ts>,
    /// Messages stored from it, ever.
    pub stored: i64,
}

/// Each configured mailbox's health, as the database records it (every process's polls).
pub(crate) async fn mailbox_health(desk: &Desk) -> AppResult<Vec<MailboxHealth>> {
    let mut out = Vec::new();
    for mb in &desk.pipeline.settings.mail.mailboxes {
        let state = desk.db.mailbox(&mb.name).await?;
        let stale_after = chrono::Duration::from_std(mb.poll * 3).unwrap_or_default() + chrono::Duration::seconds(60);
        let (healthy, summary) = judge(state.as_ref(), stale_after);
        out.push(MailboxHealth {
            name: mb.name.clone(),
            host: format!("{}:{}", mb.host, mb.port()),
            folder: mb.folder.clone(),
            healthy,
            state: summary,
            last_poll_at: state.as_ref().and_then(|s| s.last_poll_at),
            last_success_at: state.as_ref().and_then(|s| s.last_success_at),
            last_error: state.as_ref().and_then(|s| s.last_error.clone()),
            last_error_at: state.as_ref().and_then(|s| s.last_error_at),
            stored: state.as_ref().map_or(0, |s| s.fetched),
        });
    }
    Ok(out)
}

/// Healthy: no poll yet, or a successful one within `stale_after` and no error after it.
fn judge(state: Option<&crate::db::MailboxState>, stale_after: chrono::Duration) -> (bool, String) {
    let Some(s) = state.filter(|s| s.last_poll_at.is_some()) else {
        return (true, "waiting for the first poll".into());
    };
    let failing_since = match (s.last_error_at, s.last_success_at) {
        (Some(e), Some(ok)) if e > ok => Some(ok),
        (Some(_), None) => s.last_error_at,
        _ => None,
    };
    if let Some(since) = failing_since {
        let error = s.last_error.as_deref().unwrap_or("unknown error");
        return (false, format!("failing since {}: {error}", since.0.format("%Y-%m-%d %H:%M:%S UTC")));
    }
    match s.last_success_at {
        Some(ok) if Ts::now().0 - ok.0 <= stale_after => (true, "ok".into()),
        Some(ok) => (false, format!("not read since {} (is a worker running?)", ok.0.format("%Y-%m-%d %H:%M:%S UTC"))),
        None => (true, "waiting for the first poll".into()),
    }
}
