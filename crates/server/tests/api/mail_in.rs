//! Tickets by e-mail through `smart-ticket mail-in`: a new sender's message files a ticket, replies thread to
//! it only by our Message-IDs or by the subject tag from its requester, automatic mail is never a ticket, and
//! the command's exit codes tell an MTA what to do.

use crate::helpers::{Backend, TestApp, fresh_database, model_dir, on_both_backends, pipeline_settings};
use reqwest::StatusCode;
use serde_json::{Value, json};
use smart_ticket::mail::inbound::{parse, reply_text, tagged_number};
use smart_ticket_domain::{InboundState, Role};
use std::io::Write;

on_both_backends!(
    a_new_sender_files_a_ticket_and_replies_thread_to_it,
    strangers_and_automatic_mail_never_write_into_a_ticket,
    mail_in_stores_once_and_exits_as_an_mta_expects,
    a_staff_reply_goes_out_threaded_and_the_answer_comes_back,
    admins_see_set_aside_mail_and_retry_or_dismiss_it,
    a_sender_over_the_hourly_limit_is_set_aside,
);

/// Pipes `raw` to `smart-ticket mail-in` against `app`'s database; its exit code.
pub(crate) fn mail_in(app: &TestApp, url: &str, raw: &str) -> Option<i32> {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_smart-ticket"))
        .arg("mail-in")
        .env("DATABASE_URL", url)
        .env("DATA_DIR", &app.dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(raw.as_bytes()).unwrap();
    child.wait().unwrap().code()
}

pub(crate) fn message(from: &str, subject: &str, extra: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}@mail.example.com>\r\n\
         Date: Tue, 1 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         {extra}\r\n{body}\r\n",
        uuid::Uuid::new_v4().simple()
    )
}

/// The tickets `who` sees.
pub(crate) async fn tickets(app: &TestApp, token: &str) -> Vec<Value> {
    app.get("/api/tickets", Some(token)).await.1["tickets"].as_array().unwrap().clone()
}

