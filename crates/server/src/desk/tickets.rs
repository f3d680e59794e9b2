//! Tickets: filing, finding, working, merging them, their conversation, and the suggestions for them.

use serde::{Deserialize, Serialize};
use smart_ticket_domain::{
    CategoryName, CommentBody, Resolution, Skills, Status, TicketDescription, TicketTitle, access,
};
use utoipa::ToSchema;

use super::error::{AppError, AppResult, parse_both};
use super::{AuthUser, Desk, double_option, into_page};
use crate::db::{TicketFilter, TicketPatch};
use crate::model::{Actor, Ticket, TicketId, Ts, User, UserId};

/// The ticket if `auth` may see it ([`access::may_see`]); otherwise 404, so its existence is not revealed.
pub(crate) async fn visible_ticket(desk: &Desk, auth: &AuthUser, id: TicketId) -> AppResult<Ticket> {
    match desk.db.ticket(id).await? {
        Some(t) if t.visible_to(&auth.user) => Ok(t),
        _ => Err(AppError::NotFound),
    }
}

/// The ticket if `auth` may work it ([`access::may_work`]); 404 when they may not even see it, else 403.
pub(crate) async fn workable_ticket(desk: &Desk, auth: &AuthUser, id: TicketId) -> AppResult<Ticket> {
    let ticket = visible_ticket(desk, auth, id).await?;
    if ticket.workable_by(&auth.user) { Ok(ticket) } else { Err(AppError::Forbidden) }
}

/// Files a ticket for `auth` and wakes the pipeline that triages it.
pub(crate) async fn file_ticket(
    desk: &Desk,
    auth: &AuthUser,
    title: &str,
    description: &str,
    files: Vec<super::attachments::Upload>,
    shown_articles: &[i64],
) -> AppResult<Ticket> {
    let (title, description) = parse_both(TicketTitle::parse(title), TicketDescription::parse(description))?;
    if shown_articles.len() > 20 {
        return Err(AppError::field("shown_articles", "at most 20 articles"));
    }
    let files = super::attachments::prepare(files, desk.pipeline.settings.mail.max_attachment_bytes)?;
    let ticket = desk.db.create_ticket_from(&auth.user, &title, &description, None, &files).await?;
    desk.db.record_shown_articles(ticket.id, shown_articles).await?;
    desk.wake_workers();
    tracing::info!(ticket_id = %ticket.id, number = ticket.number, "ticket filed");
    Ok(ticket)
}

/// The longest search text, in characters, and the most terms it may hold: the work one search costs is bounded.
pub(crate) const SEARCH_MAX_CHARS: usize = 500;
pub(crate) const SEARCH_MAX_TERMS: usize = 32;

/// A 422 for a search text over [`SEARCH_MAX_CHARS`] or [`SEARCH_MAX_TERMS`].
fn check_search_text(q: &str) -> AppResult<()> {
    if q.chars().count() > SEARCH_MAX_CHARS {
        return Err(AppError::field("q", format!("a search must be at most {SEARCH_MAX_CHARS} characters")));
    }
    if q.split_whitespace().count() > SEARCH_MAX_TERMS {
        return Err(AppError::field("q", format!("a search may hold at most {SEARCH_MAX_TERMS} words")));
    }
    Ok(())
}

/// A page of the tickets `viewer` may see matching `filter`, and the cursor of the next. With a search text,
/// the best `limit` matches of the hybrid search (one page): full-text matches and, when the model runs,
/// tickets whose embedding is near the query's, fused by reciprocal rank; visibility and filters are applied
/// inside both.
pub(crate) async fn find_tickets(
    desk: &Desk,
    viewer: &crate::model::User,
    filter: &TicketFilter,
    limit: i64,
) -> AppResult<(Vec<Ticket>, Option<String>)> {
    let Some(q) = filter.q.as_deref() else {
        let tickets = desk.db.list_tickets(viewer, filter, limit).await?;
        return Ok(into_page(tickets, limit, |t| t.number.to_string()));
    };
    check_search_text(q)?;
    desk.limits.search_by_account.hit(&viewer.id.to_string())?;
    let found = crate::search::hybrid(&desk.db, &desk.pipeline.ai, viewer, filter, q, limit).await?;
    Ok((found, None))
}

/// Fields to change; absent fields stay, `null` clears the clearable ones; any other field is a 422.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TicketChange {
    /// open, in_progress, resolved or closed (resolving needs a resolution).
    pub status: Option<String>,
    /// low, medium, high or urgent.
    pub priority: Option<String>,
    /// A category of the taxonomy, or null.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
    pub skills: Option<Vec<String>>,
    /// Admins only: a moderator's or admin's id, or null.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<UserId>)]
    pub assigned_to: Option<Option<UserId>>,
    pub resolution: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Ts>)]
    pub deadline: Option<Option<Ts>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub helpful_notes: Option<Option<String>>,
}

