//! Macros: named bundles of actions (status, priority, category, skills, assignee, a reply from a canned
//! response, an internal note, tags) that staff apply to a ticket in one step, all or nothing, after a preview
//! of what will change. Admins keep them; history names the macro for every change it made.

use serde::{Deserialize, Serialize};
use smart_ticket_domain::access::{may_manage_workflow, may_reassign, may_use_workflow};
use smart_ticket_domain::workflow::{Action, ActionSpec, Actions, WorkflowName};
use smart_ticket_domain::{CategoryName, CommentBody, Status};
use utoipa::ToSchema;

use super::error::{AppError, AppResult};
use super::tickets::workable_ticket;
use super::{AuthUser, Desk};
use crate::db::{FieldChange, Macro, TicketPatch, TicketWork, Via, WorkComment};
use crate::model::{Actor, Ticket, TicketId};

/// A macro as written: its name, what it is for, and its actions in order.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MacroInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub actions: Vec<ActionSpec>,
}

/// The macros staff may apply, by name.
pub(crate) async fn list(desk: &Desk, auth: &AuthUser) -> AppResult<Vec<Macro>> {
    if !may_use_workflow(auth.user.role) {
        return Err(AppError::Forbidden);
    }
    Ok(desk.db.macros().await?)
}

pub(crate) async fn get(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<Macro> {
    if !may_use_workflow(auth.user.role) {
        return Err(AppError::Forbidden);
    }
    desk.db.macro_by_id(id).await?.ok_or(AppError::NotFound)
}

fn require_admin(auth: &AuthUser) -> AppResult<()> {
    if may_manage_workflow(auth.user.role) { Ok(()) } else { Err(AppError::Forbidden) }
}

/// The input's name and description, its actions parsed, and what they name checked to exist: a shared
/// canned response to reply with, a category of the taxonomy, staff to assign.
async fn checked(desk: &Desk, input: &MacroInput) -> AppResult<(WorkflowName, String, Actions)> {
    let mut errors = std::collections::BTreeMap::new();
    let name = WorkflowName::parse(&input.name).map_err(|e| errors.insert(e.field, e.message.into_owned())).ok();
    let description = smart_ticket_domain::bounded_text("description", &input.description, 0, 1000)
        .map_err(|e| errors.insert(e.field, e.message.into_owned()))
        .ok();
    let actions = Actions::parse(&input.actions).map_err(|e| errors.insert(e.field, e.message.into_owned())).ok();
    if let Some(actions) = &actions {
        for (i, a) in actions.iter().enumerate() {
            if let Some(why) = missing_reference(desk, a).await? {
                errors.insert("actions", format!("action {}: {why}", i + 1));
            }
        }
    }
    match (name, description, actions) {
        (Some(n), Some(d), Some(a)) if errors.is_empty() => Ok((n, d, a)),
        _ => Err(AppError::Validation(errors)),
    }
}

/// Why action `a` names something that is not there (or may not be used by a macro), if it does.
pub(crate) async fn missing_reference(desk: &Desk, a: &Action) -> AppResult<Option<String>> {
    Ok(match a {
        Action::Reply { canned_response_id } => match desk.db.canned_response(*canned_response_id).await? {
            Some(c) if c.owner_id.is_none() => None,
            Some(_) => Some("a macro replies with shared canned responses only".into()),
            None => Some(format!("there is no canned response {canned_response_id}")),
        },
        Action::SetCategory(Some(c)) if !desk.db.category_exists(c).await? => {
            Some(format!("unknown category {:?}: see GET /api/taxonomy", c.as_str()))
        }
        Action::CallWebhook(id) if desk.db.webhook(*id).await?.is_none() => Some(format!("there is no webhook {id}")),
        Action::SetAssignee(Some(id)) => match desk.db.user_by_id(*id).await? {
            Some(u) if u.role.is_staff() => None,
            _ => Some("assignee must be the id of a moderator or admin".into()),
        },
        _ => None,
    })
}

pub(crate) async fn create(desk: &Desk, auth: &AuthUser, input: MacroInput) -> AppResult<Macro> {
    require_admin(auth)?;
    let (name, description, _) = checked(desk, &input).await?;
    Ok(desk.db.insert_macro(&name, &description, &input.actions, auth.user.id).await?)
}

pub(crate) async fn update(desk: &Desk, auth: &AuthUser, id: i64, input: MacroInput) -> AppResult<Macro> {
    require_admin(auth)?;
    let (name, description, _) = checked(desk, &input).await?;
    Ok(desk.db.update_macro(id, &name, &description, &input.actions).await?)
}

pub(crate) async fn delete(desk: &Desk, auth: &AuthUser, id: i64) -> AppResult<()> {
    require_admin(auth)?;
    if desk.db.delete_macro(id).await? { Ok(()) } else { Err(AppError::NotFound) }
}

/// A reply or note a macro would add.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct PlannedComment {
    pub internal: bool,
    pub body: String,
}

