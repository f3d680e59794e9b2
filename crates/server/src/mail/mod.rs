//! Outgoing mail: templates (a text and an HTML part each, customer text escaped in HTML) and delivery over
//! SMTP (pooled, STARTTLS or TLS via rustls) or, with no SMTP configured, as `.eml` files in an outbox folder.
//!
//! Sending is a job (`email.send`) whose idempotency key names the notification; a key already recorded as
//! sent is never sent again, so a retried job does not send twice.

pub mod imap;
pub mod inbound;

use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::Environment;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::config::{MailSettings, SmtpTls};

/// One email, as the `email.send` job carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Email {
    /// Names the notification: sent at most once.
    pub key: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The ticket it is about, and the headers that keep that conversation together.
    #[serde(default)]
    pub thread: Option<Thread>,
    /// Written by the system on its own (`Auto-Submitted: auto-generated`), not relaying a person's words.
    #[serde(default)]
    pub automatic: bool,
}

/// Where a mail stands in its ticket's conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    pub ticket_id: crate::model::TicketId,
    /// This mail's Message-ID, without angle brackets: random, so nobody can guess one to write into a ticket.
    pub message_id: String,
    /// The conversation's first message (what `In-Reply-To` and `References` name).
    pub root: Option<String>,
}

impl Email {
    /// This mail as part of ticket `ticket_id`'s conversation, whose first message is `root`; its
    /// Message-ID is made at the domain of `from`.
    pub fn about(mut self, ticket_id: crate::model::TicketId, root: Option<String>, from: &Mailbox) -> Email {
        let message_id = format!("{}@{}", crate::auth::random_token(), from.email.domain());
        self.thread = Some(Thread { ticket_id, message_id, root });
        self
    }
}

/// Where mail goes.
pub enum Mailer {
    Outbox { dir: PathBuf, from: Mailbox, reply_to: Option<Mailbox> },
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, from: Mailbox, reply_to: Option<Mailbox>, host: String },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Outbox { dir, .. } => write!(f, "Mailer::Outbox({})", dir.display()),
            Mailer::Smtp { host, .. } => write!(f, "Mailer::Smtp({host})"),
        }
    }
}

