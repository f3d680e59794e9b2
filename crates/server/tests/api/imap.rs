//! Mail read from a real IMAP server (Dovecot, started per test by `scripts/test-imap-server`): messages of
//! real-world shapes become tickets once each, are flagged `\Seen` after they are stored, the poll job waits in
//! IDLE and ends with the process, a server that is down is reported and read again when it returns, a
//! message over the size limit is refused with a note to its sender, and workers killed with SIGKILL while
//! they fetch lose and repeat nothing.

use async_imap::Client;
use futures_util::TryStreamExt as _;
use smart_ticket::config::{ImapSettings, Secret, SmtpTls};
use smart_ticket::mail::imap::read_once;
use smart_ticket::mail::inbound::{parse, reply_text};
use smart_ticket::pipeline::mailbox_job;
use smart_ticket_domain::{InboundState, JobKind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::{Backend, TestApp, fresh_database, model_dir, on_both_backends, pipeline_settings};

on_both_backends!(
    a_mailbox_is_read_once_and_flagged_seen_after_storing,
    the_poll_job_waits_in_idle_and_ends_with_the_process,
    a_mailbox_that_is_down_is_reported_and_read_when_it_returns,
    a_message_over_the_size_limit_is_kept_as_its_header_and_its_sender_told,
    workers_killed_while_fetching_lose_and_repeat_nothing,
    a_whole_conversation_by_mail,
);

const USER: &str = "support";
const PASSWORD: &str = "support-password";

/// A Dovecot of its own on a free loopback port; stopped when dropped.
pub struct ImapServer {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts").join(name)
}

impl ImapServer {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    pub async fn start_on(port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("st-imap-{}", uuid::Uuid::new_v4().simple()));
        let mut child = Command::new(script("test-imap-server"))
            .arg(port.to_string())
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting scripts/test-imap-server (is dovecot-imapd installed? `make test` installs it)");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Self { child, port, dir };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("Dovecot did not listen on port {port}");
    }

    pub fn mailbox(&self) -> ImapSettings {
        mailbox_on(self.port)
    }

    async fn session(&self) -> async_imap::Session<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let mut client = Client::new(tcp);
        client.read_response().await.unwrap().unwrap();
        let mut session = client.login(USER, PASSWORD).await.map_err(|(e, _)| e).unwrap();
        session.select("INBOX").await.unwrap();
        session
    }

    /// Puts messages into the INBOX with IMAP APPEND.
    pub async fn append(&self, messages: &[Vec<u8>]) {
        let mut session = self.session().await;
        for raw in messages {
            session.append("INBOX", None, None, raw).await.unwrap();
        }
        session.logout().await.unwrap();
    }

    /// How many messages are not flagged `\Seen`.
    pub async fn unseen(&self) -> usize {
        let mut session = self.session().await;
        let n = session.uid_search("UNSEEN").await.unwrap().len();
        session.logout().await.unwrap();
        n
    }

    /// Clears `\Seen` on every message (as if the flags had never been set).
    pub async fn mark_all_unseen(&self) {
        let mut session = self.session().await;
        let _: Vec<_> = session.uid_store("1:*", "-FLAGS.SILENT (\\Seen)").await.unwrap().try_collect().await.unwrap();
        session.logout().await.unwrap();
    }

    fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for ImapServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn mailbox_on(port: u16) -> ImapSettings {
    ImapSettings {
        name: "default".into(),
        host: "127.0.0.1".into(),
        port: Some(port),
        username: USER.into(),
        password: Secret::new(PASSWORD),
        folder: "INBOX".into(),
        tls: SmtpTls::None,
        poll: Duration::from_secs(2),
    }
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every fixture, by file name.
fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<_> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    all.sort();
    all
}

fn plain(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: support@desk.example\r\nSubject: {subject}\r\nMessage-ID: <{}@mail.example>\r\n\
         Date: Tue, 1 Dec 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        uuid::Uuid::new_v4().simple()
    )
    .into_bytes()
}

