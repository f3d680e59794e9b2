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

use crate::db::{Db, MailOrigin, NewInbound, StoreError, TicketPatch};
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

/// Reads a message's sender, subject, text and threading headers.
pub fn parse(raw: &[u8]) -> Result<Parsed, Unreadable> {
    let msg = MessageParser::default().parse(raw).filter(is_message).ok_or(Unreadable::NotAMessage)?;
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .ok_or_else(|| Unreadable::Refused("the message has no sender address".into()))?;
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
    })
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

/// Stores a message piped in (`smart-ticket mail-in`) with the job that ingests it. `Ok(false)`: seen before.
pub async fn receive(db: &Db, raw: &[u8]) -> Result<bool, ReceiveError> {
    let parsed = MessageParser::default().parse(raw).filter(is_message);
    let Some(msg) = parsed else { return Err(ReceiveError::NotAMessage) };
    let message_id = msg.message_id().map(str::to_owned);
    let sender = msg.from().and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_owned);
    let m = NewInbound {
        source: MAIL_IN,
        uid_validity: None,
        uid: None,
        message_id: message_id.as_deref(),
        sender: sender.as_deref(),
        raw,
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
pub async fn ingest(db: &Db, id: i64) -> anyhow::Result<()> {
    let Some(stored) = db.inbound(id).await? else { return Ok(()) };
    if stored.state != InboundState::Stored {
        return Ok(());
    }
    let parsed = match parse(&stored.raw) {
        Ok(p) => p,
        Err(e) => return Ok(db.set_inbound_outcome(id, InboundState::Rejected, &e.to_string()).await?),
    };
    if let Some(why) = parsed.automatic {
        if let Some(original) = &parsed.bounced
            && let Some(ticket) = db.thread_ticket(std::slice::from_ref(original)).await?
        {
            // Staff see on the ticket that its mail did not reach the customer.
            db.note_undeliverable(ticket, original).await?;
        }
        tracing::info!(inbound_id = id, why, "automatic mail ignored");
        return Ok(db.set_inbound_outcome(id, InboundState::Ignored, why).await?);
    }
    if db.inbound_from_in_hour_before(parsed.from.as_str(), id, stored.received_at).await? > SENDER_LIMIT_PER_HOUR {
        let why = format!("more than {SENDER_LIMIT_PER_HOUR} messages from this sender in an hour (a mail loop?)");
        tracing::warn!(inbound_id = id, "mail from a sender over the hourly limit set aside");
        return Ok(db.set_inbound_outcome(id, InboundState::Rejected, &why).await?);
    }
    let origin = MailOrigin { inbound: id, message_id: parsed.message_id.clone() };
    let sender = db.user_by_email(&parsed.from).await?;
    match threaded(db, &parsed, sender.as_ref()).await? {
        Some((ticket, author)) => reply(db, &ticket, &author, &parsed, &origin).await,
        None => new_ticket(db, sender, &parsed, &origin).await,
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
async fn reply(db: &Db, ticket: &Ticket, author: &User, p: &Parsed, origin: &MailOrigin) -> anyhow::Result<()> {
    let text = Some(reply_text(&p.text)).filter(|t| !t.is_empty()).unwrap_or_else(|| p.text.clone());
    let Ok(body) = CommentBody::parse(&truncate(&text, CommentBody::MAX)) else {
        return Ok(db.set_inbound_outcome(origin.inbound, InboundState::Rejected, "the reply has no text").await?);
    };
    if ticket.created_by == author.id && matches!(ticket.status, Status::Resolved | Status::Closed) {
        // Reopened first (a no-op when repeated), so a crash before the comment loses nothing.
        let patch = TicketPatch { status: Some(Status::Open), ..TicketPatch::default() };
        db.update_ticket(ticket.id, Actor::User(author.id), &patch).await?;
    }
    db.add_comment_from(ticket.id, author, &body, false, Some(origin)).await?;
    tracing::info!(inbound_id = origin.inbound, ticket = ticket.number, "mail reply added");
    Ok(())
}

/// A new ticket from the message's sender (a new requester account when the address is new: it cannot log
/// in until its owner sets a password).
async fn new_ticket(db: &Db, sender: Option<User>, p: &Parsed, origin: &MailOrigin) -> anyhow::Result<()> {
    let requester = match sender {
        Some(u) => u,
        None => db.user_or_new_requester(&p.from, &crate::auth::unusable_password_hash().await?).await?.0,
    };
    let first_line = p.text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let subject = if p.subject.trim().chars().count() >= TicketTitle::MIN { p.subject.trim() } else { first_line };
    let title = TicketTitle::parse(&truncate(subject, TicketTitle::MAX))
        .or_else(|_| TicketTitle::parse("(no subject)"))
        .context("the fallback title")?;
    let text = if p.text.is_empty() { title.as_str().to_owned() } else { truncate(&p.text, TicketDescription::MAX) };
    let description = TicketDescription::parse(&text).context("a description from the mail")?;
    let ticket = db.create_ticket_from(&requester, &title, &description, Some(origin)).await?;
    tracing::info!(inbound_id = origin.inbound, ticket = ticket.number, "ticket filed by mail");
    Ok(())
}

/// The first `max` characters of `text`.
fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
