//! The web application in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! installed by `scripts/test`), driven over WebDriver with thirtyfour. Each page visited is saved
//! as a screenshot under `$CARGO_TARGET_TMPDIR/screenshots/<backend>/`.

use serde_json::json;
use smart_ticket_domain::{JobKind, JobState, Role};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use thirtyfour::ChromiumLikeCapabilities;
use thirtyfour::prelude::*;

use crate::helpers::{Backend, TestApp, on_both_backends};

on_both_backends!(
    every_role_does_its_daily_work_in_the_browser,
    a_customer_solves_it_with_a_suggested_article,
    a_moderator_applies_a_macro_and_inserts_a_canned_response_with_the_keyboard,
);

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long to wait for the page to show what the pipeline did (it polls every few seconds).
const PATIENCE: Duration = Duration::from_secs(30);

/// A chromedriver process on a free port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_chromedriver() -> Driver {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
        "browser tests need Debian's chromium and chromium-driver: run `make test` (scripts/test installs them) \
         or `apt-get install -y chromium chromium-driver`"
    );
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < PATIENCE, "chromedriver did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, url: format!("http://127.0.0.1:{port}") }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> WebDriver {
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(CHROMIUM).unwrap();
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
    ] {
        caps.add_arg(arg).unwrap();
    }
    caps.add_arg(&format!("--user-data-dir={}", profile.display())).unwrap();
    // Chromium sometimes exits while starting on a loaded machine ("Chrome instance exited"): start it again,
    // at most three times in all; what the test then checks is unchanged.
    let mut tries = 1;
    loop {
        match WebDriver::new(&driver.url, caps.clone()).await {
            Ok(session) => return session,
            Err(e) if tries < 3 => eprintln!("Chromium did not start (try {tries} of 3): {e}"),
            Err(e) => panic!("a Chromium session: {e}"),
        }
        tries += 1;
    }
}

struct Shots {
    dir: PathBuf,
    n: usize,
}

impl Shots {
    async fn take(&mut self, web: &WebDriver, name: &str) {
        self.n += 1;
        let path = self.dir.join(format!("{:02}-{name}.png", self.n));
        web.screenshot(&path).await.unwrap();
    }
}