/// An app whose settings name the mailbox.
async fn app_with(backend: Backend, mailbox: ImapSettings, max_message_bytes: Option<usize>) -> TestApp {
    let (dir, url) = fresh_database(backend).await;
    let mut settings = pipeline_settings(&dir, model_dir());
    settings.mail.mailboxes = vec![mailbox];
    if let Some(max) = max_message_bytes {
        settings.mail.max_message_bytes = max;
    }
    TestApp::start_with(dir, url, settings).await
}

async fn count_in(app: &TestApp, state: InboundState) -> usize {
    app.db.inbound_in_state(state, 1000).await.unwrap().len()
}

#[test]
fn fixtures_of_real_mail_read_as_their_senders_wrote_them() {
    let text = |name: &str| parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}")).text;
    let expected = [
        ("charset_iso_8859_1.eml", "La machine à café ne chauffe plus."),
        ("charset_iso_8859_2.eml", "błąd żółty"),
        ("charset_windows_1251.eml", "Принтер не печатает с утра."),
        ("charset_windows_1252.eml", "100€ instead of 90€ – please check."),
        ("charset_shift_jis.eml", "パスワードを忘れました。"),
        ("charset_iso_2022_jp.eml", "先月の請求書がまだ届いていません。"),
        ("charset_gb2312.eml", "我无法登录我的账户。"),
        ("quoted_printable.eml", "Das Passwort für mein Konto lässt sich nicht zurücksetzen."),
        ("html_only.eml", "E-4012"),
    ];
    for (name, words) in expected {
        assert!(text(name).contains(words), "{name}: {:?}", text(name));
    }
    let subject = |name: &str| parse(&fixture(name)).unwrap().subject;
    assert_eq!(subject("charset_iso_2022_jp.eml"), "請求書が届きません");
    assert_eq!(subject("charset_windows_1251.eml"), "Принтер не работает");
    let html = text("html_only.eml");
    assert!(html.contains("invoice export") && !html.contains('<') && !html.contains("alert"), "{html}");
    assert_eq!(parse(&fixture("quoted_printable.eml")).unwrap().from.as_str(), "juergen@customer.example");
    // Quoted history and signatures are cut from replies.
    assert_eq!(reply_text(&text("gmail_reply.eml")), "Thanks, the printer works again after the reset.");
    assert_eq!(reply_text(&text("outlook_reply.eml")), "The VPN still drops every hour – see the log below.");
    assert_eq!(reply_text(&text("apple_reply.eml")), "Yes, it happens on both Macs.\n\nSent from my iPhone");
    // Automatic mail is recognised as such.
    assert!(parse(&fixture("dsn_bounce.eml")).unwrap().automatic.is_some());
    assert_eq!(parse(&fixture("dsn_bounce.eml")).unwrap().bounced.as_deref(), Some("unknown-sent@desk.example"));
    assert!(parse(&fixture("out_of_office.eml")).unwrap().automatic.is_some());
    assert!(parse(&fixture("gmail_reply.eml")).unwrap().automatic.is_none());
}

