//! Tickets: filing, listing, reading and working them, their conversation and history.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use smart_ticket_domain::{Priority, Status};
use utoipa::{IntoParams, ToSchema};

use crate::db::{AssigneeFilter, TicketFilter};
use crate::desk::attachments::{AttachmentView, ticket_files, visible};
use crate::desk::tickets::{
    SimilarTicket, TicketChange, change_ticket, file_ticket, find_tickets, mark_suggestion, merge_into, post_comment,
    similar_open_tickets, suggest, visible_ticket, workable_ticket,
};
use crate::desk::views::{Audience, TicketView, events_for, sees_internal_notes};
use crate::desk::{AppError, AppResult, AuthUser, Desk, page_limit};
use crate::front::extract::{AppJson, AppPath, AppQuery};
use crate::model::{Comment, Ticket, TicketEvent, TicketId, User, UserId};

pub fn router() -> Router<Desk> {
    Router::new()
        .route("/api/tickets", get(list_tickets).post(create_ticket))
        .route("/api/tickets/{id}", get(get_ticket).patch(update_ticket))
        .route("/api/tickets/{id}/comments", get(list_comments).post(create_comment))
        .route("/api/tickets/{id}/events", get(list_events))
        .route("/api/tickets/{id}/suggestions", get(suggestions))
        .route("/api/tickets/{id}/summary", get(summary))
        .route("/api/tickets/similar", axum::routing::post(similar))
        .route("/api/tickets/{id}/merge", axum::routing::post(merge))
        .route("/api/tickets/{id}/suggestions/{number}/feedback", axum::routing::post(suggestion_feedback))
}

/// A ticket to file (or a draft to check for duplicates).
#[derive(Deserialize, ToSchema)]
pub(crate) struct NewTicket {
    /// 3 to 200 characters once trimmed.
    #[schema(min_length = 3, max_length = 200)]
    title: String,
    /// 1 to 20,000 characters once trimmed.
    #[schema(min_length = 1, max_length = 20000)]
    description: String,
    /// The knowledge-base articles the requester was shown before filing (`POST /api/articles/suggest`).
    #[serde(default)]
    shown_articles: Vec<i64>,
}

/// One ticket, as the caller is shown it: the whole ticket for those who work it, the public side for its
/// requester.
#[derive(Serialize, ToSchema)]
pub(crate) struct TicketBody {
    ticket: TicketView,
}

impl TicketBody {
    pub(crate) fn of(viewer: &User, ticket: Ticket) -> Self {
        Self { ticket: TicketView::of(viewer, ticket) }
    }
}

/// Files a ticket; the workflow then triages, routes and notifies in the background.
#[utoipa::path(post, path = "/api/tickets", tag = "tickets", request_body = NewTicket,
    responses((status = 201, description = "Filed", body = TicketBody)))]
#[tracing::instrument(skip_all, fields(user_id = %auth.user.id))]
pub(crate) async fn create_ticket(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppJson(body): AppJson<NewTicket>,
) -> AppResult<(StatusCode, Json<TicketBody>)> {
    let ticket = file_ticket(&desk, &auth, &body.title, &body.description, Vec::new(), &body.shown_articles).await?;
    Ok((StatusCode::CREATED, Json(TicketBody::of(&auth.user, ticket))))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// open, in_progress, resolved or closed.
    status: Option<String>,
    /// low, medium, high or urgent.
    priority: Option<String>,
    /// `me`, `none` or a user id.
    assignee: Option<String>,
    /// Search text: words (FTS syntax: `"a phrase"`, `-word`, `or`) and meaning; at most 500 characters and
    /// 32 words, and a limited number of searches per account per minute (`SEARCH_RATE_PER_MINUTE`).
    #[param(max_length = 500)]
    q: Option<String>,
    /// Page size, 1 to 100 (25).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of tickets, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct TicketPage {
    tickets: Vec<TicketView>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// The tickets the caller may see (users: their own; moderators: assigned to them; admins: all).
#[utoipa::path(get, path = "/api/tickets", tag = "tickets", params(ListQuery),
    responses((status = 200, description = "A page of tickets", body = TicketPage)))]
pub(crate) async fn list_tickets(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppQuery(q): AppQuery<ListQuery>,
) -> AppResult<Json<TicketPage>> {
    let limit = page_limit(q.limit)?;
    let filter = TicketFilter {
        status: q
            .status
            .as_deref()
            .map(str::parse::<Status>)
            .transpose()
            .map_err(|e| AppError::bad_query(e.to_string()))?,
        priority: q
            .priority
            .as_deref()
            .map(str::parse::<Priority>)
            .transpose()
            .map_err(|e| AppError::bad_query(e.to_string()))?,
        assignee: match q.assignee.as_deref() {
            None | Some("") => None,
            Some("me") => Some(AssigneeFilter::Me),
            Some("none") => Some(AssigneeFilter::Nobody),
            Some(other) => Some(AssigneeFilter::User(UserId(
                other.parse().map_err(|_| AppError::bad_query("assignee must be me, none or a user id"))?,
            ))),
        },
        q: q.q.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
        before: match q.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(
                c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| AppError::bad_query("cursor is not valid"))?,
            ),
        },
        ..TicketFilter::default()
    };
    let (tickets, next) = find_tickets(&desk, &auth.user, &filter, limit).await?;
    let tickets: Vec<TicketView> = tickets.into_iter().map(|t| TicketView::of(&auth.user, t)).collect();
    Ok(Json(TicketPage { tickets, next_cursor: next }))
}