/// Waits until the element `by` exists and its text contains `needle` (the page may refresh itself meanwhile).
async fn wait_for_text(web: &WebDriver, by: By, needle: &str) -> String {
    let started = Instant::now();
    loop {
        if let Ok(el) = web.find(by.clone()).await
            && let Ok(text) = el.text().await
            && text.contains(needle)
        {
            return text;
        }
        if started.elapsed() > PATIENCE {
            let page = web.source().await.unwrap_or_default();
            panic!("{by:?} never showed {needle:?}; page:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn fill(web: &WebDriver, by: By, text: &str) {
    let el = web.find(by).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn log_in(web: &WebDriver, base: &str, email: &str, password: &str) {
    web.delete_all_cookies().await.unwrap();
    web.goto(format!("{base}/login")).await.unwrap();
    fill(web, By::Id("email"), email).await;
    fill(web, By::Id("password"), password).await;
    web.find(By::Id("login-submit")).await.unwrap().click().await.unwrap();
    wait_for_text(web, By::Id("who"), email).await;
}

async fn every_role_does_its_daily_work_in_the_browser(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = app.base.clone();
    let admin_api = app.admin().await;
    app.account("mod@example.com", Role::Moderator, &["printers", "networking"]).await;
    // History to suggest from: a resolved ticket like the one the user will file.
    let past_user = app.signup("old@example.com").await;
    let past = app
        .file_ticket(&past_user, "Office printer jams on page two", "The printer on floor 3 jams after the first page.")
        .await;
    app.drain().await;
    let past_id = past["id"].as_str().unwrap();
    let (status, body) = app
        .patch(
            &format!("/api/tickets/{past_id}"),
            Some(&admin_api.token),
            json!({ "status": "resolved", "resolution": "Replaced the worn pickup roller in tray 2." }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    app.drain().await;
    // A dead job for the admin to retry.
    app.db
        .enqueue(&smart_ticket::db::NewJob {
            kind: JobKind::EmailSend,
            payload: json!({ "broken": true }),
            idempotency_key: "browser-dead-job".into(),
        })
        .await
        .unwrap();
    let lease = smart_ticket::model::Ts::now() + chrono::Duration::minutes(5);
    let dead_id = loop {
        let job = app.db.claim_job(&[JobKind::EmailSend], "test", lease).await.unwrap().expect("the job is claimable");
        let state = app.db.fail_job(job.id, "test", "simulated failure", smart_ticket::model::Ts::now()).await.unwrap();
        if state == Some(JobState::Dead) {
            break job.id;
        }
    };

    let driver = start_chromedriver();
    let shots_dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots").join(format!("{backend:?}").to_lowercase());
    let _ = std::fs::remove_dir_all(&shots_dir);
    std::fs::create_dir_all(&shots_dir).unwrap();
    let mut shots = Shots { dir: shots_dir, n: 0 };
    let web = browser(&driver, &app.dir.join("chromium-profile")).await;

    // A user signs up and files a ticket; a second draft shows the live duplicate hint.
    web.goto(format!("{base}/signup")).await.unwrap();
    shots.take(&web, "signup").await;
    fill(&web, By::Id("email"), "ann@example.com").await;
    fill(&web, By::Id("password"), "ann-password-1").await;
    web.find(By::Id("signup-submit")).await.unwrap().click().await.unwrap();
    wait_for_text(&web, By::Tag("h1"), "My tickets").await;
    shots.take(&web, "my-tickets-empty").await;
    web.find(By::Id("new-ticket")).await.unwrap().click().await.unwrap();
    wait_for_text(&web, By::Tag("h1"), "New ticket").await;
    fill(&web, By::Id("title"), "Printer jams after the first page").await;
    fill(&web, By::Id("description"), "Our office printer jams after printing one page, since this morning.").await;
    shots.take(&web, "new-ticket").await;
    web.find(By::Id("file-ticket")).await.unwrap().click().await.unwrap();
    wait_for_text(&web, By::Id("ticket-title"), "Printer jams after the first page").await;
    let ticket_url = web.current_url().await.unwrap().to_string();
    assert_eq!(wait_for_text(&web, By::Id("ticket-assignee"), "unassigned").await, "unassigned");
    // The pipeline triages and routes it; the open page refreshes itself.
    app.drain().await;
    wait_for_text(&web, By::Id("ticket-assignee"), "mod@example.com").await;
    let category = web.find(By::Id("ticket-category")).await.unwrap().text().await.unwrap();
    assert_ne!(category, "not triaged yet");
    shots.take(&web, "ticket-triaged-and-assigned").await;
    web.goto(format!("{base}/tickets/new")).await.unwrap();
    fill(&web, By::Id("title"), "Printer jams after the first page again").await;
    fill(&web, By::Id("description"), "The office printer jams after printing one page.").await;
    let hint = wait_for_text(&web, By::Id("similar-hint"), "Printer jams after the first page").await;
    assert!(hint.contains("alike"), "{hint}");
    shots.take(&web, "duplicate-hint").await;

    // The moderator sees the AI's work and the suggestions, writes a note and a reply, and resolves.
    log_in(&web, &base, "mod@example.com", "password-123").await;
    wait_for_text(&web, By::Id("ticket-list"), "Printer jams after the first page").await;
    shots.take(&web, "moderator-queue").await;
    web.goto(&ticket_url).await.unwrap();
    wait_for_text(&web, By::Id("ai-panel"), "AI triage").await;
    let note = web.find(By::Id("ai-note")).await.unwrap().text().await.unwrap();
    assert!(!note.trim().is_empty());
    let suggestions = wait_for_text(&web, By::Id("suggestions"), "Replaced the worn pickup roller").await;
    assert!(suggestions.contains(&format!("#{}", past["number"])), "{suggestions}");
    // The moderator says the suggestion helped; the page comes back with the verdict shown.
    let helpful = format!("helpful-{}", past["number"]);
    web.find(By::Id(helpful.clone())).await.unwrap().click().await.unwrap();
    let started = Instant::now();
    // The page is replaced after the post: an element found just before may go stale; look again.
    loop {
        let class = match web.find(By::Id(helpful.clone())).await {
            Ok(el) => el.class_name().await.ok().flatten().unwrap_or_default(),
            Err(_) => String::new(),
        };
        if class.contains("current") {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "the verdict never showed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    web.find(By::Id("insert-draft")).await.unwrap().click().await.unwrap();
    let drafted = web.find(By::Id("reply-body")).await.unwrap().prop("value").await.unwrap().unwrap_or_default();
    assert!(drafted.contains("pickup roller"), "the drafted reply went into the reply box: {drafted}");
    shots.take(&web, "moderator-ticket").await;
    fill(&web, By::Id("reply-body"), "Internal: roller stock is in the supply room.").await;
    web.find(By::Id("internal")).await.unwrap().click().await.unwrap();
    web.find(By::Id("send-reply")).await.unwrap().click().await.unwrap();
    wait_for_text(&web, By::Id("live"), "roller stock is in the supply room").await;
    fill(&web, By::Id("reply-body"), "We are replacing the pickup roller today.").await;
    web.find(By::Id("send-reply")).await.unwrap().click().await.unwrap();
    wait_for_text(&web, By::Id("live"), "We are replacing the pickup roller today.").await;
    fill(&web, By::Id("resolution"), "Replaced the pickup roller; test pages print cleanly.").await;
    web.find(By::Id("resolve")).await.unwrap().click().await.unwrap();
    wait_for_text(&web, By::Id("ticket-status"), "resolved").await;
    shots.take(&web, "moderator-resolved").await;

    // The user sees the reply and the resolution, never the internal note.
    log_in(&web, &base, "ann@example.com", "ann-password-1").await;
    web.goto(&ticket_url).await.unwrap();
    let live = wait_for_text(&web, By::Id("live"), "We are replacing the pickup roller today.").await;
    assert!(live.contains("Replaced the pickup roller; test pages print cleanly."), "{live}");
    assert!(!web.source().await.unwrap().contains("roller stock is in the supply room"), "internal note leaked");
    shots.take(&web, "user-sees-resolution").await;

    // The admin changes an account's role and skills, and retries the dead job. An open urgent ticket
    // gives the dashboard something to chart.
    app.file_ticket(&past_user, "Checkout is down for all users", "Outage: every payment fails with error 502.").await;
    app.drain().await;
    log_in(&web, &base, "root@example.com", "root-password").await;
    wait_for_text(&web, By::Id("open-count"), "1").await;
    shots.take(&web, "admin-dashboard").await;
    web.goto(format!("{base}/admin/users?q=old%40example.com")).await.unwrap();
    let row = web.find(By::Css("tr[data-email='old@example.com']")).await.unwrap();
    row.find(By::Css("select[name='role'] option[value='moderator']")).await.unwrap().click().await.unwrap();
    let skills = row.find(By::Css("input[name='skills']")).await.unwrap();
    skills.clear().await.unwrap();
    skills.send_keys("billing, postgres").await.unwrap();
    row.find(By::Css("button[type='submit']")).await.unwrap().click().await.unwrap();
    wait_for_text(&web, By::Css(".flash"), "Saved old@example.com").await;
    shots.take(&web, "admin-users").await;
    let changed =
        app.db.user_by_email(&smart_ticket_domain::Email::parse("old@example.com").unwrap()).await.unwrap().unwrap();
    assert_eq!(changed.role, Role::Moderator);
    assert_eq!(changed.skills, vec!["billing".to_owned(), "postgres".to_owned()]);
    web.goto(format!("{base}/admin/jobs")).await.unwrap();
    wait_for_text(&web, By::Css(format!("tr[data-job='{dead_id}']")), "simulated failure").await;
    shots.take(&web, "admin-dead-jobs").await;
    web.find(By::Id(format!("retry-{dead_id}"))).await.unwrap().click().await.unwrap();
    wait_for_text(&web, By::Css(".flash"), "queued again").await;
    assert_eq!(app.db.job(dead_id).await.unwrap().unwrap().state, JobState::Queued);
    web.goto(format!("{base}/admin/ai")).await.unwrap();
    wait_for_text(&web, By::Id("acc-suggestions"), "100%").await;
    for (path, name) in [("/admin/taxonomy", "admin-taxonomy"), ("/admin/ai", "admin-ai-quality")] {
        web.goto(format!("{base}{path}")).await.unwrap();
        wait_for_text(&web, By::Tag("h1"), if name == "admin-taxonomy" { "Taxonomy" } else { "AI quality" }).await;
        shots.take(&web, name).await;
    }
    web.quit().await.unwrap();
    assert!(shots.n >= 14, "a screenshot per page");
}

/// Self-service: a customer types a question, opens the article offered, says it solved it; no ticket exists.
async fn a_customer_solves_it_with_a_suggested_article(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = app.base.clone();
    let admin = app.admin().await;
    let body = "Home routers close idle connections. Update the VPN client and turn on **keep-alive** in its settings.";
    let (status, a) = app
        .post("/api/articles", Some(&admin.token), json!({"title": "VPN keeps disconnecting at home", "body": body}))
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{a}");
    let id = a["article"]["id"].as_i64().unwrap();
    let (status, _) =
        app.patch(&format!("/api/articles/{id}"), Some(&admin.token), json!({"state": "published"})).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    app.signup("cara@example.com").await;

    let driver = start_chromedriver();
    let web = browser(&driver, &app.dir.join("chromium-profile")).await;
    log_in(&web, &base, "cara@example.com", "password-123").await;
    web.goto(format!("{base}/tickets/new")).await.unwrap();
    fill(&web, By::Id("title"), "VPN disconnects").await;
    fill(&web, By::Id("description"), "Working from home my VPN drops every ten minutes.").await;
    wait_for_text(&web, By::Id("article-hint"), "VPN keeps disconnecting at home").await;
    web.find(By::ClassName("suggested-article")).await.unwrap().click().await.unwrap();
    wait_for_text(&web, By::Id("article-title"), "VPN keeps disconnecting at home").await;
    web.find(By::Id("solved")).await.unwrap().click().await.unwrap();
    wait_for_text(&web, By::Id("solved-message"), "No ticket was filed").await;
    web.quit().await.unwrap();

    assert_eq!(app.get("/api/tickets", Some(&admin.token)).await.1["tickets"], json!([]));
    let since = smart_ticket::model::Ts(chrono::Utc::now() - chrono::Duration::hours(1));
    assert_eq!(app.db.knowledge_figures(since).await.unwrap().deflections, 1);
}

/// The reply box offers canned responses as one types "/" and a name (arrow keys choose, Enter inserts it
/// filled for the ticket); a macro is previewed, then applied in one click.
async fn a_moderator_applies_a_macro_and_inserts_a_canned_response_with_the_keyboard(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = app.base.clone();
    let admin = app.admin().await;
    let moderator = app.account("mod@example.com", Role::Moderator, &[]).await;
    let ann = app.signup("ann.lee@example.com").await;
    let t = app.file_ticket(&ann, "Refund for a double charge", "I was charged twice this month.").await;
    let id = t["id"].as_str().unwrap().to_owned();
    app.drain().await;
    let (s, b) =
        app.patch(&format!("/api/tickets/{id}"), Some(&admin.token), json!({ "assigned_to": moderator.id })).await;
    assert_eq!(s, reqwest::StatusCode::OK, "{b}");
    for (name, body) in [
        ("Refund on its way", "Hi {{ requester.name }}, the refund for #{{ ticket.number }} is on its way."),
        ("Refund policy", "Refunds take five working days."),
        ("Password reset", "Use the reset link."),
    ] {
        let (s, b) = app
            .post("/api/canned-responses", Some(&admin.token), json!({ "name": name, "body": body, "shared": true }))
            .await;
        assert_eq!(s, reqwest::StatusCode::CREATED, "{b}");
    }
    let (s, b) = app
        .post(
            "/api/macros",
            Some(&admin.token),
            json!({ "name": "Billing triage", "actions": [
                { "type": "set_priority", "priority": "urgent" },
                { "type": "add_tags", "tags": ["billing"] },
                { "type": "note", "body": "Checked the payment provider." }
            ] }),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{b}");

    let driver = start_chromedriver();
    let web = browser(&driver, &app.dir.join("chromium-profile")).await;
    log_in(&web, &base, "mod@example.com", "password-123").await;
    web.goto(format!("{base}/tickets/{id}")).await.unwrap();
    wait_for_text(&web, By::Id("macros"), "Macros").await;
    web.find(By::Id("preview-macro")).await.unwrap().click().await.unwrap();
    let preview = wait_for_text(&web, By::Id("macro-changes"), "Billing triage").await;
    assert!(
        preview.contains("set tags: none → billing") && preview.contains("Checked the payment provider."),
        "{preview}"
    );
    web.find(By::Id("apply-macro")).await.unwrap().click().await.unwrap();
    wait_for_text(&web, By::Id("ticket-priority"), "urgent").await;
    wait_for_text(&web, By::Id("ticket-tags"), "billing").await;
    wait_for_text(&web, By::Id("live"), "(by macro Billing triage)").await;

    // "/ref" lists the two refund answers; ArrowDown moves to the second and, past the last, back to the
    // first; Enter inserts it, filled, in place of "/ref".
    let reply = web.find(By::Id("reply-body")).await.unwrap();
    reply.send_keys("Thanks for waiting.\n/ref").await.unwrap();
    let options = wait_for_text(&web, By::Id("canned-picker"), "Refund policy").await;
    assert!(options.contains("Refund on its way") && !options.contains("Password reset"), "{options}");
    reply.send_keys(Key::Down).await.unwrap();
    let active = web.find(By::Css("#canned-picker [aria-selected='true']")).await.unwrap().text().await.unwrap();
    assert_eq!(active, "Refund policy");
    reply.send_keys(Key::Down).await.unwrap();
    reply.send_keys(Key::Enter).await.unwrap();
    let text = reply.prop("value").await.unwrap().unwrap_or_default();
    let filled = format!("Thanks for waiting.\nHi Ann Lee, the refund for #{} is on its way.", t["number"]);
    assert_eq!(text, filled);
    assert!(!web.find(By::Id("canned-picker")).await.unwrap().is_displayed().await.unwrap(), "the list closed");
    web.find(By::Id("send-reply")).await.unwrap().click().await.unwrap();
    wait_for_text(&web, By::Id("live"), "is on its way.").await;
    web.quit().await.unwrap();

    // The reply counts as a use of that canned response (what similar tickets are proposed from).
    let (_, c) = app.get(&format!("/api/tickets/{id}/comments"), Some(&moderator.token)).await;
    let bodies: Vec<&str> = c["comments"].as_array().unwrap().iter().map(|c| c["body"].as_str().unwrap()).collect();
    // (A form sends its line breaks as CRLF.)
    assert_eq!(bodies, ["Checked the payment provider.", filled.replace('\n', "\r\n").as_str()]);
    let used = app
        .db
        .canned_used_on(&[t["number"].as_i64().unwrap()], smart_ticket_domain::UserId(moderator.id.parse().unwrap()), 5)
        .await
        .unwrap();
    assert_eq!(used.iter().map(|u| u.canned.name.as_str()).collect::<Vec<_>>(), ["Refund on its way"]);
}