async fn a_mailbox_is_read_once_and_flagged_seen_after_storing(backend: Backend) {
    let server = ImapServer::start().await;
    let mb = server.mailbox();
    let app = app_with(backend, mb.clone(), None).await;
    let all = fixtures();
    server.append(&all.iter().map(|(_, raw)| raw.clone()).collect::<Vec<_>>()).await;
    assert_eq!(server.unseen().await, all.len());

    let read = read_once(&app.db, &mb, 30 << 20).await.unwrap();
    assert_eq!((read.fetched, read.stored), (all.len(), all.len()));
    assert_eq!(server.unseen().await, 0, "flagged seen once stored");
    app.drain().await;
    let automatic = ["dsn_bounce.eml", "out_of_office.eml"];
    assert_eq!(count_in(&app, InboundState::Ignored).await, automatic.len());
    assert_eq!(count_in(&app, InboundState::Stored).await, 0);
    let ingested = count_in(&app, InboundState::Ingested).await;
    let rejected = count_in(&app, InboundState::Rejected).await;
    assert_eq!(ingested + rejected + automatic.len(), all.len(), "every message settled, none lost");
    let admin = app.admin().await;
    let (_, tickets) = app.get("/api/tickets?limit=100", Some(&admin.token)).await;
    let tickets = tickets["tickets"].as_array().unwrap().clone();
    assert_eq!(tickets.len(), ingested, "each message one ticket (nothing here replies to a ticket)");
    // The stranger's forged `[#1]` tag files a ticket of its own, under their own name.
    let forged = tickets.iter().find(|t| t["title"].as_str().unwrap().contains("Printer offline")).unwrap();
    assert_eq!(tickets.iter().filter(|t| t["title"].as_str().unwrap().contains("Printer offline")).count(), 2);
    assert!(forged["number"].as_i64().is_some());

    // Read again: nothing new. After losing the position and the flags (a crash before either was saved),
    // everything is fetched again and nothing is stored twice.
    assert_eq!(read_once(&app.db, &mb, 30 << 20).await.unwrap().fetched, 0);
    server.mark_all_unseen().await;
    sqlx_reset_position(&app).await;
    let again = read_once(&app.db, &mb, 30 << 20).await.unwrap();
    assert_eq!((again.fetched, again.stored), (all.len(), 0));
    app.drain().await;
    let (_, after) = app.get("/api/tickets?limit=100", Some(&admin.token)).await;
    assert_eq!(after["tickets"].as_array().unwrap().len(), tickets.len());
    let state = app.db.mailbox("default").await.unwrap().unwrap();
    assert_eq!(state.fetched, all.len() as i64);
    assert!(state.last_success_at.is_some() && state.last_error.is_none());
}

/// Forgets how far the mailbox was read (UIDVALIDITY kept, position before the first message).
async fn sqlx_reset_position(app: &TestApp) {
    let state = app.db.mailbox("default").await.unwrap().unwrap();
    let validity = state.uid_validity.unwrap();
    app.db.forget_mailbox_position("default", validity).await.unwrap();
}

async fn the_poll_job_waits_in_idle_and_ends_with_the_process(backend: Backend) {
    let server = ImapServer::start().await;
    let mut mb = server.mailbox();
    mb.poll = Duration::from_secs(120);
    let app = app_with(backend, mb, None).await;
    app.drain().await;
    app.db.enqueue(&mailbox_job("default")).await.unwrap();
    let worker = smart_ticket::jobs::Worker::new(app.db.clone(), app.pipeline.registry());
    let run = tokio::spawn(async move { worker.try_execute_one().await.unwrap() });
    // The job is in IDLE now (or about to be): new mail arrives while it waits.
    wait_for(|| async { app.db.mailbox("default").await.unwrap().is_some_and(|s| s.last_success_at.is_some()) }).await;
    server.append(&[plain("kim@customer.example", "Scanner offline", "The scanner shows offline.")]).await;
    wait_for(|| async { count_in(&app, InboundState::Stored).await == 1 }).await;
    assert!(!run.is_finished(), "the job keeps waiting for more mail");
    // The process stops: the job ends at once and is queued to run again.
    app.pipeline.stop.send(true).unwrap();
    let outcome = run.await.unwrap();
    assert!(matches!(outcome, smart_ticket::jobs::Outcome::Succeeded { kind: JobKind::MailPoll, .. }), "{outcome:?}");
    let jobs = app.db.list_jobs(smart_ticket_domain::JobState::Queued, None, 10).await.unwrap();
    let poll: Vec<_> = jobs.iter().filter(|j| j.kind == JobKind::MailPoll).collect();
    assert_eq!(poll.len(), 1, "one poll job per mailbox, queued again");
    assert_eq!(poll[0].attempts, 0);
    assert_eq!(server.unseen().await, 0);
}

