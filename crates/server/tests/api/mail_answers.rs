//! Answers by e-mail: off until an admin turns them on; then a new e-mailed ticket is answered with the public
//! articles that match it (none when none does), stays open and routed, and the customer's "solved" reply or
//! the mail's link resolves it as deflected.

use crate::articles::{VPN, publish, write};
use crate::helpers::{Backend, TestApp, on_both_backends};
use crate::mail_in::{mail_in, message, sent, tickets};
use crate::web::Browser;
use reqwest::StatusCode;
use serde_json::{Value, json};
use smart_ticket::desk::mail_answers::says_solved;

on_both_backends!(
    answers_by_email_are_off_until_an_admin_turns_them_on,
    an_emailed_ticket_is_answered_with_articles_and_solved_by_reply_or_link,
);

const VPN_MAIL: &str = "Working from home, my VPN keeps disconnecting: the connection drops whenever it sits idle \
                        for a few minutes. Which VPN client version or setting stops the drops?";

const HISTORY: [(&str, &str); 24] = [
    ("Printer on floor 3 jams", "The printer jams on every second page since Monday."),
    ("Invoice shows the wrong amount", "My November invoice charges two seats but we only have one."),
    ("Cannot log in after password change", "Since I changed my password the login page says invalid."),
    ("Export to CSV is empty", "The report export produces an empty CSV file."),
    ("Laptop battery drains fast", "My laptop battery lasts an hour since the last update."),
    ("Add a new user to our account", "How do I invite a colleague to our team account?"),
    ("Dashboard loads slowly", "The dashboard takes a minute to load every morning."),
    ("Outlook does not sync calendar", "Meetings I accept on my phone never show in Outlook."),
    ("Refund for a double charge", "My credit card was charged twice for the annual plan."),
    ("Two-factor codes are rejected", "The authenticator codes are refused although the clock is right."),
    ("Webhook deliveries fail", "Our endpoint gets no webhook calls since yesterday evening."),
    ("Change the company name on invoices", "We renamed the company; invoices should show the new name."),
    ("Mobile app crashes on start", "The Android app closes right after the splash screen."),
    ("Search finds nothing", "Searching for a customer by name returns no results."),
    ("Cannot upload a PDF", "Uploading a 3 MB PDF fails with an error."),
    ("Delete my account", "Please delete my account and all my data."),
    ("Monitor flickers", "The second monitor flickers when connected by HDMI."),
    ("Keyboard layout is wrong", "The keyboard types Y instead of Z since the update."),
    ("Shared drive is read-only", "I cannot save files to the shared team drive anymore."),
    ("Email signature missing", "My signature is not added to replies in the web mail."),
    ("API rate limit too low", "We hit the API rate limit during the nightly import."),
    ("Time zone of reports is wrong", "Reports show times in UTC instead of Berlin time."),
    ("Projector does not detect laptop", "The meeting room projector shows no signal from my laptop."),
    ("Licence renewal quote", "Could you send a quote for renewing 25 licences?"),
];

/// The outbox's answer to ticket `id`, if one was mailed: its text and Message-ID.
fn answer_of(app: &TestApp, id: &str) -> Option<(String, String)> {
    let path = app.dir.join("outbox").join(format!("answer_{id}.eml"));
    path.exists().then(|| {
        let raw = sent(app, &format!("answer:{id}"));
        let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
        (msg.body_text(0).unwrap().into_owned(), msg.message_id().unwrap().to_owned())
    })
}

/// The ticket filed by the newest mail from `from`.
async fn ticket_from(app: &TestApp, token: &str, title: &str) -> Value {
    tickets(app, token).await.into_iter().find(|t| t["title"] == title).expect("the mail filed a ticket")
}

