//! Files on tickets and comments, from every channel (the API's multipart upload, the pages' forms, e-mail):
//! safe names, size limits, who may see each (a file of an internal note: staff only; 404 otherwise), and
//! which may show inline (raster images, by their bytes, never by what the sender claimed).

use serde::Serialize;
use utoipa::ToSchema;

use super::error::{AppError, AppResult};
use super::views::{Audience, sees_internal_notes};
use super::{AuthUser, Desk};
use crate::db::{AttachTo, Attachment, NewAttachment};
use crate::model::{Ticket, TicketId};

/// An attachment as a ticket's or comment's JSON lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttachmentView {
    pub id: uuid::Uuid,
    pub file_name: String,
    pub size: i64,
    pub content_type: String,
    /// The comment it came with; none for a file of the ticket itself.
    pub comment_id: Option<i64>,
    /// A raster image (PNG, JPEG, GIF, WebP) that pages show as a thumbnail.
    pub image: bool,
}

impl AttachmentView {
    pub fn of(a: &Attachment) -> Self {
        AttachmentView {
            id: a.id,
            file_name: a.file_name.clone(),
            size: a.size,
            content_type: a.content_type.clone(),
            comment_id: a.comment_id,
            image: raster_image(&a.content_type).is_some(),
        }
    }
}

/// A file as it arrived: name and type as the sender gave them.
#[derive(Debug, Clone)]
pub struct Upload {
    pub file_name: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// A file name safe to store and to offer for download: the last path segment, no control or quote
/// characters, at most 150 characters; `file` when nothing is left.
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\' | ';') && !smart_ticket_domain::is_bidi_control(*c))
        .take(150)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim().to_owned();
    if cleaned.is_empty() { "file".into() } else { cleaned }
}

/// The type stored for a file: a raster image's own type when its bytes are one; otherwise the declared type
/// when it reads as `type/subtype`, else `application/octet-stream`. (Only raster images are ever served as
/// their type; everything else downloads as bytes.)
pub fn content_type_of(declared: &str, data: &[u8]) -> String {
    if let Some(image) = sniff_image(data) {
        return image.to_owned();
    }
    let declared = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let valid = declared.split_once('/').is_some_and(|(t, s)| {
        let ok = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        ok(t) && ok(s)
    });
    // A file claiming to be an image that is not one keeps no image type.
    if valid && !declared.starts_with("image/") { declared } else { "application/octet-stream".into() }
}

fn sniff_image(data: &[u8]) -> Option<&'static str> {
    match data {
        [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, ..] => Some("image/png"),
        [0xff, 0xd8, 0xff, ..] => Some("image/jpeg"),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some("image/gif"),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some("image/webp"),
        _ => None,
    }
}

/// The stored type when it is a raster image that may show inline.
pub fn raster_image(content_type: &str) -> Option<&str> {
    ["image/png", "image/jpeg", "image/gif", "image/webp"].into_iter().find(|t| *t == content_type)
}

/// Checks each file against the size limit and makes it safe to store.
pub fn prepare(uploads: Vec<Upload>, max_bytes: usize) -> AppResult<Vec<NewAttachment>> {
    uploads
        .into_iter()
        .map(|u| {
            let name = safe_file_name(&u.file_name);
            if u.data.len() > max_bytes {
                return Err(AppError::FileTooLarge(format!(
                    "{name} is {}; files may be at most {}",
                    crate::mail::inbound::megabytes(u.data.len()),
                    crate::mail::inbound::megabytes(max_bytes)
                )));
            }
            let content_type = content_type_of(&u.content_type, &u.data);
            Ok(NewAttachment::new(name, content_type, u.data, None))
        })
        .collect()
}

/// What `audience` is shown of a ticket's files: a file of an internal note only to staff.
pub fn visible(all: &[Attachment], audience: Audience) -> Vec<AttachmentView> {
    all.iter().filter(|a| !a.internal || sees_internal_notes(audience)).map(AttachmentView::of).collect()
}

/// The ticket's own files (not its comments'), as `auth` may see them.
pub(crate) async fn ticket_files(desk: &Desk, auth: &AuthUser, ticket: &Ticket) -> AppResult<Vec<AttachmentView>> {
    let all = desk.db.attachments_of(ticket.id).await?;
    let audience = Audience::of(&auth.user, ticket);
    Ok(visible(&all, audience).into_iter().filter(|a| a.comment_id.is_none()).collect())
}

/// Attaches files to a visible ticket (its requester and those who work it), or to one of its comments
/// (by the comment's author, or staff); a file of an internal note stays staff-only.
pub(crate) async fn upload(
    desk: &Desk,
    auth: &AuthUser,
    ticket: TicketId,
    comment: Option<i64>,
    uploads: Vec<Upload>,
) -> AppResult<Vec<AttachmentView>> {
    let t = super::tickets::visible_ticket(desk, auth, ticket).await?;
    if uploads.is_empty() {
        return Err(AppError::field("file", "choose at least one file"));
    }
    let internal = match comment {
        None => false,
        Some(id) => {
            let c = desk.db.comment(id).await?.filter(|c| c.ticket_id == ticket).ok_or(AppError::NotFound)?;
            if c.internal && !t.workable_by(&auth.user) {
                return Err(AppError::NotFound);
            }
            if c.author_id != auth.user.id && !t.workable_by(&auth.user) {
                return Err(AppError::Forbidden);
            }
            c.internal
        }
    };
    let files = prepare(uploads, desk.pipeline.settings.mail.max_attachment_bytes)?;
    let to = AttachTo { ticket, comment, internal, by: Some(auth.user.id) };
    Ok(desk.db.attach(to, &files).await?.iter().map(AttachmentView::of).collect())
}