/// One ticket (404 when the caller may not see it).
#[utoipa::path(get, path = "/api/tickets/{id}", tag = "tickets", params(("id" = TicketId, Path)),
    responses((status = 200, description = "The ticket", body = TicketBody)))]
pub(crate) async fn get_ticket(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<TicketBody>> {
    let ticket = visible_ticket(&desk, &auth, id).await?;
    let files = ticket_files(&desk, &auth, &ticket).await?;
    Ok(Json(TicketBody { ticket: TicketView::of(&auth.user, ticket).with_attachments(files) }))
}

/// Works a ticket: the assignee or an admin changes status, labels (recorded as corrections of the AI),
/// resolution, deadline, notes; reassigning is for admins.
#[utoipa::path(patch, path = "/api/tickets/{id}", tag = "tickets", params(("id" = TicketId, Path)),
    request_body = TicketChange, responses((status = 200, description = "The changed ticket", body = TicketBody)))]
#[tracing::instrument(skip_all, fields(user_id = %auth.user.id, ticket_id = %id))]
pub(crate) async fn update_ticket(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
    AppJson(body): AppJson<TicketChange>,
) -> AppResult<Json<TicketBody>> {
    let ticket = change_ticket(&desk, &auth, id, body).await?;
    Ok(Json(TicketBody::of(&auth.user, ticket)))
}

/// Suggested past resolutions and a drafted reply citing them.
#[derive(Serialize, ToSchema)]
pub(crate) struct SuggestionsBody {
    suggestions: Vec<crate::engine::Suggestion>,
    /// Null when there is nothing to draft from.
    draft: Option<crate::providers::Draft>,
    /// Published knowledge-base articles near the ticket (up to three), with the link to put in a reply.
    articles: Vec<crate::desk::articles::RelevantArticle>,
    /// The canned responses (the caller may use) most often used on the suggested tickets, filled for this one.
    canned_responses: Vec<crate::desk::canned::FilledCanned>,
}

/// Past resolved tickets like this one, how each was resolved, and a drafted reply citing them
/// (by the configured language model, else composed from the resolutions). For the assignee and admins.
#[utoipa::path(get, path = "/api/tickets/{id}/suggestions", tag = "tickets", params(("id" = TicketId, Path)),
    responses((status = 200, description = "Suggestions", body = SuggestionsBody)))]
pub(crate) async fn suggestions(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<SuggestionsBody>> {
    let ticket = workable_ticket(&desk, &auth, id).await?;
    let (suggestions, draft) = suggest(&desk, &auth.user, &ticket).await?;
    let articles = crate::desk::articles::articles_for_ticket(&desk, &ticket).await?;
    let numbers: Vec<i64> = suggestions.iter().map(|s| s.number).collect();
    let canned_responses = crate::desk::canned::used_on_similar(&desk, &ticket, &auth.user, &numbers).await?;
    Ok(Json(SuggestionsBody { suggestions, draft, articles, canned_responses }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SummaryBody {
    /// Null while the conversation is short.
    summary: Option<crate::desk::summaries::TicketSummary>,
}

/// The summary of a long conversation: the problem, what was tried, what is asked now (extractive, or by the
/// `AI_SUGGEST_PROVIDER` model when configured). For the assignee and admins.
#[utoipa::path(get, path = "/api/tickets/{id}/summary", tag = "tickets", params(("id" = TicketId, Path)),
    responses((status = 200, description = "The summary, or null", body = SummaryBody)))]
pub(crate) async fn summary(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<SummaryBody>> {
    Ok(Json(SummaryBody { summary: crate::desk::summaries::ticket_summary(&desk, &auth, id).await? }))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct Feedback {
    helpful: bool,
}

/// A recorded verdict on a suggestion.
#[derive(Serialize, ToSchema)]
pub(crate) struct FeedbackRecord {
    ticket_id: TicketId,
    /// The suggested (resolved) ticket's number.
    number: i64,
    helpful: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct FeedbackBody {
    feedback: FeedbackRecord,
}

/// The assignee or an admin marks a suggested past ticket helpful or not (reported in AI quality).
#[utoipa::path(post, path = "/api/tickets/{id}/suggestions/{number}/feedback", tag = "tickets",
    params(("id" = TicketId, Path), ("number" = i64, Path, description = "The suggested ticket's number")),
    request_body = Feedback, responses((status = 200, description = "Recorded", body = FeedbackBody)))]
pub(crate) async fn suggestion_feedback(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath((id, number)): AppPath<(TicketId, i64)>,
    AppJson(body): AppJson<Feedback>,
) -> AppResult<Json<FeedbackBody>> {
    mark_suggestion(&desk, &auth, id, number, body.helpful).await?;
    Ok(Json(FeedbackBody { feedback: FeedbackRecord { ticket_id: id, number, helpful: body.helpful } }))
}

/// The ticket to merge into.
#[derive(Deserialize, ToSchema)]
pub(crate) struct MergeRequest {
    /// Its number (e.g. the `duplicate_of` that triage flagged).
    into: i64,
}

/// Merges a duplicate into the ticket that carries on (the assignee or an admin, who must also be able to
/// see that one): this ticket is closed with `merged_into` set, both histories record it, the survivor gets
/// an internal note with this ticket's text and requester, and this ticket's requester a reply saying so.
#[utoipa::path(post, path = "/api/tickets/{id}/merge", tag = "tickets", params(("id" = TicketId, Path)),
    request_body = MergeRequest, responses((status = 200, description = "The merged (now closed) ticket", body = TicketBody)))]
pub(crate) async fn merge(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
    AppJson(body): AppJson<MergeRequest>,
) -> AppResult<Json<TicketBody>> {
    let ticket = merge_into(&desk, &auth, id, body.into).await?;
    Ok(Json(TicketBody::of(&auth.user, ticket)))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SimilarBody {
    similar: Vec<SimilarTicket>,
}

/// Likely duplicates, before filing: the caller's visible open tickets most similar to a draft.
#[utoipa::path(post, path = "/api/tickets/similar", tag = "tickets", request_body = NewTicket,
    responses((status = 200, description = "Up to five likely duplicates, most similar first", body = SimilarBody)))]
