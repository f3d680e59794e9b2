//! The summary at the top of a long conversation, for whoever works the ticket: the problem, what was tried,
//! what is asked now. Extractive (`smart_ticket_ai::summary`), made when it is read, so it always covers every
//! message; with `AI_SUGGEST_PROVIDER` the model writes it instead, in a `ticket.summarize` job queued as the
//! conversation grows, and its summary is shown while it still covers every message.

use serde::Serialize;
use smart_ticket_ai::summary::{self, Summary, Turn};
use smart_ticket_domain::JobKind;
use utoipa::ToSchema;

use super::error::AppResult;
use super::{AuthUser, Desk};
use crate::db::{Db, NewJob, StoreResult};
use crate::model::{Comment, Ticket, TicketId};
use crate::pipeline::Pipeline;

/// A conversation is long, and summarised, from this many comments on…
pub const LONG_TURNS: usize = 4;
/// …or this many characters in all.
pub const LONG_CHARS: usize = 2_000;

/// The summary as the API and the page show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TicketSummary {
    pub problem: String,
    /// What was tried already, by the customer or the team, in the order it was said.
    pub tried: Vec<String>,
    /// The open question of the newest messages, if any.
    pub asked: Option<String>,
    /// `customer` or `team`: who asked it.
    pub asked_by: Option<String>,
    /// The comments it covers.
    pub turns: usize,
    /// `local` (extractive), or the model that wrote it.
    pub engine: String,
}

impl TicketSummary {
    fn of(s: Summary, turns: usize, engine: String) -> Self {
        let asked_by = s.asked.as_ref().map(|a| if a.by_requester { "customer" } else { "team" }.to_owned());
        TicketSummary { problem: s.problem, tried: s.tried, asked: s.asked.map(|a| a.text), asked_by, turns, engine }
    }
}

/// The summary of a long conversation on `id` for those who work it (`None`: the conversation is short).
pub(crate) async fn ticket_summary(desk: &Desk, auth: &AuthUser, id: TicketId) -> AppResult<Option<TicketSummary>> {
    let ticket = super::tickets::workable_ticket(desk, auth, id).await?;
    let comments = desk.db.comments(id, true).await?;
    if !is_long(&ticket, &comments) {
        return Ok(None);
    }
    if desk.pipeline.suggest_provider.is_some()
        && let Some(stored) = desk.db.ticket_summary(id).await?
        && usize::try_from(stored.turns).is_ok_and(|t| t == comments.len())
        && let Ok(s) = serde_json::from_value::<Summary>(stored.summary)
    {
        return Ok(Some(TicketSummary::of(s, comments.len(), stored.engine)));
    }
    Ok(Some(TicketSummary::of(extractive(&ticket, &comments), comments.len(), "local".into())))
}

fn is_long(ticket: &Ticket, comments: &[Comment]) -> bool {
    let chars = ticket.description.len() + comments.iter().map(|c| c.body.len()).sum::<usize>();
    comments.len() >= LONG_TURNS || chars >= LONG_CHARS
}

fn extractive(ticket: &Ticket, comments: &[Comment]) -> Summary {
    let turns: Vec<Turn<'_>> =
        comments.iter().map(|c| Turn { by_requester: c.author_id == ticket.created_by, text: &c.body }).collect();
    summary::summarize(&ticket.title, &ticket.description, &turns)
}

/// After a comment: queues the model's summary when one is configured and the conversation is long (keyed by
/// its length, so each length is summarised once).
pub(crate) async fn queue_if_long(p: &Pipeline, ticket: &Ticket) -> StoreResult<()> {
    if p.suggest_provider.is_none() {
        return Ok(());
    }
    let comments = p.db.comments(ticket.id, true).await?;
    if is_long(ticket, &comments) {
        p.db.enqueue(&job(ticket.id, comments.len())).await?;
    }
    Ok(())
}

fn job(ticket: TicketId, turns: usize) -> NewJob {
    NewJob {
        kind: JobKind::TicketSummarize,
        payload: serde_json::json!({ "ticket_id": ticket }),
        idempotency_key: format!("{ticket}:{turns}"),
    }
}

/// The job: the model's summary of the conversation as it is now (a failure leaves the extractive one shown).
pub(crate) async fn summarize(p: &Pipeline, id: TicketId) -> anyhow::Result<()> {
    let (Some(provider), Some(ticket)) = (&p.suggest_provider, p.db.ticket(id).await?) else { return Ok(()) };
    let comments = p.db.comments(id, true).await?;
    let who = |c: &Comment| if c.author_id == ticket.created_by { "customer" } else { "team" };
    let messages: Vec<(&str, &str)> = std::iter::once(("customer", ticket.description.as_str()))
        .chain(comments.iter().map(|c| (who(c), c.body.as_str())))
        .collect();
    match provider.summarize(&ticket.title, &messages).await {
        Ok(w) => save(&p.db, id, comments.len(), &w.summary, &w.engine).await?,
        Err(e) => {
            let (kind, detail) = (format!("{:?}", e.kind), e.detail);
            tracing::warn!(
                ticket = ticket.number,
                kind,
                detail,
                "the model did not summarise: the extractive summary stays"
            );
        }
    }
    Ok(())
}

async fn save(db: &Db, id: TicketId, turns: usize, s: &Summary, engine: &str) -> anyhow::Result<()> {
    let turns = i32::try_from(turns).unwrap_or(i32::MAX);
    Ok(db.save_ticket_summary(id, turns, &serde_json::to_value(s)?, engine).await?)
}