/// What applying a macro would do to a ticket: each field it changes (old and new value) and the messages it
/// adds. Applying it does exactly this, unless the ticket changed in between.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct MacroPreview {
    pub macro_id: i64,
    pub name: String,
    #[schema(value_type = Vec<Object>)]
    pub changes: Vec<FieldChange>,
    pub comments: Vec<PlannedComment>,
}

/// Macro `m`'s actions as one piece of work on `ticket` by `auth`: replies are filled for the ticket; a
/// reassignment needs an admin, a category must still exist.
async fn work_of(desk: &Desk, auth: &AuthUser, ticket: &Ticket, m: &Macro) -> AppResult<TicketWork> {
    let actions = Actions::parse(&m.actions)?;
    let mut work =
        TicketWork { via: Some(Via { kind: "macro", id: m.id, name: m.name.clone() }), ..Default::default() };
    for a in actions.iter() {
        if let Some(why) = missing_reference(desk, a).await? {
            return Err(AppError::Unprocessable(format!("macro {:?} cannot be applied: {why}", m.name)));
        }
        add_action(desk, auth, ticket, &mut work, a).await?;
    }
    Ok(work)
}

/// Adds one action to `work` (later actions on the same field win).
async fn add_action(desk: &Desk, auth: &AuthUser, ticket: &Ticket, work: &mut TicketWork, a: &Action) -> AppResult<()> {
    if matches!(a, Action::SetAssignee(_)) && !may_reassign(auth.user.role) {
        return Err(AppError::Forbidden);
    }
    if patch_action(work, a)? {
        return Ok(());
    }
    match a {
        Action::Reply { canned_response_id } => {
            let canned = super::canned::usable(desk, &auth.user, *canned_response_id).await?;
            let text = super::canned::fill(desk, &super::canned::template_of(&canned)?, ticket, &auth.user);
            let body = CommentBody::parse(&text)?;
            work.comments.push(WorkComment { body, internal: false, canned_id: Some(canned.id) });
            Ok(())
        }
        _ => Err(AppError::Unprocessable("only a rule sends mail, escalates or calls a webhook".into())),
    }
}

/// Adds action `a` to `work` when it needs nothing but itself (fields, tags, a note); whether it did. Macros
/// and rules share it.
pub(crate) fn patch_action(work: &mut TicketWork, a: &Action) -> Result<bool, smart_ticket_domain::ParseError> {
    let patch: &mut TicketPatch = &mut work.patch;
    match a {
        Action::SetStatus { status, resolution } => {
            patch.status = Some(*status);
            if *status == Status::Resolved && resolution.is_some() {
                patch.resolution = resolution.clone();
            }
        }
        Action::SetPriority(p) => patch.priority = Some(*p),
        Action::SetCategory(c) => patch.category = Some(c.as_ref().map(|c: &CategoryName| c.as_str().to_owned())),
        Action::SetSkills(s) => patch.skills = Some(s.clone()),
        Action::SetAssignee(who) => patch.assigned_to = Some(*who),
        Action::Note(body) => work.comments.push(WorkComment { body: body.clone(), internal: true, canned_id: None }),
        Action::AddTags(t) => work.add_tags = work.add_tags.and(t)?,
        Action::RemoveTags(t) => work.remove_tags = work.remove_tags.and(t)?,
        Action::Reply { .. } | Action::SendEmail { .. } | Action::Escalate | Action::CallWebhook(_) => {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The ticket (which the caller works) and the macro.
async fn ticket_and_macro(desk: &Desk, auth: &AuthUser, id: TicketId, macro_id: i64) -> AppResult<(Ticket, Macro)> {
    let ticket = workable_ticket(desk, auth, id).await?;
    let m = get(desk, auth, macro_id).await?;
    Ok((ticket, m))
}

/// What applying macro `macro_id` to ticket `id` would change; a macro that would be refused is refused here.
pub(crate) async fn preview(desk: &Desk, auth: &AuthUser, id: TicketId, macro_id: i64) -> AppResult<MacroPreview> {
    let (ticket, m) = ticket_and_macro(desk, auth, id, macro_id).await?;
    let work = work_of(desk, auth, &ticket, &m).await?;
    let (_, changes) = crate::db::plan_work(&ticket, &work)?;
    let comments = work
        .comments
        .iter()
        .map(|c| PlannedComment { internal: c.internal, body: c.body.as_str().to_owned() })
        .collect();
    Ok(MacroPreview { macro_id: m.id, name: m.name, changes, comments })
}

/// Applies macro `macro_id` to ticket `id`: every action in one transaction, or none when one is refused.
pub(crate) async fn apply(desk: &Desk, auth: &AuthUser, id: TicketId, macro_id: i64) -> AppResult<Ticket> {
    let (ticket, m) = ticket_and_macro(desk, auth, id, macro_id).await?;
    let work = work_of(desk, auth, &ticket, &m).await?;
    let ticket = desk.db.work_ticket(id, Actor::User(auth.user.id), &work).await?;
    super::tickets::after_change(desk, &work.patch).await;
    tracing::info!(ticket = ticket.number, macro_id = m.id, by = %auth.user.id, "macro applied");
    Ok(ticket)
}