impl Mailer {
    pub fn new(settings: &MailSettings) -> anyhow::Result<Mailer> {
        let from: Mailbox =
            settings.from.parse().with_context(|| format!("SMTP_FROM {:?} is not an address", settings.from))?;
        let reply_to = match &settings.support_address {
            Some(a) => Some(a.parse().with_context(|| format!("SUPPORT_ADDRESS {a:?} is not an address"))?),
            None => None,
        };
        let Some(host) = &settings.smtp_host else {
            tracing::info!(outbox = %settings.outbox.display(), "no SMTP_HOST: mail is written as .eml files to the outbox folder");
            return Ok(Mailer::Outbox { dir: settings.outbox.clone(), from, reply_to });
        };
        let builder = match settings.tls {
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        let mut builder = builder
            .port(settings.port.unwrap_or(match settings.tls {
                SmtpTls::Tls => 465,
                SmtpTls::StartTls => 587,
                SmtpTls::None => 25,
            }))
            .timeout(Some(Duration::from_secs(20)))
            .pool_config(PoolConfig::new().max_size(4));
        if let (Some(user), Some(pass)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.expose().to_owned()));
        }
        tracing::info!(host, port = ?settings.port, tls = ?settings.tls, "mail goes out over SMTP");
        Ok(Mailer::Smtp { transport: builder.build(), from, reply_to, host: host.clone() })
    }

    pub fn transport_name(&self) -> &'static str {
        match self {
            Mailer::Outbox { .. } => "outbox",
            Mailer::Smtp { .. } => "smtp",
        }
    }

    /// The address mail is sent from.
    pub fn from(&self) -> &Mailbox {
        match self {
            Mailer::Outbox { from, .. } | Mailer::Smtp { from, .. } => from,
        }
    }

    fn reply_to(&self) -> Option<&Mailbox> {
        match self {
            Mailer::Outbox { reply_to, .. } | Mailer::Smtp { reply_to, .. } => reply_to.as_ref(),
        }
    }

    /// The message: threaded into its ticket's conversation, with the support address to reply to, and
    /// marked `Auto-Submitted` when the system wrote it on its own.
    fn message(&self, email: &Email) -> anyhow::Result<Message> {
        let to: Mailbox = email.to.parse().with_context(|| format!("{:?} is not an address", email.to))?;
        // Mail about a ticket comes from the support address (when set), so an answer comes back to the desk.
        let from = match (&email.thread, self.reply_to()) {
            (Some(_), Some(support)) => support,
            _ => self.from(),
        };
        let mut b = Message::builder().from(from.clone()).to(to).subject(&email.subject);
        if let Some(t) = &email.thread {
            b = b.message_id(Some(format!("<{}>", t.message_id)));
            if let Some(root) = &t.root {
                b = b.in_reply_to(format!("<{root}>")).references(format!("<{root}>"));
            }
            if let Some(r) = self.reply_to() {
                b = b.reply_to(r.clone());
            }
        }
        if email.automatic {
            let name = lettre::message::header::HeaderName::new_from_ascii_str("Auto-Submitted");
            b = b.raw_header(lettre::message::header::HeaderValue::new(name, "auto-generated".into()));
        }
        b.multipart(MultiPart::alternative_plain_html(email.text.clone(), email.html.clone()))
            .context("building the message")
    }

    /// Delivers one email (an error means: try again later).
    pub async fn send(&self, email: &Email) -> anyhow::Result<()> {
        match self {
            Mailer::Outbox { dir, .. } => {
                let bytes = self.message(email)?.formatted();
                let name: String =
                    email.key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
                tokio::fs::create_dir_all(dir).await.with_context(|| format!("creating {}", dir.display()))?;
                // Write then rename: a reader never sees half a message, and a retry overwrites the same file.
                let tmp = dir.join(format!(".{name}.tmp"));
                tokio::fs::write(&tmp, bytes).await.with_context(|| format!("writing {}", tmp.display()))?;
                tokio::fs::rename(&tmp, dir.join(format!("{name}.eml"))).await?;
                Ok(())
            }
            Mailer::Smtp { transport, .. } => {
                transport.send(self.message(email)?).await.context("SMTP delivery failed")?;
                Ok(())
            }
        }
    }
}