async fn answers_by_email_are_off_until_an_admin_turns_them_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.database_url.clone();
    let admin = app.admin().await;
    let vpn = write(&app, &admin, json!({"title": "VPN keeps disconnecting at home", "body": VPN})).await;
    publish(&app, &admin, vpn["id"].as_i64().unwrap()).await;
    let (status, settings) = app.get("/api/admin/settings", Some(&admin.token)).await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["email_answers"], false);
    assert!(settings["email_answer_min_cosine"].as_f64().unwrap() > 0.0);
    // Only admins see or change them; a wrong value is refused with the field named.
    let ann = app.signup("ann@example.com").await;
    assert_eq!(app.get("/api/admin/settings", Some(&ann.token)).await.0, StatusCode::FORBIDDEN);
    let on = json!({"email_answers": true});
    assert_eq!(app.patch("/api/admin/settings", Some(&ann.token), on.clone()).await.0, StatusCode::FORBIDDEN);
    let (status, body) = app.patch("/api/admin/settings", Some(&admin.token), json!({"email_answers": "yes"})).await;
    assert!(status.is_client_error(), "{status} {body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    let (status, body) = app.patch("/api/admin/settings", Some(&admin.token), json!({"answers": true})).await;
    assert!(status.is_client_error(), "{status} {body}");

    // Off: a matching e-mailed ticket is filed and routed, and not answered.
    assert_eq!(
        mail_in(&app, &url, &message("carl@customer.example", "VPN keeps disconnecting at home", "", VPN_MAIL)),
        Some(0)
    );
    app.drain().await;
    let t = ticket_from(&app, &admin.token, "VPN keeps disconnecting at home").await;
    assert!(answer_of(&app, t["id"].as_str().unwrap()).is_none(), "no answer while the setting is off");

    // The dashboard's form turns them on.
    let pages = Browser::login(&app, "root@example.com", "root-password").await;
    let (status, html) = pages.get("/admin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"email-answers\"") && !html.contains("id=\"email-answers\" checked"), "{html}");
    assert_eq!(pages.post("/admin/settings", &[("email_answers", "on")], true).await.0, StatusCode::SEE_OTHER);
    assert_eq!(app.get("/api/admin/settings", Some(&admin.token)).await.1["email_answers"], true);
    assert_eq!(pages.post("/admin/settings", &[], true).await.0, StatusCode::SEE_OTHER);
    assert_eq!(app.get("/api/admin/settings", Some(&admin.token)).await.1["email_answers"], false);
}