pub(crate) async fn similar(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppJson(body): AppJson<NewTicket>,
) -> AppResult<Json<SimilarBody>> {
    let similar = similar_open_tickets(&desk, &auth, &body.title, &body.description).await?;
    Ok(Json(SimilarBody { similar }))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct NewComment {
    /// 1 to 20,000 characters once trimmed.
    #[schema(min_length = 1, max_length = 20000)]
    body: String,
    /// An internal note, hidden from the requester (assignee and admins only).
    #[serde(default)]
    internal: bool,
    /// The canned response the text was written from (staff who work the ticket): counted, so similar tickets
    /// propose it.
    #[serde(default)]
    canned_response_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CommentEnvelope {
    comment: CommentWithFiles,
}

/// A comment and the files sent with it.
#[derive(Serialize, ToSchema)]
pub(crate) struct CommentWithFiles {
    #[serde(flatten)]
    comment: Comment,
    attachments: Vec<AttachmentView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CommentsBody {
    comments: Vec<CommentWithFiles>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EventsBody {
    events: Vec<TicketEvent>,
}

/// Adds a reply (or, for those who work the ticket, an internal note).
#[utoipa::path(post, path = "/api/tickets/{id}/comments", tag = "tickets", params(("id" = TicketId, Path)),
    request_body = NewComment, responses((status = 201, description = "Posted", body = CommentEnvelope)))]
pub(crate) async fn create_comment(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
    AppJson(body): AppJson<NewComment>,
) -> AppResult<(StatusCode, Json<CommentEnvelope>)> {
    let comment =
        post_comment(&desk, &auth, id, &body.body, body.internal, Vec::new(), body.canned_response_id).await?;
    Ok((StatusCode::CREATED, Json(CommentEnvelope { comment: CommentWithFiles { comment, attachments: Vec::new() } })))
}

/// The conversation, oldest first (internal notes only for those who work the ticket).
#[utoipa::path(get, path = "/api/tickets/{id}/comments", tag = "tickets", params(("id" = TicketId, Path)),
    responses((status = 200, description = "Comments", body = CommentsBody)))]
pub(crate) async fn list_comments(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<CommentsBody>> {
    let ticket = visible_ticket(&desk, &auth, id).await?;
    let audience = Audience::of(&auth.user, &ticket);
    let comments = desk.db.comments(id, sees_internal_notes(audience)).await?;
    let files = visible(&desk.db.attachments_of(id).await?, audience);
    let comments = comments
        .into_iter()
        .map(|comment| {
            let attachments = files.iter().filter(|a| a.comment_id == Some(comment.id)).cloned().collect();
            CommentWithFiles { comment, attachments }
        })
        .collect();
    Ok(Json(CommentsBody { comments }))
}

/// The ticket's history: every change, who made it (a person, the system or the AI), old and new value. Its
/// requester sees the rows about the request itself (filed, status, assignee, priority, category,
/// resolution, merged).
#[utoipa::path(get, path = "/api/tickets/{id}/events", tag = "tickets", params(("id" = TicketId, Path)),
    responses((status = 200, description = "History, oldest first", body = EventsBody)))]
pub(crate) async fn list_events(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<EventsBody>> {
    let ticket = visible_ticket(&desk, &auth, id).await?;
    let events = events_for(Audience::of(&auth.user, &ticket), desk.db.events(id).await?);
    Ok(Json(EventsBody { events }))
}