/// Waits (up to a minute, checking every 50 ms) for `ready` to hold: for work in other tasks, not a timing check.
async fn wait_for<F, Fut>(ready: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..1200 {
        if ready().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the condition did not hold within a minute");
}

async fn a_mailbox_that_is_down_is_reported_and_read_when_it_returns(backend: Backend) {
    let port = free_port();
    let mb = mailbox_on(port);
    let app = app_with(backend, mb.clone(), None).await;
    let admin = app.admin().await;
    assert!(read_once(&app.db, &mb, 30 << 20).await.is_err(), "nothing listens yet");
    let (_, health) = app.get("/api/admin/mailboxes", Some(&admin.token)).await;
    let m = &health["mailboxes"][0];
    assert_eq!((m["name"].as_str(), m["healthy"].as_bool()), (Some("default"), Some(false)), "{health}");
    assert!(m["last_error"].as_str().unwrap().contains("connecting"), "{health}");
    let (status, ready) = app.get("/readyz", None).await;
    assert_eq!(status, reqwest::StatusCode::OK, "a mailbox down does not take the service out: {ready}");
    assert_eq!(ready["status"], "degraded");
    assert!(ready["checks"]["mailboxes"]["default"]["failed"].is_string(), "{ready}");
    // The poll job, run by a worker, fails without dying: queued again after the poll interval.
    app.drain().await;
    app.db.enqueue(&mailbox_job("default")).await.unwrap();
    let worker = smart_ticket::jobs::Worker::new(app.db.clone(), app.pipeline.registry());
    let outcome = worker.try_execute_one().await.unwrap();
    assert!(matches!(outcome, smart_ticket::jobs::Outcome::Retrying { .. }), "{outcome:?}");
    let queued = app.db.list_jobs(smart_ticket_domain::JobState::Queued, None, 10).await.unwrap();
    assert!(queued.iter().any(|j| j.kind == JobKind::MailPoll && j.attempts == 0 && j.run_at > j.updated_at));

    // The server comes back: the next read takes the mail in and the mailbox is healthy again.
    let server = ImapServer::start_on(port).await;
    server.append(&[plain("lee@customer.example", "Badge reader broken", "My badge does not open door 4.")]).await;
    assert_eq!(read_once(&app.db, &mb, 30 << 20).await.unwrap().stored, 1);
    let (_, health) = app.get("/api/admin/mailboxes", Some(&admin.token)).await;
    assert_eq!(health["mailboxes"][0]["healthy"], true, "{health}");
    assert_eq!(app.get("/readyz", None).await.1["status"], "ready");
    let (_, metrics) = app.get("/metrics", None).await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains("mail_mailbox_failing{mailbox=\"default\"} 0"), "{metrics}");
    assert!(metrics.contains("mail_last_poll_success_timestamp_seconds{mailbox=\"default\"}"));
}

async fn a_message_over_the_size_limit_is_kept_as_its_header_and_its_sender_told(backend: Backend) {
    let server = ImapServer::start().await;
    let mb = server.mailbox();
    let app = app_with(backend, mb.clone(), Some(64 << 10)).await;
    let big = plain("max@customer.example", "Scans of all invoices", &"A".repeat(200 << 10));
    server.append(&[big, plain("max@customer.example", "Small one", "Just text.")]).await;
    let read = read_once(&app.db, &mb, 64 << 10).await.unwrap();
    assert_eq!(read.stored, 2);
    app.drain().await;
    let rejected = app.db.inbound_in_state(InboundState::Rejected, 10).await.unwrap();
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].reason.as_deref().unwrap().contains("over the limit of 0.1 MB"), "{:?}", rejected[0].reason);
    assert!(rejected[0].size < 4096, "only the header is kept: {} bytes", rejected[0].size);
    let note = std::fs::read(app.dir.join("outbox").join(format!("mail-refused_{}.eml", rejected[0].id))).unwrap();
    let note = mail_parser::MessageParser::default().parse(&note).unwrap();
    assert_eq!(note.to().unwrap().first().unwrap().address(), Some("max@customer.example"));
    assert!(note.body_text(0).unwrap().contains("Scans of all invoices"));
    assert_eq!(count_in(&app, InboundState::Ingested).await, 1, "the small one is a ticket");
}

/// `smart-ticket worker` reading the Dovecot mailbox on `port`.
fn mail_worker(dir: &Path, url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_smart-ticket"))
        .arg("worker")
        .env("DATABASE_URL", url)
        .env("DATA_DIR", dir)
        .env("MODEL_DIR", model_dir())
        .env("WORKER_CONCURRENCY", "4")
        .env("IMAP_HOST", "127.0.0.1")
        .env("IMAP_PORT", port.to_string())
        .env("IMAP_USERNAME", USER)
        .env("IMAP_PASSWORD", PASSWORD)
        .env("IMAP_TLS", "none")
        .env("IMAP_POLL_SECONDS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting smart-ticket worker")
}

