//! Tickets by e-mail: a received message is stored as it came, then (as a durable job) becomes a new ticket,
//! or a reply on the ticket it threads to, or is ignored (auto-replies and bounces are never answered), or is
//! refused with a reason an admin can read.
//!
//! Threading: a message joins ticket N when its `In-Reply-To`/`References` name a Message-ID we sent or
//! received for N, or when its subject carries `[#N]` **and** it comes from N's requester; and only when its
//! sender is N's requester or someone who may work N. Anything else is a new ticket.

use anyhow::Context as _;
use mail_parser::{Message, MessageParser};
use smart_ticket_domain::{CommentBody, Email, InboundState, Status, TicketDescription, TicketTitle};

use crate::db::{Db, InboundMessage, MailOrigin, NewInbound, StoreError, TicketPatch};
use crate::model::{Actor, Ticket, User};

/// Messages one sender may send in an hour before the rest are set aside (stops mail loops; an admin can
/// retry them from the list of refused mail).
pub const SENDER_LIMIT_PER_HOUR: i64 = 30;

/// Where messages piped to `smart-ticket mail-in` are recorded as coming from.
pub const MAIL_IN: &str = "mail-in";

/// What a message says, as ingest needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// Without the angle brackets.
    pub message_id: Option<String>,
    pub from: Email,
    pub subject: String,
    /// The text (HTML-only mail turned into text), line breaks as `\n`.
    pub text: String,
    /// `In-Reply-To` then `References`, nearest first.
    pub references: Vec<String>,
    /// Why it is an automatic message (an auto-reply, a bounce, bulk mail), if it is one.
    pub automatic: Option<&'static str>,
    /// For a bounce: the Message-ID of the mail that could not be delivered, when the report includes it.
    pub bounced: Option<String>,
    /// The files it carries (inline images of its HTML included, with their `cid:`).
    pub files: Vec<MailFile>,
}

/// A file of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct MailFile {
    pub file_name: String,
    pub content_type: String,
    pub data: Vec<u8>,
    pub content_id: Option<String>,
}

/// Why a message cannot be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    /// Not an RFC 5322 message at all (no header block).
    #[error("not an e-mail message")]
    NotAMessage,
    /// A message, but not one a ticket can be made from.
    #[error("{0}")]
    Refused(String),
}

impl Unreadable {
    /// The metrics' short name for why.
    pub fn code(&self) -> &'static str {
        match self {
            Unreadable::NotAMessage => "not_a_message",
            Unreadable::Refused(_) => "unreadable",
        }
    }
}

/// Reads a message's sender, subject, text and threading headers.
pub fn parse(raw: &[u8]) -> Result<Parsed, Unreadable> {
    let msg = MessageParser::default().parse(raw).filter(is_message).ok_or(Unreadable::NotAMessage)?;
    let from = sender_address(&msg).ok_or_else(|| Unreadable::Refused("the message has no sender address".into()))?;
    let from = Email::parse(from).map_err(|e| Unreadable::Refused(format!("the sender address {}", e.message)))?;
    let text = msg.body_text(0).map(|t| clean(&t)).unwrap_or_default();
    Ok(Parsed {
        message_id: msg.message_id().map(str::to_owned),
        from,
        subject: clean(msg.subject().unwrap_or("")).replace('\n', " "),
        text,
        references: references(&msg),
        automatic: automatic(&msg),
        bounced: bounced_message_id(&msg),
        files: files(&msg),
    })
}

/// The message's attachments and inline parts that are not its text.
fn files(msg: &Message<'_>) -> Vec<MailFile> {
    use mail_parser::MimeHeaders;
    msg.attachments()
        .filter(|part| part.message().is_none())
        .enumerate()
        .map(|(i, part)| {
            let content_type = part
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("octet-stream")))
                .unwrap_or_else(|| "application/octet-stream".into());
            let file_name =
                part.attachment_name().map(str::to_owned).unwrap_or_else(|| format!("attachment-{}", i + 1));
            MailFile {
                file_name,
                content_type,
                data: part.contents().to_vec(),
                content_id: part.content_id().map(|c| c.trim_matches(['<', '>']).to_owned()),
            }
        })
        .collect()
}

