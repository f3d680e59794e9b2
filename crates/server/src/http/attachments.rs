//! Files on tickets and comments over the API: multipart upload, the list, and downloads that never run in
//! the browser (always `Content-Disposition: attachment` unless a raster image is asked for inline,
//! `nosniff`, a sandboxing CSP).

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::desk::attachments::{AttachmentView, download, raster_image, upload, visible};
use crate::desk::tickets::visible_ticket;
use crate::desk::views::Audience;
use crate::desk::{AppError, AppResult, AuthUser, Desk};
use crate::front::extract::{AppPath, AppQuery};
use crate::front::upload::{body_limit, read_multipart};
use crate::model::TicketId;

pub fn router(max_file: usize) -> Router<Desk> {
    Router::new()
        .route(
            "/api/tickets/{id}/attachments",
            post(upload_files).get(list_files).layer(DefaultBodyLimit::max(body_limit(max_file))),
        )
        .route("/api/attachments/{id}", get(download_file))
}

/// The parts of an upload (`multipart/form-data`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct UploadForm {
    /// One or more files (repeat the field), each at most ATTACHMENT_MAX_MB.
    #[schema(value_type = Vec<String>, format = Binary)]
    file: Vec<Vec<u8>>,
    /// Attach to this comment of the ticket (its author or staff; a file of an internal note stays staff-only)
    /// instead of the ticket itself.
    comment_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AttachmentsBody {
    attachments: Vec<AttachmentView>,
}

/// Attaches files to a ticket or one of its comments (its requester and those who work it).
#[utoipa::path(post, path = "/api/tickets/{id}/attachments", tag = "tickets", params(("id" = TicketId, Path)),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "Attached", body = AttachmentsBody),
        (status = 413, description = "A file (or the upload) is over the size limit", body = crate::front::error::ErrorBody)))]
pub(crate) async fn upload_files(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> AppResult<(StatusCode, Json<AttachmentsBody>)> {
    let form = form.map_err(|_| AppError::BadRequest {
        code: "bad_multipart",
        message: "expected a multipart/form-data body with one or more `file` fields".into(),
    })?;
    let max = desk.pipeline.settings.mail.max_attachment_bytes;
    let (fields, files) = read_multipart(form, body_limit(max)).await?;
    let comment = match fields.iter().find(|(k, _)| k == "comment_id") {
        Some((_, v)) => Some(v.trim().parse::<i64>().map_err(|_| AppError::field("comment_id", "not a comment id"))?),
        None => None,
    };
    let attachments = upload(&desk, &auth, id, comment, files).await?;
    Ok((StatusCode::CREATED, Json(AttachmentsBody { attachments })))
}

/// Every file of a ticket and its comments the caller may see (internal notes' files for staff only).
#[utoipa::path(get, path = "/api/tickets/{id}/attachments", tag = "tickets", params(("id" = TicketId, Path)),
    responses((status = 200, description = "The files", body = AttachmentsBody)))]
pub(crate) async fn list_files(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<TicketId>,
) -> AppResult<Json<AttachmentsBody>> {
    let ticket = visible_ticket(&desk, &auth, id).await?;
    let all = desk.db.attachments_of(id).await?;
    Ok(Json(AttachmentsBody { attachments: visible(&all, Audience::of(&auth.user, &ticket)) }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DownloadQuery {
    /// `true`: show a raster image (PNG, JPEG, GIF, WebP) in the page; ignored for every other file.
    inline: Option<bool>,
}

/// A file's contents, for one who may see it (404 otherwise).
#[utoipa::path(get, path = "/api/attachments/{id}", tag = "tickets", params(("id" = uuid::Uuid, Path), DownloadQuery),
    responses((status = 200, description = "The file: raster images as their type, everything else as bytes", content(
        (Vec<u8> = "application/octet-stream"), (Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"),
        (Vec<u8> = "image/gif"), (Vec<u8> = "image/webp")))))]
pub(crate) async fn download_file(
    State(desk): State<Desk>,
    auth: AuthUser,
    AppPath(id): AppPath<uuid::Uuid>,
    AppQuery(q): AppQuery<DownloadQuery>,
) -> AppResult<Response> {
    let (a, data) = download(&desk, &auth, id).await?;
    let image = raster_image(&a.content_type);
    let inline = q.inline.unwrap_or(false) && image.is_some();
    let disposition = format!(
        "{}; filename=\"{}\"; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        a.file_name.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' }).collect::<String>(),
        urlencoding(&a.file_name)
    );
    let headers = [
        (header::CONTENT_TYPE, image.unwrap_or("application/octet-stream").to_owned()),
        (header::CONTENT_DISPOSITION, disposition),
        (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
    ];
    Ok((INERT, headers, data).into_response())
}

/// What answers carrying bytes someone sent us (files, raw mail) add: never sniffed into another type, and
/// nothing in them runs or loads.
pub(crate) const INERT: [(header::HeaderName, &str); 2] =
    [(header::X_CONTENT_TYPE_OPTIONS, "nosniff"), (header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox")];

/// RFC 5987 percent-encoding of a file name.
fn urlencoding(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