async fn workers_killed_while_fetching_lose_and_repeat_nothing(backend: Backend) {
    let server = ImapServer::start().await;
    let mb = server.mailbox();
    let (dir, url) = fresh_database(backend).await;
    let mut settings = pipeline_settings(&dir, model_dir());
    settings.mail.mailboxes = vec![mb.clone()];
    let app = TestApp::start_with(dir.clone(), url.clone(), settings).await;
    let messages: Vec<Vec<u8>> = (0..200)
        .map(|i| plain(&format!("c{i}@customer.example"), &format!("Problem number {i}"), "It broke."))
        .collect();
    server.append(&messages).await;
    for _ in 0..5 {
        let mut w = mail_worker(&dir, &url, server.port);
        let stored_before = count_all(&app).await;
        // Killed at a moment it is fetching (or filing): once it has stored something more, or after a while.
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(50 + (uuid::Uuid::new_v4().as_u128() % 100) as u64)).await;
            if count_all(&app).await > stored_before {
                break;
            }
        }
        w.kill().unwrap();
        w.wait().unwrap();
        app.db.expire_leases().await.unwrap();
    }
    // What is left is read and filed here.
    read_once(&app.db, &mb, 30 << 20).await.unwrap();
    app.drain().await;
    assert_eq!(count_all(&app).await, 200, "every message stored once");
    assert_eq!(count_in(&app, InboundState::Ingested).await, 200);
    let filed = app.db.inbound_in_state(InboundState::Ingested, 1000).await.unwrap();
    let distinct: std::collections::HashSet<_> = filed.iter().map(|m| m.ticket_id.unwrap()).collect();
    assert_eq!(distinct.len(), 200, "one ticket per message");
    let created = app.db.count_jobs(JobKind::TicketCreated, smart_ticket_domain::JobState::Succeeded).await.unwrap();
    assert_eq!(created, 200, "and no other ticket");
    assert_eq!(server.unseen().await, 0);
}

async fn count_all(app: &TestApp) -> usize {
    let mut n = 0;
    for state in InboundState::ALL {
        n += app.db.inbound_in_state(*state, 1000).await.unwrap().len();
    }
    n
}

/// The mails the SMTP server received for `to`, oldest first.
fn mails_to(smtp: &crate::mail::SmtpServer, to: &str) -> Vec<serde_json::Value> {
    smtp.received().into_iter().filter(|m| m["to"][0] == to).collect()
}

