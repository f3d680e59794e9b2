//! Mail over real SMTP: a server on loopback (scripts/test-smtp-server, aiosmtpd) receives what we send.

use serde_json::Value;
use smart_ticket::config::{MailSettings, SmtpTls};
use smart_ticket::jobs::{Outcome, Worker};
use smart_ticket_domain::JobKind;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::helpers::{Backend, TestApp, fresh_database, on_both_backends, pipeline_settings};

on_both_backends!(mail_arrives_over_smtp_and_a_refusing_server_only_delays_it);

/// The SMTP server, stopped when dropped.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl SmtpServer {
    /// Starts it; the first `refuse` messages are answered "451 try again later".
    pub fn start(dir: &Path, refuse: u32) -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let script =
            PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()))
                .join("../../scripts/test-smtp-server");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir)
            .arg(refuse.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting scripts/test-smtp-server (needs python3-aiosmtpd; `make test` installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start");
        SmtpServer { child, port, dir: dir.to_owned() }
    }

    pub fn received(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn mail_arrives_over_smtp_and_a_refusing_server_only_delays_it(backend: Backend) {
    let (dir, url) = fresh_database(backend).await;
    let smtp = SmtpServer::start(&dir.join("smtp"), 1);
    let mut settings = pipeline_settings(&dir, crate::helpers::model_dir());
    settings.mail = MailSettings {
        smtp_host: Some("127.0.0.1".into()),
        port: Some(smtp.port),
        from: "Help Desk <help@example.com>".into(),
        tls: SmtpTls::None,
        ..MailSettings::outbox(dir.join("outbox"))
    };
    let app = TestApp::start_with(dir, url, settings).await;
    let user = app.signup("ann@example.com").await;
    let admin = app.admin().await;
    let t = app.file_ticket(&user, "Refund <please>", "Charged twice & no refund yet").await;
    let id = t["id"].as_str().unwrap();

    // The server refuses the first message: that job is retried (no backoff here), and nothing is lost.
    let worker = Worker::new(app.db.clone(), app.pipeline.registry()).with_backoff(chrono::Duration::zero());
    let mut retried = 0;
    loop {
        match worker.try_execute_one().await.unwrap() {
            Outcome::Empty => break,
            Outcome::Succeeded { .. } => {}
            Outcome::Retrying { kind, .. } => {
                assert_eq!(kind, JobKind::EmailSend);
                retried += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(retried, 1, "one refusal, one retry");
    let (status, b) = app
        .post(
            &format!("/api/tickets/{id}/comments"),
            Some(&admin.token),
            serde_json::json!({ "body": "Refunded <b>today</b> & confirmed", "internal": false }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{b}");
    app.drain().await;

    let mail = smtp.received();
    let to = |addr: &str| mail.iter().filter(|m| m["to"][0] == addr).cloned().collect::<Vec<_>>();
    let ann = to("ann@example.com");
    assert_eq!(ann.len(), 2, "welcome and reply: {mail:?}");
    let welcome = ann.iter().find(|m| m["subject"] == "Welcome to Smart Ticket").expect("welcome mail");
    assert_eq!(welcome["from"], "help@example.com");
    let reply = ann.iter().find(|m| m["subject"].as_str().unwrap().contains("New reply")).expect("reply mail");
    assert!(reply["subject"].as_str().unwrap().contains("Refund <please>"), "{reply}");
    assert!(reply["text"].as_str().unwrap().contains("Refunded <b>today</b> & confirmed"), "{reply}");
    let html = reply["html"].as_str().unwrap();
    assert!(html.contains("Refunded &lt;b&gt;today&lt;&#x2f;b&gt; &amp; confirmed"), "{html}");
    assert!(!html.contains("<b>today</b>"), "customer text is escaped in HTML");
    // The admin (assignee: no moderator exists) got the assignment, with the AI's note.
    let assigned = to("root@example.com");
    let a = assigned.iter().find(|m| m["subject"].as_str().unwrap().contains("Refund <please>")).expect("assignment");
    let text = a["text"].as_str().unwrap().replace("\r\n", "\n");
    assert!(text.contains("What to look at first:\nSummary: Refund <please>"), "{a}");
    assert!(a["html"].as_str().unwrap().contains("Refund &lt;please&gt;"), "{a}");
    assert_eq!(mail.len(), 2 + 1 + 1, "ann: welcome + reply; root: welcome + assignment: {mail:?}");
}