/// The message's files that fit the limit, ready to store, and a line per file that did not.
fn keep_files(p: &mut Parsed, max_bytes: usize) -> (Vec<crate::db::NewAttachment>, Vec<String>) {
    let (mut kept, mut refused) = (Vec::new(), Vec::new());
    // Moved out, not copied: a large file is held once.
    for f in std::mem::take(&mut p.files) {
        let name = crate::desk::attachments::safe_file_name(&f.file_name);
        if f.data.len() > max_bytes {
            refused.push(format!("{name} ({}, over the limit of {})", megabytes(f.data.len()), megabytes(max_bytes)));
            continue;
        }
        let content_type = crate::desk::attachments::content_type_of(&f.content_type, &f.data);
        kept.push(crate::db::NewAttachment::new(name, content_type, f.data, f.content_id));
    }
    (kept, refused)
}

/// Tells the sender which of their files were not kept (the rest of their message was).
async fn note_refused_files(db: &Db, inbound: i64, p: &Parsed, refused: &[String]) -> anyhow::Result<()> {
    if refused.is_empty() {
        return Ok(());
    }
    let ctx = minijinja::context! { subject => p.subject, files => refused };
    let note = super::render(
        "files_refused",
        format!("files-refused:{inbound}"),
        p.from.as_str(),
        format!("Files not received: {}", if p.subject.is_empty() { "your message" } else { p.subject.as_str() }),
        ctx,
    )?;
    super::queue(db, &note).await
}

/// The Message-ID of the mail a delivery report is about: from its attached original (`message/rfc822`) or
/// the original's headers (`text/rfc822-headers`).
fn bounced_message_id(msg: &Message<'_>) -> Option<String> {
    use mail_parser::MimeHeaders;
    msg.parts.iter().skip(1).find_map(|part| {
        if let Some(inner) = part.message() {
            return inner.message_id().map(str::to_owned);
        }
        let headers_only = part.content_type().is_some_and(|c| {
            c.ctype().eq_ignore_ascii_case("text")
                && c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
        });
        let inner = headers_only.then(|| MessageParser::default().parse_headers(part.contents())).flatten()?;
        inner.message_id().map(str::to_owned)
    })
}

/// Whether the input reads as an e-mail message at all: it has one of the headers every mail carries.
fn is_message(msg: &Message<'_>) -> bool {
    ["From", "Sender", "To", "Subject", "Date", "Message-ID", "Received", "Return-Path"]
        .iter()
        .any(|h| msg.header_raw(*h).is_some())
}

/// `In-Reply-To`'s ids, then `References`' from the newest.
fn references(msg: &Message<'_>) -> Vec<String> {
    let list = |v: &mail_parser::HeaderValue<'_>| -> Vec<String> {
        v.as_text_list().map(|l| l.iter().map(|s| s.to_string()).collect()).unwrap_or_default()
    };
    let mut ids = list(msg.in_reply_to());
    ids.extend(list(msg.references()).into_iter().rev());
    ids.dedup();
    ids
}