async fn a_whole_conversation_by_mail(backend: Backend) {
    use serde_json::json;
    let server = ImapServer::start().await;
    let (dir, url) = fresh_database(backend).await;
    let smtp = crate::mail::SmtpServer::start(&dir.join("smtp"), 0);
    let mut settings = pipeline_settings(&dir, model_dir());
    settings.mail = smart_ticket::config::MailSettings {
        smtp_host: Some("127.0.0.1".into()),
        port: Some(smtp.port),
        from: "Help Desk <noreply@desk.example>".into(),
        tls: SmtpTls::None,
        support_address: Some("Support <support@desk.example>".into()),
        mailboxes: vec![server.mailbox()],
        ..smart_ticket::config::MailSettings::outbox(dir.join("outbox"))
    };
    let app = TestApp::start_with(dir, url, settings).await;
    let admin = app.admin().await;
    let mb = server.mailbox();

    // The customer writes.
    let first_id = format!("{}@customer.example", uuid::Uuid::new_v4().simple());
    let first = format!(
        "From: Dora <dora@customer.example>\r\nTo: support@desk.example\r\nSubject: Label printer prints blank\r\n\
         Message-ID: <{first_id}>\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\nEvery label comes out blank.\r\n"
    );
    server.append(&[first.into_bytes()]).await;
    read_once(&app.db, &mb, 30 << 20).await.unwrap();
    app.drain().await;
    let (_, list) = app.get("/api/tickets", Some(&admin.token)).await;
    let t = list["tickets"][0].clone();
    let (id, number) = (t["id"].as_str().unwrap().to_owned(), t["number"].as_i64().unwrap());
    assert!(t["ai"].is_object(), "triaged: {t}");
    // Routed, and the assignee notified: automatic, threaded under the customer's message, tagged.
    let assignee = t["assignee"]["email"].as_str().expect("routed").to_owned();
    let notice = mails_to(&smtp, &assignee).pop().expect("the assignee is notified");
    assert_eq!(notice["headers"]["Auto-Submitted"], "auto-generated");
    assert_eq!(notice["headers"]["In-Reply-To"], format!("<{first_id}>"));
    assert!(notice["subject"].as_str().unwrap().contains(&format!("[#{number}]")), "{notice}");

    // Staff answer on the page (here the API); the customer receives it threaded, from the support address.
    let (status, _) = app
        .post(&format!("/api/tickets/{id}/comments"), Some(&admin.token), json!({ "body": "Replace the ribbon." }))
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    app.drain().await;
    let reply = mails_to(&smtp, "dora@customer.example").pop().expect("the customer gets the reply");
    assert!(reply["text"].as_str().unwrap().contains("Replace the ribbon."));
    assert_eq!(reply["headers"]["In-Reply-To"], format!("<{first_id}>"));
    assert_eq!(reply["headers"]["From"], "Support <support@desk.example>");
    assert_eq!(reply["headers"]["Reply-To"], "Support <support@desk.example>");
    assert!(reply["headers"].get("Auto-Submitted").is_none(), "a person's words: {reply}");
    let ours = reply["headers"]["Message-ID"].as_str().unwrap().to_owned();

    // The customer answers by mail: a comment on the ticket, quoted history cut.
    let answer = format!(
        "From: dora@customer.example\r\nTo: support@desk.example\r\nSubject: Re: [#{number}] Label printer\r\n\
         Message-ID: <{}@customer.example>\r\nIn-Reply-To: {ours}\r\nReferences: <{first_id}> {ours}\r\n\r\n\
         That fixed it, thanks!\r\n\r\nOn Tue, Support wrote:\r\n> Replace the ribbon.\r\n",
        uuid::Uuid::new_v4().simple()
    );
    server.append(&[answer.into_bytes()]).await;
    read_once(&app.db, &mb, 30 << 20).await.unwrap();
    app.drain().await;
    let (_, comments) = app.get(&format!("/api/tickets/{id}/comments"), Some(&admin.token)).await;
    let bodies: Vec<&str> =
        comments["comments"].as_array().unwrap().iter().map(|c| c["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["Replace the ribbon.", "That fixed it, thanks!"]);
    // Staff can still read the customer's mails as they came, quoted history included; the customer cannot.
    let (_, mail) = app.get(&format!("/api/tickets/{id}/mail"), Some(&admin.token)).await;
    let mail = mail["messages"].as_array().unwrap().clone();
    assert_eq!(mail.len(), 2, "{mail:?}");
    let raw = app
        .client
        .get(format!("{}/api/tickets/{id}/mail/{}", app.base, mail[1]["id"]))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains("> Replace the ribbon."), "{raw}");

    // Resolved: the customer is told, in the same thread.
    let (status, _) = app
        .patch(
            &format!("/api/tickets/{id}"),
            Some(&admin.token),
            json!({ "status": "resolved", "resolution": "New ribbon." }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    app.drain().await;
    let resolved = mails_to(&smtp, "dora@customer.example").pop().unwrap();
    assert!(resolved["text"].as_str().unwrap().contains("New ribbon."), "{resolved}");
    assert_eq!(resolved["headers"]["In-Reply-To"], format!("<{first_id}>"));
    assert!(resolved["subject"].as_str().unwrap().contains(&format!("[#{number}]")));
    let (_, list) = app.get("/api/tickets", Some(&admin.token)).await;
    assert_eq!(list["tickets"].as_array().unwrap().len(), 1, "the whole conversation is one ticket");
}