/// Trims an optional free-text field; blank clears it.
fn optional_text(field: &'static str, v: Option<Option<String>>, max: usize) -> AppResult<Option<Option<String>>> {
    let Some(v) = v else { return Ok(None) };
    let v = v.map(|s| smart_ticket_domain::bounded_text(field, &s, 0, max)).transpose()?.filter(|s| !s.is_empty());
    Ok(Some(v))
}

/// Applies a change by the assignee or an admin (reassigning: admins only); relabels feed retraining.
pub(crate) async fn change_ticket(desk: &Desk, auth: &AuthUser, id: TicketId, body: TicketChange) -> AppResult<Ticket> {
    workable_ticket(desk, auth, id).await?;
    if body.assigned_to.is_some() && !access::may_reassign(auth.user.role) {
        return Err(AppError::Forbidden);
    }
    let patch = TicketPatch {
        status: body.status.as_deref().map(str::parse).transpose()?,
        priority: body.priority.as_deref().map(str::parse).transpose()?,
        category: match body.category {
            Some(Some(c)) if !c.trim().is_empty() => {
                let name = CategoryName::parse(&c)?;
                if !desk.db.category_exists(&name).await? {
                    return Err(AppError::field(
                        "category",
                        format!("unknown category {:?}: see GET /api/taxonomy", name.as_str()),
                    ));
                }
                Some(Some(name.as_str().to_owned()))
            }
            Some(_) => Some(None),
            None => None,
        },
        skills: body.skills.as_deref().map(Skills::parse).transpose()?,
        assigned_to: body.assigned_to,
        resolution: body.resolution.as_deref().map(Resolution::parse).transpose()?,
        deadline: body.deadline,
        helpful_notes: optional_text("helpful_notes", body.helpful_notes, 20_000)?,
    };
    let ticket = desk.db.update_ticket(id, Actor::User(auth.user.id), &patch).await?;
    after_change(desk, &patch).await;
    Ok(ticket)
}

/// After a person's `patch` was stored: relabels and resolutions are new labels to learn from, and may have
/// queued notifications.
pub(crate) async fn after_change(desk: &Desk, patch: &TicketPatch) {
    let relabels = patch.category.is_some() || patch.priority.is_some() || patch.skills.is_some();
    if relabels || patch.status == Some(Status::Resolved) {
        // A failure here only delays retraining (the next label tries again).
        if let Err(e) = desk.pipeline.maybe_retrain().await {
            tracing::warn!(error = %format!("{e:#}"), "could not schedule AI retraining");
        }
    }
    desk.wake_workers();
}

/// The five past resolved tickets most like `ticket` and a drafted reply from them, for `viewer` (who works it).
pub(crate) async fn suggest(
    desk: &Desk,
    viewer: &User,
    ticket: &Ticket,
) -> AppResult<(Vec<crate::engine::Suggestion>, Option<crate::providers::Draft>)> {
    desk.limits.costly_by_account.hit(&viewer.id.to_string())?;
    let s = desk.pipeline.ai.suggest(&desk.db, ticket, 5).await?;
    let local = s.draft.clone().map(|(text, citations)| crate::providers::Draft {
        text,
        citations,
        engine: desk.pipeline.ai.engine().to_owned(),
        provider: None,
        fallback: None,
    });
    let draft = match (&desk.pipeline.suggest_provider, s.items.is_empty()) {
        (Some(provider), false) => {
            // The model sees the past tickets without their requesters' data, and its reply is scrubbed too.
            let names: Vec<&str> = s.names.iter().map(String::as_str).collect();
            let scrub = |text: &str| smart_ticket_ai::pii::scrub(text, &names);
            let grounding: Vec<crate::providers::Grounding> = s
                .items
                .iter()
                .map(|i| crate::providers::Grounding {
                    number: i.number,
                    title: scrub(&i.title),
                    category: None,
                    priority: None,
                    resolution: Some(scrub(&i.resolution)),
                })
                .collect();
            match provider.draft_reply(&ticket.title, &ticket.description, &grounding).await {
                Ok(d) => Some(crate::providers::Draft { text: scrub(&d.text), ..d }),
                Err((f, _)) => {
                    provider.record_fallback();
                    local.map(|d| crate::providers::Draft {
                        fallback: Some(format!("{} failed ({}); drafted locally", provider.name(), f.detail)),
                        ..d
                    })
                }
            }
        }
        _ => local,
    };
    Ok((s.items, draft))
}