/// Why a message is automatic — and must neither file a ticket nor be answered: `Auto-Submitted` other than
/// `no`, `Precedence: bulk|junk|list`, `X-Autoreply`/`X-Autorespond`, an empty return path (`<>`, as bounces
/// have), or a delivery status report.
fn automatic(msg: &Message<'_>) -> Option<&'static str> {
    let raw = |name: &str| msg.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    if raw("Auto-Submitted").is_some_and(|v| !v.is_empty() && v != "no") {
        return Some("an automatic message (Auto-Submitted)");
    }
    if raw("Precedence").is_some_and(|v| matches!(v.as_str(), "bulk" | "junk" | "list")) {
        return Some("bulk or list mail (Precedence)");
    }
    if raw("X-Autoreply").is_some() || raw("X-Autorespond").is_some() {
        return Some("an auto-reply");
    }
    if raw("Return-Path").is_some_and(|v| v == "<>") {
        return Some("a bounce (empty return path)");
    }
    if raw("Content-Type").is_some_and(|v| v.contains("multipart/report") && v.contains("delivery-status")) {
        return Some("a delivery status report (bounce)");
    }
    None
}

/// Text as tickets store it: `\r\n` as `\n`, no control characters but tabs and line breaks, no
/// bidirectional overrides (which the ticket's text fields refuse), trimmed.
fn clean(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .filter(|c| matches!(c, '\n' | '\t') || !(c.is_control() || smart_ticket_domain::is_bidi_control(*c)))
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The new part of a reply: the text above the quoted history (`> ` lines, "On … wrote:", Outlook's
/// "-----Original Message-----" or "From: … Sent: …" block) and above the signature (`-- `).
pub fn reply_text(text: &str) -> String {
    let mut kept = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
        let wrote = (t.starts_with("On ") || t.starts_with("Am ") || t.starts_with("Le ") || t.starts_with("El "))
            && (t.ends_with("wrote:") || t.ends_with("schrieb:") || t.ends_with("écrit :") || t.ends_with("escribió:"))
            || (t.starts_with("On ") && next.ends_with("wrote:"));
        let outlook = t.starts_with("-----Original Message-----")
            || (t.starts_with("From:")
                && lines.iter().skip(i + 1).take(4).any(|l| l.trim_start().starts_with("Sent:")));
        if line.trim_end() == "--" || wrote || outlook {
            break;
        }
        if !t.starts_with('>') {
            kept.push(*line);
        }
    }
    kept.join("\n").trim().to_owned()
}

/// The ticket number of a subject's tag (`[#42]`), if it has one.
pub fn tagged_number(subject: &str) -> Option<i64> {
    let start = subject.find("[#")? + 2;
    let end = subject[start..].find(']')? + start;
    subject[start..end].parse().ok().filter(|n| *n > 0)
}

/// The address of a message's (first) sender, as it gives it.
pub fn sender_address<'a>(msg: &'a Message<'_>) -> Option<&'a str> {
    msg.from().and_then(|a| a.first()).and_then(|a| a.address())
}

/// A message's Message-ID and sender address, from its header alone (as the store records them).
pub fn envelope(raw: &[u8]) -> (Option<String>, Option<String>) {
    let Some(msg) = MessageParser::default().parse_headers(raw) else { return (None, None) };
    (msg.message_id().map(str::to_owned), sender_address(&msg).map(str::to_owned))
}

/// The header block of a message (everything before the first empty line).
pub fn header_of(raw: &[u8]) -> &[u8] {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let end = end.or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| i + 2));
    &raw[..end.unwrap_or(raw.len())]
}

/// Stores a message piped in (`smart-ticket mail-in`) with the job that ingests it; `size` is the whole
/// message's when `raw` is only its start (a message over the limit: its header is kept). `Ok(false)`: seen
/// before.
pub async fn receive(db: &Db, raw: &[u8], size: usize, max_bytes: usize) -> Result<bool, ReceiveError> {
    let oversize = (size > max_bytes).then_some(size as i64);
    let raw = if oversize.is_some() { header_of(raw) } else { raw };
    let parsed = MessageParser::default().parse_headers(raw).filter(is_message);
    let Some(msg) = parsed else { return Err(ReceiveError::NotAMessage) };
    let m = NewInbound {
        source: MAIL_IN,
        uid_validity: None,
        uid: None,
        message_id: msg.message_id(),
        sender: sender_address(&msg),
        raw,
        oversize,
    };
    Ok(db.store_inbound(&m).await.map_err(ReceiveError::Storage)?.is_some())
}

/// Why a piped message was not stored.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("the input is not an e-mail message")]
    NotAMessage,
    #[error("storing the message failed: {0}")]
    Storage(StoreError),
}

