//! Canned responses: reply texts with placeholders, shared by the team (admins keep them) or a person's own;
//! filled for a ticket when inserted into a reply, and proposed from what similar resolved tickets used.

use serde::{Deserialize, Serialize};
use smart_ticket_domain::access::{self, may_edit_canned, may_manage_workflow, may_use_workflow};
use smart_ticket_domain::workflow::{Placeholder, ReplyTemplate, WorkflowName, name_from_email};
use utoipa::ToSchema;

use super::error::{AppError, AppResult, parse_both};
use super::tickets::workable_ticket;
use super::{AuthUser, Desk};
use crate::db::CannedResponse;
use crate::model::{Ticket, TicketId, User};

/// The most canned responses a listing returns (the reply box's picker searches as one types).
pub(crate) const LIST_MAX: i64 = 200;

fn require_staff(auth: &AuthUser) -> AppResult<()> {
    if may_use_workflow(auth.user.role) { Ok(()) } else { Err(AppError::Forbidden) }
}

/// A new canned response: shared with the team (admins) or the caller's own.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCanned {
    pub name: String,
    /// The text; `{{ requester.name }}`, `{{ ticket.number }}` … are filled when it is used.
    pub body: String,
    #[serde(default)]
    pub shared: bool,
}

/// Fields to change; absent ones stay.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CannedChange {
    pub name: Option<String>,
    pub body: Option<String>,
}

/// The canned responses the caller may use, shared ones first; `q` filters by name or text.
pub(crate) async fn list(desk: &Desk, auth: &AuthUser, q: Option<&str>) -> AppResult<Vec<CannedResponse>> {
    require_staff(auth)?;
    if q.is_some_and(|q| q.chars().count() > 100) {
        return Err(AppError::field("q", "a search must be at most 100 characters"));
    }
    Ok(desk.db.canned_responses(auth.user.id, q.map(str::trim), LIST_MAX).await?)
}

/// The canned response if the caller may use it (shared, or their own); otherwise 404.
pub(crate) async fn usable(desk: &Desk, user: &User, id: i64) -> AppResult<CannedResponse> {
    match desk.db.canned_response(id).await? {
        Some(c) if may_use_workflow(user.role) && c.owner_id.is_none_or(|o| o == user.id) => Ok(c),
        _ => Err(AppError::NotFound),
    }
}

pub(crate) async fn create(desk: &Desk, auth: &AuthUser, new: NewCanned) -> AppResult<CannedResponse> {
    require_staff(auth)?;
    if new.shared && !may_manage_workflow(auth.user.role) {
        return Err(AppError::Forbidden);
    }
    let (name, body) = parse_both(WorkflowName::parse(&new.name), ReplyTemplate::parse(&new.body))?;
    let owner = (!new.shared).then_some(auth.user.id);
    Ok(desk.db.insert_canned_response(&name, &body, owner, auth.user.id).await?)
}