/// A file and its contents, for one who may see it (404 otherwise: its existence is not revealed).
pub(crate) async fn download(desk: &Desk, auth: &AuthUser, id: uuid::Uuid) -> AppResult<(Attachment, Vec<u8>)> {
    let a = desk.db.attachment(id).await?.ok_or(AppError::NotFound)?;
    let t = super::tickets::visible_ticket(desk, auth, a.ticket_id).await?;
    if a.internal && !sees_internal_notes(Audience::of(&auth.user, &t)) {
        return Err(AppError::NotFound);
    }
    let data = desk.db.blob(&a.sha256).await?.ok_or(AppError::NotFound)?;
    Ok((a, data))
}

/// How much of a text file the AI reads.
pub const TEXT_HEAD_BYTES: i64 = 4096;

/// Whether the AI reads a file: logs, text, JSON, CSV.
pub fn readable_text(a: &Attachment) -> bool {
    let name = a.file_name.to_ascii_lowercase();
    a.content_type.starts_with("text/")
        || matches!(a.content_type.as_str(), "application/json" | "application/csv" | "application/xml")
        || [".log", ".txt", ".json", ".csv"].iter().any(|x| name.ends_with(x))
}

/// The lines of a text file that tell what went wrong: errors, codes and versions (at most 12, each cut to
/// 200 characters); its first lines when none stands out.
pub fn telling_lines(text: &str) -> Vec<String> {
    const WORDS: [&str; 12] = [
        "error",
        "exception",
        "fail",
        "fatal",
        "panic",
        "traceback",
        "warn",
        "denied",
        "refused",
        "timeout",
        "code",
        "version",
    ];
    let cut = |l: &str| l.trim().chars().take(200).collect::<String>();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let telling: Vec<String> = lines
        .iter()
        .filter(|l| {
            let lower = l.to_lowercase();
            WORDS.iter().any(|w| lower.contains(w)) || has_version(&lower)
        })
        .take(12)
        .map(|l| cut(l))
        .collect();
    if telling.is_empty() { lines.iter().take(5).map(|l| cut(l)).collect() } else { telling }
}

/// `4.2.1`, `v12.3`: digits, a dot, digits.
fn has_version(line: &str) -> bool {
    let b = line.as_bytes();
    (1..b.len().saturating_sub(1)).any(|i| b[i] == b'.' && b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit())
}

/// `description` with what the ticket's own text files say (their telling lines), for the AI to read.
pub async fn with_file_text(db: &crate::db::Db, ticket: TicketId, description: &str) -> anyhow::Result<String> {
    let mut out = description.to_owned();
    for a in db.attachments_of(ticket).await?.iter().filter(|a| a.comment_id.is_none() && readable_text(a)) {
        let Some(head) = db.blob_head(&a.sha256, TEXT_HEAD_BYTES).await? else { continue };
        let lines = telling_lines(&String::from_utf8_lossy(&head));
        if !lines.is_empty() {
            out.push_str(&format!("\n\nFrom the attached {}:\n{}", a.file_name, lines.join("\n")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ai_reads_the_lines_of_a_log_that_tell_what_went_wrong() {
        let log = "2026-12-01 INFO starting app v4.2.1\n2026-12-01 DEBUG cache warm\n\
                   2026-12-01 ERROR E-7781 could not open database: permission denied\n";
        assert_eq!(
            telling_lines(log),
            [
                "2026-12-01 INFO starting app v4.2.1",
                "2026-12-01 ERROR E-7781 could not open database: permission denied"
            ]
        );
        assert_eq!(telling_lines("just\nsome\nwords"), ["just", "some", "words"]);
    }

    #[test]
    fn names_are_made_safe_and_types_come_from_the_bytes_for_images() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("C:\\Users\\a\\report \"final\".pdf"), "report final.pdf");
        assert_eq!(safe_file_name("\u{202e}gpj.exe"), "gpj.exe");
        assert_eq!(safe_file_name("..."), "file");
        assert_eq!(content_type_of("text/html", b"\x89PNG\r\n\x1a\n...."), "image/png");
        assert_eq!(content_type_of("image/png", b"<svg onload=alert(1)>"), "application/octet-stream");
        assert_eq!(content_type_of("image/svg+xml", b"<svg/>"), "application/octet-stream");
        assert_eq!(content_type_of("text/plain; charset=utf-8", b"log"), "text/plain");
        assert_eq!(content_type_of("not a type", b"x"), "application/octet-stream");
        assert!(raster_image("image/webp").is_some() && raster_image("image/svg+xml").is_none());
    }
}