/// Turns stored message `id` into a ticket or a reply (or records why not). Safe to run again: a message
/// that was settled is left alone, and a ticket or comment is written in the same transaction that marks
/// its message ingested.
pub async fn ingest(db: &Db, id: i64, limits: &Limits) -> anyhow::Result<()> {
    let Some(stored) = db.inbound(id).await? else { return Ok(()) };
    if stored.state != InboundState::Stored {
        return Ok(());
    }
    if let Some(size) = stored.oversize {
        return refuse_oversize(db, &stored, size, limits.max_message_bytes).await;
    }
    let mut parsed = match parse(&stored.raw) {
        Ok(p) => p,
        Err(e) => {
            crate::metrics::mail_ingested("rejected", e.code());
            return Ok(db.set_inbound_outcome(id, InboundState::Rejected, &e.to_string()).await?);
        }
    };
    // What is needed of the raw message is in `parsed` now: it is not held twice while the ticket is written.
    let received_at = stored.received_at;
    drop(stored);
    if let Some(why) = parsed.automatic {
        if let Some(original) = &parsed.bounced
            && let Some(ticket) = db.thread_ticket(std::slice::from_ref(original)).await?
        {
            // Staff see on the ticket that its mail did not reach the customer.
            db.note_undeliverable(ticket, original).await?;
        }
        tracing::info!(inbound_id = id, why, "automatic mail ignored");
        crate::metrics::mail_ingested("ignored", if parsed.bounced.is_some() { "bounce" } else { "automatic" });
        return Ok(db.set_inbound_outcome(id, InboundState::Ignored, why).await?);
    }
    if db.inbound_from_in_hour_before(parsed.from.as_str(), id, received_at).await? > SENDER_LIMIT_PER_HOUR {
        let why = format!("more than {SENDER_LIMIT_PER_HOUR} messages from this sender in an hour (a mail loop?)");
        tracing::warn!(inbound_id = id, "mail from a sender over the hourly limit set aside");
        crate::metrics::mail_ingested("rejected", "sender_limit");
        return Ok(db.set_inbound_outcome(id, InboundState::Rejected, &why).await?);
    }
    let origin = MailOrigin { inbound: id, message_id: parsed.message_id.clone() };
    let sender = db.user_by_email(&parsed.from).await?;
    let (files, refused) = keep_files(&mut parsed, limits.max_attachment_bytes);
    // Queued first: a crash after the ticket is written still tells the sender (once: the key).
    note_refused_files(db, id, &parsed, &refused).await?;
    match threaded(db, &parsed, sender.as_ref()).await? {
        Some((ticket, author)) => reply(db, &ticket, &author, &parsed, &origin, &files).await,
        None => new_ticket(db, sender, &parsed, &origin, &files).await,
    }
}

/// The ticket this message replies to, and its author, when the threading rule lets it join one.
async fn threaded(db: &Db, p: &Parsed, sender: Option<&User>) -> anyhow::Result<Option<(Ticket, User)>> {
    let Some(sender) = sender else { return Ok(None) };
    let by_header = match db.thread_ticket(&p.references).await? {
        Some(id) => db.ticket(id).await?,
        None => None,
    };
    let by_tag = match (&by_header, tagged_number(&p.subject)) {
        (None, Some(n)) => db.ticket_by_number(n).await?.filter(|t| t.created_by == sender.id),
        _ => None,
    };
    let ticket = by_header.or(by_tag);
    Ok(ticket.filter(|t| t.created_by == sender.id || t.workable_by(sender)).map(|t| (t, sender.clone())))
}

/// A reply by mail: a public comment on `ticket` (its requester's reply reopens it when resolved).
async fn reply(
    db: &Db,
    ticket: &Ticket,
    author: &User,
    p: &Parsed,
    origin: &MailOrigin,
    files: &[crate::db::NewAttachment],
) -> anyhow::Result<()> {
    let text = Some(reply_text(&p.text)).filter(|t| !t.is_empty()).unwrap_or_else(|| p.text.clone());
    let Ok(body) = CommentBody::parse(&truncate(&text, CommentBody::MAX)) else {
        crate::metrics::mail_ingested("rejected", "empty_reply");
        return Ok(db.set_inbound_outcome(origin.inbound, InboundState::Rejected, "the reply has no text").await?);
    };
    // "Solved" to the articles mailed as its answer: resolved as deflected. A "solved, thanks" on a resolved
    // ticket does not reopen it.
    let solved_by = crate::desk::mail_answers::solved_by_reply(db, ticket, author, &text).await?;
    let reopens = ticket.created_by == author.id
        && matches!(ticket.status, Status::Resolved | Status::Closed)
        && !crate::desk::mail_answers::says_solved(&text);
    if reopens {
        // Reopened first (a no-op when repeated), so a crash before the comment loses nothing.
        let patch = TicketPatch { status: Some(Status::Open), ..TicketPatch::default() };
        db.update_ticket(ticket.id, Actor::User(author.id), &patch).await?;
    }
    if let Some(article) = solved_by {
        // Before the comment that settles the message: a retried ingest repeats it, which changes nothing.
        crate::desk::mail_answers::solve(db, ticket, article).await?;
    }
    db.add_comment_from(ticket.id, author, &body, false, Some(origin), files).await?;
    tracing::info!(inbound_id = origin.inbound, ticket = ticket.number, "mail reply added");
    crate::metrics::mail_ingested("reply", "threaded");
    Ok(())
}

