//! Files on tickets and comments, from the API's multipart upload, the pages' forms and e-mail: listed on the
//! ticket's and comments' JSON, downloaded only by who may see them (an internal note's files by staff only),
//! never served inline unless a raster image, refused over the size limit with a clear 413.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE, X_CONTENT_TYPE_OPTIONS};
use serde_json::{Value, json};
use smart_ticket_domain::Role;

use crate::helpers::{Backend, TestApp, fresh_database, model_dir, on_both_backends, pipeline_settings};
use crate::web::Browser;

on_both_backends!(
    uploads_are_listed_and_downloaded_only_by_who_may_see_them,
    a_file_over_the_limit_is_refused_with_413_and_nothing_is_stored,
    only_raster_images_show_inline,
    mail_attachments_are_kept_and_the_ai_reads_the_log,
    the_pages_forms_take_files,
);

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89";

/// A `multipart/form-data` body by hand: its content type and bytes.
fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = format!("b{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes(),
        );
    }
    for (name, content_type, data) in files {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: {content_type}\r\n\r\n"
            )
            .bytes(),
        );
        body.extend_from_slice(data);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(
    app: &TestApp,
    token: &str,
    ticket: &str,
    fields: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> (StatusCode, Value) {
    let (content_type, body) = multipart(fields, files);
    let res = app
        .client
        .post(format!("{}/api/tickets/{ticket}/attachments", app.base))
        .bearer_auth(token)
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn download(app: &TestApp, token: Option<&str>, path: &str) -> reqwest::Response {
    let mut req = app.client.get(format!("{}{path}", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn uploads_are_listed_and_downloaded_only_by_who_may_see_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let moderator = app.account("mod@example.com", Role::Moderator, &["printers"]).await;
    let ann = app.signup("ann@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let t = app.file_ticket(&ann, "Printer jams", "It jams on every page.").await;
    let id = t["id"].as_str().unwrap();
    let (status, up) =
        upload(&app, &ann.token, id, &[], &[("jam.png", "image/png", PNG), ("notes.txt", "text/plain", b"paper: A4")])
            .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    let files = up["attachments"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!((files[0]["file_name"].as_str(), files[0]["size"].as_i64()), (Some("jam.png"), Some(PNG.len() as i64)));
    assert_eq!(files[0]["content_type"], "image/png");
    let png = files[0]["id"].as_str().unwrap().to_owned();
    // The ticket's JSON lists them.
    let (_, got) = app.get(&format!("/api/tickets/{id}"), Some(&ann.token)).await;
    assert_eq!(got["ticket"]["attachments"].as_array().unwrap().len(), 2, "{got}");

    // Staff attach a file to an internal note: hidden from the requester everywhere.
    app.patch(&format!("/api/tickets/{id}"), Some(&admin.token), json!({ "assigned_to": moderator.id })).await;
    let (_, note) = app
        .post(
            &format!("/api/tickets/{id}/comments"),
            Some(&moderator.token),
            json!({ "body": "Driver issue", "internal": true }),
        )
        .await;
    let note_id = note["comment"]["id"].as_i64().unwrap().to_string();
    let (status, up) =
        upload(&app, &moderator.token, id, &[("comment_id", &note_id)], &[("driver.log", "text/plain", b"ERROR 42")])
            .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    let secret = up["attachments"][0]["id"].as_str().unwrap().to_owned();
    let (_, comments) = app.get(&format!("/api/tickets/{id}/comments"), Some(&moderator.token)).await;
    assert_eq!(comments["comments"][0]["attachments"][0]["file_name"], "driver.log", "{comments}");
    let (_, listed) = app.get(&format!("/api/tickets/{id}/attachments"), Some(&ann.token)).await;
    assert_eq!(listed["attachments"].as_array().unwrap().len(), 2, "the requester sees no internal file: {listed}");
    // The requester may not attach to the staff's note either (it does not exist for them).
    let (status, _) = upload(&app, &ann.token, id, &[("comment_id", &note_id)], &[("x.txt", "text/plain", b"x")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for (who, path, expected) in [
        (Some(ann.token.as_str()), &png, StatusCode::OK),
        (Some(moderator.token.as_str()), &png, StatusCode::OK),
        (Some(admin.token.as_str()), &png, StatusCode::OK),
        (Some(bob.token.as_str()), &png, StatusCode::NOT_FOUND),
        (None, &png, StatusCode::UNAUTHORIZED),
        (Some(ann.token.as_str()), &secret, StatusCode::NOT_FOUND),
        (Some(moderator.token.as_str()), &secret, StatusCode::OK),
        (Some(bob.token.as_str()), &secret, StatusCode::NOT_FOUND),
    ] {
        let res = download(&app, who, &format!("/api/attachments/{path}")).await;
        assert_eq!(res.status(), expected, "{path} for {who:?}");
    }
    let res = download(&app, Some(&ann.token), &format!("/api/attachments/{png}")).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), PNG);
    // Another user cannot attach to a ticket they cannot see.
    let (status, _) = upload(&app, &bob.token, id, &[], &[("x.txt", "text/plain", b"x")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The same file twice is stored once.
    upload(&app, &ann.token, id, &[], &[("again.png", "image/png", PNG)]).await;
    let all = app.db.attachments_of(serde_json::from_value(json!(id)).unwrap()).await.unwrap();
    assert_eq!(all.iter().filter(|a| a.sha256 == all[0].sha256).count(), 2);
}

async fn a_file_over_the_limit_is_refused_with_413_and_nothing_is_stored(backend: Backend) {
    let (dir, url) = fresh_database(backend).await;
    let mut settings = pipeline_settings(&dir, model_dir());
    settings.mail.max_attachment_bytes = 64 << 10;
    let app = TestApp::start_with(dir, url, settings).await;
    let ann = app.signup("ann@example.com").await;
    let t = app.file_ticket(&ann, "Scanner", "Scans are blank.").await;
    let id = t["id"].as_str().unwrap();
    let big = vec![b'a'; 100 << 10];
    let (status, body) = upload(&app, &ann.token, id, &[], &[("scan.tif", "image/tiff", &big)]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "file_too_large");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("scan.tif is 0.1 MB; files may be at most 0.1 MB"),
        "{body}"
    );
    // Over the whole upload's limit too: a clear JSON 413, not a dropped connection.
    let huge = vec![b'a'; (64 << 10) * 4 + (1 << 20) + 10];
    let (status, body) = upload(&app, &ann.token, id, &[], &[("huge.bin", "application/octet-stream", &huge)]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (_, listed) = app.get(&format!("/api/tickets/{id}/attachments"), Some(&ann.token)).await;
    assert_eq!(listed["attachments"], json!([]));
    // Not a multipart body at all: a 400 that says so.
    let (status, body) = app.post(&format!("/api/tickets/{id}/attachments"), Some(&ann.token), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "bad_multipart");
}

async fn only_raster_images_show_inline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.signup("ann@example.com").await;
    let t = app.file_ticket(&ann, "Logo broken", "The logo renders wrong.").await;
    let id = t["id"].as_str().unwrap();
    let svg: &[u8] = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
    let html: &[u8] = b"<html><script>alert(document.cookie)</script></html>";
    let (_, up) = upload(
        &app,
        &ann.token,
        id,
        &[],
        &[
            ("logo.svg", "image/svg+xml", svg),
            ("page.html", "text/html", html),
            ("shot.png", "image/png", PNG),
            ("fake.png", "image/png", html),
        ],
    )
    .await;
    let files = up["attachments"].as_array().unwrap().clone();
    for f in &files {
        let res =
            download(&app, Some(&ann.token), &format!("/api/attachments/{}?inline=true", f["id"].as_str().unwrap()))
                .await;
        let name = f["file_name"].as_str().unwrap();
        let disposition = res.headers()[CONTENT_DISPOSITION].to_str().unwrap().to_owned();
        let content_type = res.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
        assert_eq!(res.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        if name == "shot.png" {
            assert!(disposition.starts_with("inline"), "{disposition}");
            assert_eq!(content_type, "image/png");
        } else {
            assert!(disposition.starts_with("attachment") && disposition.contains(name), "{name}: {disposition}");
            assert_eq!(content_type, "application/octet-stream", "{name}");
        }
    }
    assert_eq!(files.iter().filter(|f| f["image"] == true).count(), 1, "only the real PNG is an image: {files:?}");
}

async fn mail_attachments_are_kept_and_the_ai_reads_the_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let raw =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail/attachments.eml"))
            .unwrap();
    smart_ticket::mail::inbound::receive(&app.db, &raw, raw.len(), 30 << 20).await.unwrap();
    app.drain().await;
    let admin = app.admin().await;
    let (_, list) = app.get("/api/tickets", Some(&admin.token)).await;
    let id = list["tickets"][0]["id"].as_str().unwrap().to_owned();
    let (_, t) = app.get(&format!("/api/tickets/{id}"), Some(&admin.token)).await;
    let mut names: Vec<&str> =
        t["ticket"]["attachments"].as_array().unwrap().iter().map(|a| a["file_name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["app.log", "crash.json", "logo.svg", "report.pdf", "shot.png"], "{t}");
    let ticket_id = serde_json::from_value(json!(id)).unwrap();
    let stored = app.db.attachments_of(ticket_id).await.unwrap();
    let shot = stored.iter().find(|a| a.file_name == "shot.png").unwrap();
    assert_eq!((shot.content_type.as_str(), shot.content_id.as_deref()), ("image/png", Some("shot1")));
    assert_eq!(stored.iter().find(|a| a.file_name == "logo.svg").unwrap().content_type, "application/octet-stream");
    let read = smart_ticket::desk::attachments::with_file_text(&app.db, ticket_id, "").await.unwrap();
    assert!(read.contains("From the attached app.log") && read.contains("E-7781") && read.contains("v4.2.1"), "{read}");
    assert!(!read.contains("report.pdf"), "{read}");
}

/// Posts a multipart form as `browser` would; the answer's status and `Location`.
async fn post_form(
    app: &TestApp,
    b: &Browser,
    path: &str,
    fields: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> (StatusCode, String) {
    let (content_type, body) = multipart(fields, files);
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = client
        .post(format!("{}{path}", app.base))
        .header(COOKIE, &b.cookies)
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (res.status(), location)
}

async fn the_pages_forms_take_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup("ann@example.com").await;
    let ann = Browser::login(&app, "ann@example.com", "password-123").await;
    let fields = [("_csrf", ann.csrf.as_str()), ("title", "Badge reader"), ("description", "Door 4 does not open.")];
    let (status, page) = post_form(&app, &ann, "/tickets/new", &fields, &[("door.png", "image/png", PNG)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html) = ann.get(&page).await;
    assert!(html.contains("door.png") && html.contains("?inline=true"), "the page shows the file as a thumbnail");
    // A reply with a file; without a CSRF token nothing is taken.
    let log: &[(&str, &str, &[u8])] = &[("door.log", "text/plain", b"ERROR door")];
    let path = format!("{page}/comments");
    assert_eq!(post_form(&app, &ann, &path, &[("body", "Here is the log")], log).await.0, StatusCode::FORBIDDEN);
    let (status, _) =
        post_form(&app, &ann, &path, &[("_csrf", ann.csrf.as_str()), ("body", "Here is the log")], log).await;
    assert!(status.is_redirection() || status.is_success(), "{status}");
    let (_, html) = ann.get(&page).await;
    assert!(html.contains("door.log"));
}