/// The canned response if the caller may change it: 404 if they may not use it, 403 if only use it.
async fn editable(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<CannedResponse> {
    let canned = usable(desk, &auth.user, id).await?;
    if may_edit_canned(auth.user.viewer(), canned.owner_id) { Ok(canned) } else { Err(AppError::Forbidden) }
}

pub(crate) async fn update(desk: &Desk, auth: &AuthUser, id: i64, change: CannedChange) -> AppResult<CannedResponse> {
    editable(desk, auth, id).await?;
    let name = change.name.as_deref().map(WorkflowName::parse).transpose();
    let body = change.body.as_deref().map(ReplyTemplate::parse).transpose();
    let (name, body) = parse_both(name, body)?;
    Ok(desk.db.update_canned_response(id, name.as_ref(), body.as_ref()).await?)
}

pub(crate) async fn delete(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<()> {
    editable(desk, auth, id).await?;
    desk.db.delete_canned_response(id).await?;
    Ok(())
}

/// `template` filled for `ticket`, written by `agent`: plain text (pages escape it when they show it).
pub(crate) fn fill(desk: &Desk, template: &ReplyTemplate, ticket: &Ticket, agent: &User) -> String {
    fill_for(&desk.pipeline, template, ticket, Some(&agent.email))
}

/// [`fill`] for the workflow: `agent` is the address of whoever sends it (none: "the support team").
pub(crate) fn fill_for(
    p: &crate::pipeline::Pipeline,
    template: &ReplyTemplate,
    ticket: &Ticket,
    agent: Option<&str>,
) -> String {
    let team = || "the support team".to_owned();
    template.fill(|v| match v {
        Placeholder::RequesterName => name_from_email(&ticket.requester_email),
        Placeholder::RequesterEmail => ticket.requester_email.clone(),
        Placeholder::TicketNumber => ticket.number.to_string(),
        Placeholder::TicketTitle => ticket.title.clone(),
        Placeholder::TicketStatus => ticket.status.as_str().replace('_', " "),
        Placeholder::TicketLink => p.link(ticket.id),
        Placeholder::AssigneeName => ticket.assignee_email.as_deref().map_or_else(team, name_from_email),
        Placeholder::AssigneeEmail => ticket.assignee_email.clone().unwrap_or_default(),
        Placeholder::AgentName => agent.map_or_else(team, name_from_email),
        Placeholder::HelpLink => format!("{}/help", p.settings.app_url),
    })
}

/// A canned response's stored text as a template (it was parsed when saved; a refusal now is a 422).
pub(crate) fn template_of(canned: &CannedResponse) -> AppResult<ReplyTemplate> {
    Ok(ReplyTemplate::parse(&canned.body)?)
}

/// A canned response filled for one ticket: what the reply box inserts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct FilledCanned {
    pub id: i64,
    pub name: String,
    pub shared: bool,
    /// The text with the ticket's values in place of its placeholders.
    pub text: String,
    /// For proposals: how many of the similar resolved tickets were answered with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_on: Option<i64>,
}

impl FilledCanned {
    fn of(desk: &Desk, canned: CannedResponse, ticket: &Ticket, agent: &User) -> AppResult<Self> {
        let text = fill(desk, &template_of(&canned)?, ticket, agent);
        Ok(Self { id: canned.id, shared: canned.owner_id.is_none(), name: canned.name, text, used_on: None })
    }
}

/// Canned response `canned` filled for ticket `id`, for whoever works it.
pub(crate) async fn filled_for(desk: &Desk, auth: &AuthUser, id: TicketId, canned: i64) -> AppResult<FilledCanned> {
    let ticket = workable_ticket(desk, auth, id).await?;
    let canned = usable(desk, &auth.user, canned).await?;
    FilledCanned::of(desk, canned, &ticket, &auth.user)
}

/// Every canned response `agent` may use, filled for `ticket` (the reply box's picker).
pub(crate) async fn all_filled(desk: &Desk, ticket: &Ticket, agent: &User) -> AppResult<Vec<FilledCanned>> {
    if !access::may_work(agent.viewer(), ticket.assigned_to) {
        return Ok(Vec::new());
    }
    let all = desk.db.canned_responses(agent.id, None, LIST_MAX).await?;
    all.into_iter().map(|c| FilledCanned::of(desk, c, ticket, agent)).collect()
}

/// The canned responses most often used on the resolved tickets numbered `similar`, filled for `ticket`.
pub(crate) async fn used_on_similar(
    desk: &Desk,
    ticket: &Ticket,
    agent: &User,
    similar: &[i64],
) -> AppResult<Vec<FilledCanned>> {
    let used = desk.db.canned_used_on(similar, agent.id, 3).await?;
    used.into_iter()
        .map(|u| Ok(FilledCanned { used_on: Some(u.tickets), ..FilledCanned::of(desk, u.canned, ticket, agent)? }))
        .collect()
}

/// Records that `comment` was written by `user` from canned response `canned` (checked with [`usable`] before
/// the comment was posted); a failure only loses a count, so it is logged.
pub(crate) async fn record_use(desk: &Desk, user: &User, canned: i64, ticket: TicketId, comment: i64) {
    if let Err(e) = desk.db.record_canned_use(canned, ticket, comment, user.id).await {
        tracing::warn!(error = %e, canned, "could not record a canned response's use");
    }
}