/// A new ticket from the message's sender (a new requester account when the address is new: it cannot log
/// in until its owner sets a password).
async fn new_ticket(
    db: &Db,
    sender: Option<User>,
    p: &Parsed,
    origin: &MailOrigin,
    files: &[crate::db::NewAttachment],
) -> anyhow::Result<()> {
    let requester = match sender {
        Some(u) => u,
        None => db.user_or_new_requester(&p.from, &crate::auth::unusable_password_hash().await?, true).await?.0,
    };
    let first_line = p.text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let subject = if p.subject.trim().chars().count() >= TicketTitle::MIN { p.subject.trim() } else { first_line };
    let title = TicketTitle::parse(&truncate(subject, TicketTitle::MAX))
        .or_else(|_| TicketTitle::parse("(no subject)"))
        .context("the fallback title")?;
    let text = if p.text.is_empty() { title.as_str().to_owned() } else { truncate(&p.text, TicketDescription::MAX) };
    let description = TicketDescription::parse(&text).context("a description from the mail")?;
    let ticket = db.create_ticket_from(&requester, &title, &description, Some(origin), files).await?;
    tracing::info!(inbound_id = origin.inbound, ticket = ticket.number, "ticket filed by mail");
    crate::metrics::mail_ingested("ticket", "new");
    Ok(())
}

/// The size limits of mail taken in.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_attachment_bytes: usize,
}

impl Limits {
    pub fn of(settings: &crate::config::MailSettings) -> Self {
        Self { max_message_bytes: settings.max_message_bytes, max_attachment_bytes: settings.max_attachment_bytes }
    }
}

/// A message over the size limit (of which only the header was kept): refused, and its sender told why, unless
/// it is automatic mail (never answered).
async fn refuse_oversize(db: &Db, stored: &InboundMessage, size: i64, max: usize) -> anyhow::Result<()> {
    let reason = format!("the message is {}, over the limit of {}", megabytes(size as usize), megabytes(max));
    let header = MessageParser::default().parse_headers(&stored.raw);
    let sender = header.as_ref().and_then(sender_address).map(str::to_owned);
    let automatic = header.as_ref().and_then(automatic);
    if let (Some(to), None) = (sender.and_then(|a| Email::parse(&a).ok()), automatic) {
        let subject = header.as_ref().and_then(|m| m.subject()).map(clean).unwrap_or_default();
        let ctx = minijinja::context! { subject, reason, max => megabytes(max) };
        let note = super::render(
            "mail_refused",
            format!("mail-refused:{}", stored.id),
            to.as_str(),
            format!("Not received: {}", if subject.is_empty() { "your message" } else { subject.as_str() }),
            ctx,
        )?;
        // Queued before the message is marked, so a crash in between still sends it (once: the key).
        super::queue(db, &note).await?;
    }
    tracing::info!(inbound_id = stored.id, size, "mail over the size limit refused");
    crate::metrics::mail_ingested("rejected", "oversize");
    Ok(db.set_inbound_outcome(stored.id, InboundState::Rejected, &reason).await?)
}

/// `12.5 MB`.
pub fn megabytes(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / f64::from(1u32 << 20))
}

/// The first `max` characters of `text`.
fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