const TEMPLATES: &[(&str, &str)] = &[
    (
        "assigned.txt",
        "Hello,\n\nTicket #{{ number }} was assigned to you ({{ reason }}).\n\n{{ title }}\n\
Priority: {{ priority }}{% if deadline %}, respond by {{ deadline }}{% endif %}\n\
Category: {{ category or \"none\" }}\nSkills: {{ skills|join(\", \") if skills else \"none\" }}\n\n\
{% if note %}What to look at first:\n{{ note }}\n\n{% endif %}Open it: {{ link }}\n",
    ),
    (
        "assigned.html",
        "<p>Hello,</p><p>Ticket <a href=\"{{ link }}\">#{{ number }}</a> was assigned to you ({{ reason }}).</p>\
<h2>{{ title }}</h2><p><b>Priority:</b> {{ priority }}{% if deadline %}, respond by {{ deadline }}{% endif %}<br>\
<b>Category:</b> {{ category or \"none\" }}<br><b>Skills:</b> {{ skills|join(\", \") if skills else \"none\" }}</p>\
{% if note %}<h3>What to look at first</h3><pre>{{ note }}</pre>{% endif %}<p><a href=\"{{ link }}\">Open the ticket</a></p>",
    ),
    (
        "welcome.txt",
        "Welcome to Smart Ticket, {{ email }}!\n\nFile a ticket at {{ link }} and we will route it to the right person.\n",
    ),
    (
        "welcome.html",
        "<p>Welcome to Smart Ticket, {{ email }}!</p><p><a href=\"{{ link }}\">File a ticket</a> and we will route it to the right person.</p>",
    ),
    (
        "welcome_mail.txt",
        "Hello,\n\nWe received your message and opened a ticket for it; you will hear from us by e-mail.\n\n\
To follow your tickets on the web too, set a password for {{ email }} within {{ days }} days \
(the link works once): {{ link }}\n\nAfterwards your tickets are at {{ tickets }}\n",
    ),
    (
        "welcome_mail.html",
        "<p>Hello,</p><p>We received your message and opened a ticket for it; you will hear from us by e-mail.</p>\
<p>To follow your tickets on the web too, <a href=\"{{ link }}\">set a password</a> for {{ email }} within {{ days }} days \
(the link works once).</p>",
    ),
    (
        "resolved.txt",
        "Hello,\n\nYour ticket #{{ number }} \"{{ title }}\" was resolved:\n\n{{ resolution }}\n\n\
If this did not solve it, reply on the ticket to reopen it: {{ link }}\n",
    ),
    (
        "resolved.html",
        "<p>Hello,</p><p>Your ticket <a href=\"{{ link }}\">#{{ number }}</a> “{{ title }}” was resolved:</p>\
<blockquote style=\"white-space: pre-wrap\">{{ resolution }}</blockquote><p>If this did not solve it, reply on the ticket to reopen it.</p>",
    ),
    (
        "reply.txt",
        "Hello,\n\n{{ author }} replied on your ticket #{{ number }} \"{{ title }}\":\n\n{{ body }}\n\nAnswer here: {{ link }}\n",
    ),
    (
        "reply.html",
        "<p>Hello,</p><p>{{ author }} replied on your ticket <a href=\"{{ link }}\">#{{ number }}</a> “{{ title }}”:</p>\
<blockquote style=\"white-space: pre-wrap\">{{ body }}</blockquote><p><a href=\"{{ link }}\">Answer</a></p>",
    ),
    (
        "reset.txt",
        "Hello,\n\nSomeone (we hope you) asked to set a new password for {{ email }} at Smart Ticket.\n\n\
Set it here within {{ minutes }} minutes (the link works once): {{ link }}\n\n\
If you did not ask, ignore this mail: your password stays as it is.\n",
    ),
    (
        "reset.html",
        "<p>Hello,</p><p>Someone (we hope you) asked to set a new password for {{ email }} at Smart Ticket.</p>\
<p><a href=\"{{ link }}\">Set a new password</a> within {{ minutes }} minutes (the link works once).</p>\
<p>If you did not ask, ignore this mail: your password stays as it is.</p>",
    ),
    (
        "mail_refused.txt",
        "Hello,\n\nWe could not take in your message \"{{ subject }}\": {{ reason }}.\n\n\
Please send it again under {{ max }}, with large files shared as links.\n",
    ),
    (
        "mail_refused.html",
        "<p>Hello,</p><p>We could not take in your message “{{ subject }}”: {{ reason }}.</p>\
<p>Please send it again under {{ max }}, with large files shared as links.</p>",
    ),
    (
        "files_refused.txt",
        "Hello,\n\nWe received your message \"{{ subject }}\", but not these files:\n\n\
{% for f in files %}- {{ f }}\n{% endfor %}\nPlease share them as links, or send them smaller.\n",
    ),
    (
        "files_refused.html",
        "<p>Hello,</p><p>We received your message “{{ subject }}”, but not these files:</p>\
<ul>{% for f in files %}<li>{{ f }}</li>{% endfor %}</ul><p>Please share them as links, or send them smaller.</p>",
    ),
    (
        "answer.txt",
        "Hello,\n\nWe received your message \"{{ title }}\" as ticket #{{ number }}, and a person will answer it. \
While you wait: these articles of our help centre answer questions like yours.\n\n\
{% for a in articles %}- {{ a.title }}\n  {{ a.url }}\n  {{ a.excerpt }}\n\n{% endfor %}\
If one of them solved it, reply to this mail with the word \"solved\", or say which one here \
(for {{ days }} days): {{ solved_link }}\nWe then close the ticket. If not, there is nothing to do: \
your ticket stays open.\n",
    ),
    (
        "answer.html",
        "<p>Hello,</p><p>We received your message “{{ title }}” as ticket #{{ number }}, and a person will answer it. \
While you wait: these articles of our help centre answer questions like yours.</p>\
<ul>{% for a in articles %}<li><a href=\"{{ a.url }}\">{{ a.title }}</a><br>{{ a.excerpt }}</li>{% endfor %}</ul>\
<p>If one of them solved it, reply to this mail with the word “solved”, or \
<a href=\"{{ solved_link }}\">say which one</a> (for {{ days }} days). We then close the ticket. If not, there is \
nothing to do: your ticket stays open.</p>",
    ),
    ("rule.txt", "{{ body }}\n\n--\nTicket #{{ number }} \"{{ title }}\": {{ link }}\n"),
    (
        "rule.html",
        "<div style=\"white-space: pre-wrap\">{{ body }}</div><p>Ticket <a href=\"{{ link }}\">#{{ number }}</a> “{{ title }}”</p>",
    ),
    (
        "escalated.txt",
        "Ticket #{{ number }} \"{{ title }}\" was escalated to {{ priority }} by the rule \"{{ rule }}\".\n\
Assignee: {{ assignee or \"nobody\" }}\n\nOpen it: {{ link }}\n",
    ),
    (
        "escalated.html",
        "<p>Ticket <a href=\"{{ link }}\">#{{ number }}</a> “{{ title }}” was escalated to {{ priority }} by the rule \
“{{ rule }}”.</p><p>Assignee: {{ assignee or \"nobody\" }}</p>",
    ),
    (
        "sla.txt",
        "Ticket #{{ number }} \"{{ title }}\" ({{ priority }}) passed its response deadline {{ deadline }} and is still open.\n\
Assignee: {{ assignee or \"nobody\" }}\n\nOpen it: {{ link }}\n",
    ),
    (
        "sla.html",
        "<p>Ticket <a href=\"{{ link }}\">#{{ number }}</a> “{{ title }}” ({{ priority }}) passed its response deadline \
{{ deadline }} and is still open.</p><p>Assignee: {{ assignee or \"nobody\" }}</p>",
    ),
];

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Names ending in .html are HTML-escaped; .txt are not.
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") { minijinja::AutoEscape::Html } else { minijinja::AutoEscape::None }
        });
        for (name, source) in TEMPLATES {
            env.add_template(name, source).unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        env
    })
}