async fn an_emailed_ticket_is_answered_with_articles_and_solved_by_reply_or_link(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.database_url.clone();
    let admin = app.admin().await;
    let vpn = write(&app, &admin, json!({"title": "VPN keeps disconnecting at home", "body": VPN})).await;
    let billing = json!({"title": "Change the billing address", "body": "Open Billing, then Address, and save."});
    let billing = write(&app, &admin, billing).await;
    for a in [&vpn, &billing] {
        publish(&app, &admin, a["id"].as_i64().unwrap()).await;
    }
    // A draft and an internal article on the same problem are never mailed.
    write(&app, &admin, json!({"title": "VPN disconnects (draft)", "body": VPN})).await;
    let internal = json!({"title": "VPN disconnects (staff)", "body": VPN, "audience": "internal"});
    let internal = write(&app, &admin, internal).await;
    publish(&app, &admin, internal["id"].as_i64().unwrap()).await;
    let (status, _) = app.patch("/api/admin/settings", Some(&admin.token), json!({"email_answers": true})).await;
    assert_eq!(status, StatusCode::OK);
    // The desk's history (each problem three times): what its tickets share is what the comparison leaves out.
    let history = app.signup("history@example.com").await;
    for round in 1..=3 {
        for (title, text) in HISTORY {
            app.file_ticket(&history, title, &format!("{text} ({round})")).await;
        }
    }

    let first = message("Carl <carl@customer.example>", "VPN keeps disconnecting at home", "", VPN_MAIL);
    assert_eq!(mail_in(&app, &url, &first), Some(0));
    let coffee = "The coffee machine on the second floor leaks water onto the carpet every morning.";
    assert_eq!(mail_in(&app, &url, &message("dora@customer.example", "Coffee machine leaks", "", coffee)), Some(0));
    app.drain().await;
    let t = ticket_from(&app, &admin.token, "VPN keeps disconnecting at home").await;
    let id = t["id"].as_str().unwrap().to_owned();
    let probe = json!({"title": "VPN keeps disconnecting at home", "description": VPN_MAIL});
    let offered = app.post("/api/articles/suggest", Some(&admin.token), probe).await.1;
    let (text, answer_id) = answer_of(&app, &id).unwrap_or_else(|| panic!("an answer was mailed: {offered}"));
    let vpn_path = format!("/help/{}-vpn-keeps-disconnecting-at-home", vpn["id"]);
    assert!(text.contains(&vpn_path), "the matching article is linked: {text}");
    assert!(!text.contains("billing") && !text.contains("draft") && !text.contains("(staff)"), "{text}");
    assert_eq!(t["status"], "open", "the ticket stays open");
    assert!(t["assigned_to"].is_string(), "and is routed as usual: {t}");
    let coffee_ticket = ticket_from(&app, &admin.token, "Coffee machine leaks").await;
    assert!(answer_of(&app, coffee_ticket["id"].as_str().unwrap()).is_none(), "no article matches it");
    let token = text.split("/help/answered/").nth(1).expect("the mail's link").split_whitespace().next().unwrap();
    // The team resolves the unanswered one; its requester's "Fixed, thanks!" neither reopens it nor counts as a
    // deflection, while a real follow-up reopens it.
    let coffee_id = coffee_ticket["id"].as_str().unwrap().to_owned();
    let done = json!({"status": "resolved", "resolution": "Replaced the machine's seal."});
    assert_eq!(app.patch(&format!("/api/tickets/{coffee_id}"), Some(&admin.token), done).await.0, StatusCode::OK);
    let coffee_reply = |body: &str| message("dora@customer.example", "Re: Coffee machine leaks", "", body);
    let number = coffee_ticket["number"].as_i64().unwrap();
    let tagged = |body: &str| coffee_reply(body).replace("Re: Coffee", &format!("Re: [#{number}] Coffee"));
    assert_eq!(mail_in(&app, &url, &tagged("Fixed, thanks!")), Some(0));
    app.drain().await;
    let status_of = |v: Value| v["ticket"]["status"].clone();
    assert_eq!(status_of(app.get(&format!("/api/tickets/{coffee_id}"), Some(&admin.token)).await.1), "resolved");
    assert_eq!(mail_in(&app, &url, &tagged("It leaks again since this morning.")), Some(0));
    app.drain().await;
    assert_eq!(status_of(app.get(&format!("/api/tickets/{coffee_id}"), Some(&admin.token)).await.1), "open");

    // The link's page needs no sign-in and changes nothing by being opened; a made-up token finds nothing.
    let (visitor, status, html) = Browser::visit(&app, &format!("/help/answered/{token}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("VPN keeps disconnecting at home") && html.contains("This solved it"), "{html}");
    assert_eq!(visitor.get(&format!("/help/answered/{}x", token)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/api/tickets/{id}"), Some(&admin.token)).await.1["ticket"]["status"], "open");

    // "It is not solved" keeps the ticket open; "Solved, thanks!" resolves it as deflected.
    let reply = |body: &str| {
        let headers = format!("In-Reply-To: <{answer_id}>\r\nReferences: <{answer_id}>\r\n");
        message("carl@customer.example", "Re: Answers that may help", &headers, body)
    };
    assert_eq!(mail_in(&app, &url, &reply("Sadly this is still not solved.")), Some(0));
    app.drain().await;
    assert_eq!(app.get(&format!("/api/tickets/{id}"), Some(&admin.token)).await.1["ticket"]["status"], "open");
    assert_eq!(mail_in(&app, &url, &reply("Solved, thanks!\r\n\r\nOn Tue, Support wrote:\r\n> ...")), Some(0));
    app.drain().await;
    let resolved = app.get(&format!("/api/tickets/{id}"), Some(&admin.token)).await.1["ticket"].clone();
    assert_eq!(resolved["status"], "resolved", "{resolved}");
    assert!(resolved["resolution"].as_str().unwrap().contains("VPN keeps disconnecting at home"), "{resolved}");
    let (_, report) = app.get("/api/admin/knowledge", Some(&admin.token)).await;
    assert_eq!(report["deflections"], 1, "{report}");
    assert_eq!(report["mail_answers"], json!({"mailed": 1, "solved": 1}), "{report}");
    // The link now says so, and offers nothing more to click.
    let (_, html) = visitor.get(&format!("/help/answered/{token}")).await;
    assert!(html.contains("answered-solved") && !html.contains("This solved it"), "{html}");

    // Another customer's answer, solved by the link: once, and only by an article it offered.
    let second = message("erin@customer.example", "VPN keeps disconnecting at home", "", VPN_MAIL);
    assert_eq!(mail_in(&app, &url, &second), Some(0));
    app.drain().await;
    let t2 = tickets(&app, &admin.token)
        .await
        .into_iter()
        .find(|t| t["title"] == "VPN keeps disconnecting at home" && t["id"] != json!(id));
    let t2 = t2.expect("her mail filed a ticket");
    let id2 = t2["id"].as_str().unwrap().to_owned();
    let probe = json!({"title": "VPN keeps disconnecting at home", "description": VPN_MAIL});
    let offered = app.post("/api/articles/suggest", Some(&admin.token), probe).await.1;
    let (text2, _) = answer_of(&app, &id2).unwrap_or_else(|| panic!("answered too: {offered}"));
    let token2 = text2.split("/help/answered/").nth(1).unwrap().split_whitespace().next().unwrap();
    let path2 = format!("/help/answered/{token2}");
    let (visitor2, _, _) = Browser::visit(&app, &path2).await;
    let other = billing["id"].to_string();
    assert_eq!(visitor2.post(&path2, &[("article", &other)], true).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(visitor2.post(&path2, &[("article", "x")], true).await.0, StatusCode::BAD_REQUEST);
    let chosen = vpn["id"].to_string();
    assert_eq!(visitor2.post(&path2, &[("article", &chosen)], false).await.0, StatusCode::FORBIDDEN, "CSRF");
    let (status, html) = visitor2.post(&path2, &[("article", &chosen)], true).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("answered-solved"), "{html}");
    assert_eq!(visitor2.post(&path2, &[("article", &chosen)], true).await.0, StatusCode::OK, "again: no change");
    assert_eq!(app.get(&format!("/api/tickets/{id2}"), Some(&admin.token)).await.1["ticket"]["status"], "resolved");
    let (_, report) = app.get("/api/admin/knowledge", Some(&admin.token)).await;
    assert_eq!((report["deflections"].clone(), report["mail_answers"]["solved"].clone()), (json!(2), json!(2)));
}

#[test]
fn a_solved_reply_is_short_and_not_negated_in_any_of_the_five_languages() {
    for yes in
        ["Solved, thanks!", "That fixed it.", "Gelöst, danke!", "C'est résolu, merci", "¡Resuelto!", "Resolvido."]
    {
        assert!(says_solved(yes), "{yes}");
    }
    for no in [
        "Not solved.",
        "It is still not solved",
        "Das ist nicht gelöst",
        "Ce n'est pas résolu",
        "No está resuelto",
        "Não resolvido",
        "Solved? I do not think so",
        "Thanks",
        "I tried the article and it solved the first problem but now the printer makes a loud noise and the \
         screen flickers",
    ] {
        assert!(!says_solved(no), "{no}");
    }
}