/// Records a verdict on suggestion `number` (a resolved ticket) for ticket `id`.
pub(crate) async fn mark_suggestion(
    desk: &Desk,
    auth: &AuthUser,
    id: TicketId,
    number: i64,
    helpful: bool,
) -> AppResult<()> {
    let ticket = workable_ticket(desk, auth, id).await?;
    if number == ticket.number || !desk.db.is_resolved_number(number).await? {
        return Err(AppError::field("number", "must be the number of a resolved ticket suggested here"));
    }
    desk.db.record_suggestion_feedback(id, number, auth.user.id, helpful).await?;
    Ok(())
}

/// Merges ticket `id` into the ticket numbered `into`.
pub(crate) async fn merge_into(desk: &Desk, auth: &AuthUser, id: TicketId, into: i64) -> AppResult<Ticket> {
    workable_ticket(desk, auth, id).await?;
    // Merging must neither reveal nor touch a ticket the caller may not read.
    match desk.db.ticket_by_number(into).await? {
        Some(target) if target.visible_to(&auth.user) => {}
        _ => return Err(AppError::field("into", "must be the number of a ticket you can see")),
    }
    let merged = desk.db.merge_ticket(id, into, &auth.user).await?;
    desk.wake_workers();
    tracing::info!(ticket = merged.number, into, by = %auth.user.id, "ticket merged");
    Ok(merged)
}

/// An open ticket that looks like a duplicate of a draft.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct SimilarTicket {
    pub number: i64,
    pub id: TicketId,
    pub title: String,
    pub status: String,
    /// Cosine of the sentence embeddings (lexical similarity without the model), 0 to 1.
    pub similarity: f32,
}

/// Up to five of the caller's visible open tickets that look like duplicates of this draft.
pub(crate) async fn similar_open_tickets(
    desk: &Desk,
    auth: &AuthUser,
    title: &str,
    description: &str,
) -> AppResult<Vec<SimilarTicket>> {
    let (title, description) = parse_both(TicketTitle::parse(title), TicketDescription::parse(description))?;
    desk.limits.costly_by_account.hit(&auth.user.id.to_string())?;
    let text = crate::model::ticket_text(title.as_str(), description.as_str());
    let query_dense = desk.pipeline.ai.embed(&text).await?;
    let candidates = desk.db.visible_open_tickets(&auth.user, 500).await?;
    let texts: Vec<String> = candidates.iter().map(|c| crate::model::ticket_text(&c.title, &c.description)).collect();
    let (scores, semantic) = crate::search::likeness(
        &text,
        query_dense,
        texts.iter().zip(&candidates).map(|(t, c)| (t.as_str(), c.embedding.as_deref())),
    );
    // Likely duplicates, looser than the flag set after filing: the person decides.
    let threshold = if semantic { 0.7 } else { 0.35 };
    let mut found: Vec<SimilarTicket> = candidates
        .into_iter()
        .zip(scores)
        .filter(|(_, s)| *s >= threshold)
        .map(|(c, similarity)| SimilarTicket {
            number: c.number,
            id: c.id,
            title: c.title,
            status: c.status,
            similarity,
        })
        .collect();
    found.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    found.truncate(5);
    Ok(found)
}

/// Adds a message to a visible ticket; internal notes only by those who work it, and so a reply written from
/// a canned response (`canned`), whose use is counted.
pub(crate) async fn post_comment(
    desk: &Desk,
    auth: &AuthUser,
    id: TicketId,
    body: &str,
    internal: bool,
    files: Vec<super::attachments::Upload>,
    canned: Option<i64>,
) -> AppResult<crate::model::Comment> {
    let ticket = visible_ticket(desk, auth, id).await?;
    if (internal || canned.is_some()) && !ticket.workable_by(&auth.user) {
        return Err(AppError::Forbidden);
    }
    let text = CommentBody::parse(body)?;
    if let Some(c) = canned {
        super::canned::usable(desk, &auth.user, c)
            .await
            .map_err(|_| AppError::field("canned_response_id", "must be a canned response you may use"))?;
    }
    let files = super::attachments::prepare(files, desk.pipeline.settings.mail.max_attachment_bytes)?;
    let comment = desk.db.add_comment_from(id, &auth.user, &text, internal, None, &files).await?;
    if let Some(c) = canned {
        super::canned::record_use(desk, &auth.user, c, id, comment.id).await;
    }
    Ok(comment)
}