/// Queues `email` as an `email.send` job keyed by its notification key (a key queued before adds nothing).
pub async fn queue(db: &crate::db::Db, email: &Email) -> anyhow::Result<()> {
    db.enqueue(&job(email)?).await?;
    Ok(())
}

/// The `email.send` job of `email`, keyed by its notification key.
pub fn job(email: &Email) -> anyhow::Result<crate::db::NewJob> {
    Ok(crate::db::NewJob {
        kind: smart_ticket_domain::JobKind::EmailSend,
        idempotency_key: email.key.clone(),
        payload: serde_json::to_value(email)?,
    })
}

/// Renders the text and HTML parts of template `name` into an email.
pub fn render(name: &str, key: String, to: &str, subject: String, ctx: minijinja::Value) -> anyhow::Result<Email> {
    let env = templates();
    let text = env.get_template(&format!("{name}.txt"))?.render(&ctx)?;
    let html = env.get_template(&format!("{name}.html"))?.render(&ctx)?;
    Ok(Email { key, to: to.to_owned(), subject, text, html, thread: None, automatic: true })
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn every_template_renders_and_html_parts_escape_customer_text() {
        let e = render(
            "reply",
            "k".into(),
            "ann@example.com",
            "s".into(),
            context! { author => "mod@example.com", number => 7, title => "<b>x</b>", body => "<script>alert(1)</script> & co", link => "http://h/t/1" },
        )
        .unwrap();
        assert!(e.html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; co"), "{}", e.html);
        assert!(!e.html.contains("<script>"));
        assert!(e.text.contains("<script>alert(1)</script> & co"), "text stays as written: {}", e.text);
        for (name, _) in TEMPLATES {
            let base = name.rsplit_once('.').unwrap().0;
            render(base, "k".into(), "a@b.c", "s".into(), context! {}).unwrap();
        }
    }
}