async fn a_new_sender_files_a_ticket_and_replies_thread_to_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.database_url.clone();
    let admin = app.admin().await;
    let first = message(
        "Ann Customer <ann@customer.example>",
        "Printer on floor 3 jams",
        "",
        "It jams on every print since Monday.",
    );
    assert_eq!(mail_in(&app, &url, &first), Some(0));
    app.drain().await;
    let all = tickets(&app, &admin.token).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let t = &all[0];
    assert_eq!(t["title"], "Printer on floor 3 jams");
    assert_eq!(t["description"], "It jams on every print since Monday.");
    assert!(t["ai"].is_object(), "the mail ticket ran through triage: {t}");
    let ann = app.db.user_by_email(&smart_ticket_domain::Email::parse("ann@customer.example").unwrap()).await;
    let ann = ann.unwrap().expect("a requester account was made");
    assert_eq!(ann.role, Role::User);
    // The new account has no password anyone knows: it cannot log in.
    let (status, _) =
        app.post("/api/auth/login", None, json!({ "email": "ann@customer.example", "password": "password1" })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Her welcome carries a link to set a first password, which lets her in.
    let welcome = sent(&app, &format!("welcome:{}", ann.id));
    let welcome = mail_parser::MessageParser::default().parse(&welcome).unwrap();
    let text = welcome.body_text(0).unwrap().into_owned();
    let token = text.split("/reset?token=").nth(1).expect("a set-password link").split_whitespace().next().unwrap();
    let (status, b) =
        app.post("/api/auth/reset", None, json!({ "token": token, "password": "her own passphrase" })).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{b}");
    app.login("ann@customer.example", "her own passphrase").await;

    // Her reply to her first message's id threads to the ticket, quoted history cut.
    let first_id = first.lines().find_map(|l| l.strip_prefix("Message-ID: ")).unwrap().trim().to_owned();
    let reply = message(
        "ann@customer.example",
        "Re: Printer on floor 3 jams",
        &format!("In-Reply-To: {first_id}\r\nReferences: {first_id}\r\n"),
        "Still jamming today.\r\n\r\nOn Mon, 30 Nov 2026, Support wrote:\r\n> Any news?\r\n",
    );
    assert_eq!(mail_in(&app, &url, &reply), Some(0));
    // A reply by the subject tag from the requester threads too.
    let number = t["number"].as_i64().unwrap();
    let tagged =
        message("ann@customer.example", &format!("Re: [#{number}] printer"), "", "And now it smokes.\r\n-- \r\nAnn");
    assert_eq!(mail_in(&app, &url, &tagged), Some(0));
    app.drain().await;
    assert_eq!(tickets(&app, &admin.token).await.len(), 1, "replies file no new ticket");
    let id = t["id"].as_str().unwrap();
    let (_, comments) = app.get(&format!("/api/tickets/{id}/comments"), Some(&admin.token)).await;
    let bodies: Vec<&str> =
        comments["comments"].as_array().unwrap().iter().map(|c| c["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["Still jamming today.", "And now it smokes."]);
}

async fn strangers_and_automatic_mail_never_write_into_a_ticket(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.database_url.clone();
    let admin = app.admin().await;
    let ann = app.signup("ann@example.com").await;
    let t = app.file_ticket(&ann, "VPN drops every hour", "Since the update the VPN disconnects.").await;
    let number = t["number"].as_i64().unwrap();
    // A stranger forging the tag gets a ticket of their own.
    let forged = message("mallory@evil.example", &format!("Re: [#{number}] VPN"), "", "Send me the logs.");
    assert_eq!(mail_in(&app, &url, &forged), Some(0));
    // An out-of-office and a bounce are stored but file nothing.
    let ooo = message(
        "ann@example.com",
        &format!("Out of office: [#{number}]"),
        "Auto-Submitted: auto-replied\r\n",
        "Back Monday.",
    );
    let bounce = message(
        "MAILER-DAEMON@mx.example",
        "Undelivered Mail Returned to Sender",
        "Return-Path: <>\r\n",
        "The mail could not be delivered.",
    );
    assert_eq!(mail_in(&app, &url, &ooo), Some(0));
    assert_eq!(mail_in(&app, &url, &bounce), Some(0));
    app.drain().await;
    let all = tickets(&app, &admin.token).await;
    assert_eq!(all.len(), 2, "the forged tag filed its own ticket: {all:?}");
    let (_, comments) =
        app.get(&format!("/api/tickets/{}/comments", t["id"].as_str().unwrap()), Some(&ann.token)).await;
    assert_eq!(comments["comments"], json!([]), "nothing reached Ann's ticket");
    let ignored = app.db.inbound_in_state(InboundState::Ignored, 10).await.unwrap();
    assert_eq!(ignored.len(), 2, "{ignored:?}");
    assert!(ignored.iter().all(|m| m.reason.is_some() && m.ticket_id.is_none()));
}

async fn mail_in_stores_once_and_exits_as_an_mta_expects(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.database_url.clone();
    let m = message("bob@example.org", "Invoice question", "", "Why was I charged twice?");
    assert_eq!(mail_in(&app, &url, &m), Some(0));
    assert_eq!(mail_in(&app, &url, &m), Some(0), "the same message again is no error");
    assert_eq!(mail_in(&app, &url, "this is not a message"), Some(65), "EX_DATAERR");
    assert_eq!(mail_in(&app, &url, ""), Some(65));
    let unreachable = "postgres://smart_ticket:x@127.0.0.1:1/none";
    assert_eq!(mail_in(&app, unreachable, &m), Some(75), "EX_TEMPFAIL: the MTA retries");
    app.drain().await;
    let stored = app.db.inbound_in_state(InboundState::Ingested, 10).await.unwrap();
    assert_eq!(stored.len(), 1, "stored once");
    let kept = app.db.inbound(stored[0].id).await.unwrap().unwrap();
    assert_eq!(kept.raw, m.as_bytes(), "the raw message is kept as it came");
}

async fn admins_see_set_aside_mail_and_retry_or_dismiss_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.database_url.clone();
    let admin = app.admin().await;
    let user = app.signup("ann@example.com").await;
    let no_sender = "Subject: who sent this?\r\nMessage-ID: <nosender@x>\r\n\r\nno From header";
    let ooo = message("bob@example.org", "Out of office", "X-Autoreply: yes\r\n", "Away.");
    assert_eq!(mail_in(&app, &url, no_sender), Some(0), "a message without a sender is still kept");
    assert_eq!(mail_in(&app, &url, &ooo), Some(0));
    app.drain().await;
    let (status, list) = app.get("/api/admin/mail", Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let refused = list["messages"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{list}");
    assert_eq!(refused[0]["subject"], "who sent this?");
    assert!(refused[0]["reason"].as_str().unwrap().contains("sender"), "{list}");
    let (_, ignored) = app.get("/api/admin/mail?state=ignored", Some(&admin.token)).await;
    let ignored = ignored["messages"].as_array().unwrap().clone();
    assert_eq!((ignored.len(), ignored[0]["from"].as_str()), (1, Some("bob@example.org")));
    assert_eq!(app.get("/api/admin/mail?state=lost", Some(&admin.token)).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/api/admin/mail", Some(&user.token)).await.0, StatusCode::FORBIDDEN);

    // Retried, the auto-reply is read again (and set aside again); dismissed, the refused one leaves the list.
    let ooo_id = ignored[0]["id"].as_i64().unwrap();
    let (status, body) = app.post(&format!("/api/admin/mail/{ooo_id}/retry"), Some(&admin.token), json!({})).await;
    assert_eq!((status, body["message"]["state"].as_str()), (StatusCode::OK, Some("stored")), "{body}");
    app.drain().await;
    assert_eq!(app.get("/api/admin/mail?state=ignored", Some(&admin.token)).await.1["messages"][0]["id"], ooo_id);
    let refused_id = refused[0]["id"].as_i64().unwrap();
    let (status, body) =
        app.post(&format!("/api/admin/mail/{refused_id}/dismiss"), Some(&admin.token), json!({})).await;
    assert_eq!((status, body["message"]["state"].as_str()), (StatusCode::OK, Some("dismissed")), "{body}");
    assert_eq!(app.get("/api/admin/mail", Some(&admin.token)).await.1["messages"], json!([]));
    let again = app.post(&format!("/api/admin/mail/{refused_id}/dismiss"), Some(&admin.token), json!({})).await.0;
    assert_eq!(again, StatusCode::CONFLICT, "only refused or ignored mail can be dismissed");
    assert_eq!(app.post("/api/admin/mail/999999/retry", Some(&admin.token), json!({})).await.0, StatusCode::NOT_FOUND);
}

async fn a_sender_over_the_hourly_limit_is_set_aside(backend: Backend) {
    use smart_ticket::mail::inbound::{SENDER_LIMIT_PER_HOUR, receive};
    let app = TestApp::spawn(backend).await;
    for i in 0..=SENDER_LIMIT_PER_HOUR {
        let m = message("loop@bot.example", &format!("Ticket update {i}"), "", "Automated status.");
        assert!(receive(&app.db, m.as_bytes(), m.len(), usize::MAX).await.unwrap());
    }
    app.drain().await;
    let refused = app.db.inbound_in_state(InboundState::Rejected, 10).await.unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].reason.as_deref().unwrap().contains("mail loop"), "{refused:?}");
    let filed = app.db.inbound_in_state(InboundState::Ingested, 100).await.unwrap();
    assert_eq!(filed.len() as i64, SENDER_LIMIT_PER_HOUR);
}

/// The mail written to the outbox under notification key `key`.
pub(crate) fn sent(app: &TestApp, key: &str) -> Vec<u8> {
    let name: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    std::fs::read(app.dir.join("outbox").join(format!("{name}.eml"))).unwrap_or_else(|e| panic!("{key}: {e}"))
}

async fn a_staff_reply_goes_out_threaded_and_the_answer_comes_back(backend: Backend) {
    let (dir, url) = fresh_database(backend).await;
    let mut settings = pipeline_settings(&dir, model_dir());
    settings.mail.support_address = Some("Support <support@example.com>".into());
    let app = TestApp::start_with(dir, url.clone(), settings).await;
    let admin = app.admin().await;
    let first = message("carl@customer.example", "Cannot export reports", "", "The export button does nothing.");
    let first_id = first.lines().find_map(|l| l.strip_prefix("Message-ID: <")).unwrap().trim().trim_end_matches('>');
    assert_eq!(mail_in(&app, &url, &first), Some(0));
    app.drain().await;
    let t = tickets(&app, &admin.token).await.remove(0);
    let (id, number) = (t["id"].as_str().unwrap(), t["number"].as_i64().unwrap());

    // The assignee's notification is automatic and part of the ticket's thread.
    let assigned = sent(&app, &format!("assigned:{id}:{}", t["assigned_to"].as_str().unwrap()));
    let assigned = mail_parser::MessageParser::default().parse(&assigned).unwrap();
    assert_eq!(assigned.header_raw("Auto-Submitted").map(str::trim), Some("auto-generated"));
    assert_eq!(assigned.in_reply_to().as_text(), Some(first_id));

    let (status, c) = app
        .post(&format!("/api/tickets/{id}/comments"), Some(&admin.token), json!({ "body": "Try the CSV option." }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    app.drain().await;
    let raw = sent(&app, &format!("reply:{}", c["comment"]["id"]));
    let reply = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert!(reply.subject().unwrap().contains(&format!("[#{number}]")), "{:?}", reply.subject());
    assert_eq!(reply.in_reply_to().as_text(), Some(first_id), "threaded under the customer's message");
    assert_eq!(reply.references().as_text(), Some(first_id));
    let reply_to = reply.reply_to().and_then(|a| a.first()).and_then(|a| a.address());
    assert_eq!(reply_to, Some("support@example.com"));
    assert!(reply.header_raw("Auto-Submitted").is_none(), "a person's words are not automatic mail");
    let ours = reply.message_id().unwrap().to_owned();
    assert!(ours.len() > 64, "an unguessable id: {ours}");

    // The customer answers the mail (no tag in the subject): it threads by our Message-ID.
    let answer = message(
        "carl@customer.example",
        "Re: your message",
        &format!("In-Reply-To: <{ours}>\r\nReferences: <{first_id}> <{ours}>\r\n"),
        "CSV works, thanks!\r\n\r\nOn Tue, Support wrote:\r\n> Try the CSV option.",
    );
    assert_eq!(mail_in(&app, &url, &answer), Some(0));
    app.drain().await;
    assert_eq!(tickets(&app, &admin.token).await.len(), 1);
    let (_, comments) = app.get(&format!("/api/tickets/{id}/comments"), Some(&admin.token)).await;
    let bodies: Vec<&str> =
        comments["comments"].as_array().unwrap().iter().map(|c| c["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["Try the CSV option.", "CSV works, thanks!"]);

    // Our reply bounces: no ticket, never answered, and staff see on the ticket that it did not arrive.
    let bounce = format!(
        "From: MAILER-DAEMON@mx.customer.example\r\nTo: support@example.com\r\nSubject: Undelivered Mail\r\n\
         Return-Path: <>\r\nMessage-ID: <dsn-1@mx.customer.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n\
         --b\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; carl@customer.example\r\nAction: failed\r\n\r\n\
         --b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{ours}>\r\nSubject: [#{number}] New reply\r\n\r\n--b--\r\n"
    );
    assert_eq!(mail_in(&app, &url, &bounce), Some(0));
    app.drain().await;
    assert_eq!(tickets(&app, &admin.token).await.len(), 1, "a bounce files nothing");
    let (_, events) = app.get(&format!("/api/tickets/{id}/events"), Some(&admin.token)).await;
    let bounced: Vec<&Value> =
        events["events"].as_array().unwrap().iter().filter(|e| e["field"] == "mail_undeliverable").collect();
    assert_eq!(bounced.len(), 1, "{events}");
    assert_eq!(bounced[0]["new_value"]["message_id"], ours.as_str());
}

#[test]
fn messages_are_read_and_replies_trimmed() {
    let raw = "From: =?UTF-8?Q?Zo=C3=AB?= <zoe@example.com>\r\nSubject: =?ISO-8859-1?Q?Caf=E9_machine?=\r\n\
               Message-ID: <a1@x>\r\nIn-Reply-To: <b2@y>\r\nReferences: <c3@z> <b2@y>\r\n\
               Content-Type: text/html; charset=windows-1252\r\n\r\n<p>Hello <b>there</b></p>";
    let p = parse(raw.as_bytes()).unwrap();
    assert_eq!(p.from.as_str(), "zoe@example.com");
    assert_eq!(p.subject, "Café machine");
    assert_eq!(p.message_id.as_deref(), Some("a1@x"));
    assert_eq!(p.references, ["b2@y", "c3@z"]);
    assert!(p.text.contains("Hello") && p.text.contains("there") && !p.text.contains("<b>"), "{}", p.text);
    assert!(p.automatic.is_none());
    assert_eq!(reply_text("Thanks!\n\nOn Tue, Bob wrote:\n> old"), "Thanks!");
    assert_eq!(reply_text("Fine now.\n-----Original Message-----\nFrom: x"), "Fine now.");
    assert_eq!(reply_text("Ok\n-- \nBob\nACME"), "Ok");
    assert_eq!(tagged_number("Re: [#42] printer"), Some(42));
    assert_eq!(tagged_number("Re: [#x] printer"), None);
}
