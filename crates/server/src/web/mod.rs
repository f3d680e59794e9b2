//! The web application: pages rendered on the server (minijinja, auto-escaped) with htmx for partial
//! updates and polling. Every page reads without JavaScript; every form carries a CSRF token.
//!
//! Handlers call the same use-cases as the JSON API (`crate::desk`), so rules live in one place.

mod account;
mod admin;
mod help;
mod tickets;
mod workflow;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;

use std::sync::OnceLock;

use crate::auth::random_token;
use crate::desk::{AppError, AuthUser, Desk};
use crate::front::cookies::{CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, constant_time_eq, cookie, csrf_cookie};

/// The page's content security policy: our own scripts and styles only, never framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

pub fn router(desk: Desk) -> Router<Desk> {
    Router::new()
        .merge(account::router())
        .merge(tickets::router(desk.pipeline.settings.mail.max_attachment_bytes))
        .merge(admin::router())
        .merge(help::router())
        .merge(workflow::router())
        .route("/static/{file}", get(static_file))
        .layer(axum::middleware::from_fn_with_state(desk, web_layer))
}

/// Gives every visitor a CSRF cookie and every page its security headers.
async fn web_layer(State(desk): State<Desk>, mut req: Request, next: Next) -> Response {
    let existing =
        cookie(req.headers(), CSRF_COOKIE).filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()));
    let (token, fresh) = match existing {
        Some(t) => (t, false),
        None => (random_token(), true),
    };
    req.extensions_mut().insert(CsrfToken(token.clone()));
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    if fresh && let Some(v) = csrf_cookie(&desk, &token) {
        headers.append(header::SET_COOKIE, v);
    }
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// This visitor's CSRF token, to put in forms.
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<CsrfToken>()
            .cloned()
            .ok_or(WebError::App(AppError::Internal(anyhow::anyhow!("the web layer did not run"))))
    }
}

/// An url-encoded form whose CSRF token matched the visitor's cookie; otherwise a 403 page.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for CsrfForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (expected, from_header) = csrf_expected(&req);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                WebError::App(AppError::PayloadTooLarge)
            } else {
                WebError::Form("The form could not be read.".into())
            }
        })?;
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&bytes).map_err(|_| WebError::Form("The form could not be read.".into()))?;
        checked_form(expected, from_header, pairs).map(CsrfForm)
    }
}

/// A form that may carry files (`multipart/form-data`; an url-encoded one has none), its CSRF token checked
/// like [`CsrfForm`]'s.
pub struct CsrfUpload<T>(pub T, pub Vec<crate::desk::attachments::Upload>);

impl<T: DeserializeOwned> FromRequest<Desk> for CsrfUpload<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, desk: &Desk) -> Result<Self, Self::Rejection> {
        let multipart = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
        if !multipart {
            return CsrfForm::<T>::from_request(req, desk).await.map(|CsrfForm(form)| CsrfUpload(form, Vec::new()));
        }
        let (expected, from_header) = csrf_expected(&req);
        let form = axum::extract::Multipart::from_request(req, desk)
            .await
            .map_err(|_| WebError::Form("The form could not be read.".into()))?;
        let limit = crate::front::upload::body_limit(desk.pipeline.settings.mail.max_attachment_bytes);
        let (pairs, files) = crate::front::upload::read_multipart(form, limit).await?;
        checked_form(expected, from_header, pairs).map(|form| CsrfUpload(form, files))
    }
}

/// The CSRF cookie's token and the one in the request's header, if any.
fn csrf_expected(req: &Request) -> (Option<String>, Option<String>) {
    let expected = cookie(req.headers(), CSRF_COOKIE);
    let from_header = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    (expected, from_header)
}

/// The form read from `pairs` once its CSRF token (header or field) matches the cookie's; a 403 page otherwise.
fn checked_form<T: DeserializeOwned>(
    expected: Option<String>,
    from_header: Option<String>,
    pairs: Vec<(String, String)>,
) -> Result<T, WebError> {
    let submitted = from_header.or_else(|| pairs.iter().find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v.clone()));
    match (expected, submitted) {
        (Some(e), Some(s)) if constant_time_eq(e.as_bytes(), s.as_bytes()) => {}
        _ => return Err(WebError::Csrf),
    }
    let encoded =
        serde_urlencoded::to_string(&pairs).map_err(|_| WebError::Form("The form could not be read.".into()))?;
    serde_urlencoded::from_str(&encoded).map_err(|e| WebError::Form(format!("The form is not valid: {e}")))
}

/// A signed-in visitor; anyone else is sent to the log-in page.
pub struct Signed {
    pub auth: AuthUser,
    pub csrf: String,
}

impl FromRequestParts<Desk> for Signed {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, desk: &Desk) -> Result<Self, Self::Rejection> {
        let csrf = CsrfToken::from_request_parts(parts, desk).await?.0;
        let auth = AuthUser::from_request_parts(parts, desk).await.map_err(WebError::App)?;
        Ok(Signed { auth, csrf })
    }
}

/// A signed-in admin (see `access::may_administer`); others are told the page does not exist, anyone not
/// signed in is sent to the log-in page.
pub struct SignedAdmin(pub Signed);

impl FromRequestParts<Desk> for SignedAdmin {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, desk: &Desk) -> Result<Self, Self::Rejection> {
        let signed = Signed::from_request_parts(parts, desk).await?;
        if smart_ticket_domain::access::may_administer(signed.auth.user.role) {
            Ok(SignedAdmin(signed))
        } else {
            Err(WebError::App(AppError::NotFound))
        }
    }
}

impl Signed {
    /// Renders `page` with the navigation for this user.
    pub fn page<P: Page>(&self, page: &P) -> Result<Response, WebError> {
        Ok(Html(render_string(P::TEMPLATE, &Chrome::new(page, Some(&self.auth), &self.csrf))?).into_response())
    }

    /// Renders a part of a page (for htmx to swap in), with what its forms need.
    pub fn fragment<P: Page>(&self, part: &P) -> Result<Response, WebError> {
        self.page(part)
    }

    pub fn is_admin(&self) -> bool {
        self.auth.user.role == smart_ticket_domain::Role::Admin
    }
}

/// What a template is rendered from: one struct per page or part, naming its template, so a field the page
/// reads is a field the compiler checks.
pub trait Page: serde::Serialize {
    const TEMPLATE: &'static str;
}

/// What every page carries besides its own context: who is signed in (for the navigation) and the CSRF token
/// its forms send back.
#[derive(serde::Serialize)]
pub(crate) struct Chrome<'a, P> {
    #[serde(flatten)]
    page: &'a P,
    csrf: &'a str,
    me: Option<Me<'a>>,
}

/// The signed-in person, as the navigation shows them.
#[derive(serde::Serialize)]
struct Me<'a> {
    id: crate::model::UserId,
    email: &'a str,
    role: smart_ticket_domain::Role,
    staff: bool,
}

impl<'a, P> Chrome<'a, P> {
    pub(crate) fn new(page: &'a P, me: Option<&'a AuthUser>, csrf: &'a str) -> Self {
        let me =
            me.map(|a| Me { id: a.user.id, email: &a.user.email, role: a.user.role, staff: a.user.role.is_staff() });
        Chrome { page, csrf, me }
    }
}

/// Renders `page` for a visitor who is not signed in.
pub(crate) fn render<P: Page>(page: &P, csrf: &str) -> Result<Response, WebError> {
    Ok(Html(render_string(P::TEMPLATE, &Chrome::new(page, None, csrf))?).into_response())
}

/// Renders template `name` (an `.html` file: values are HTML-escaped).
pub(crate) fn render_string(name: &str, ctx: &impl serde::Serialize) -> Result<String, WebError> {
    let tmpl = templates().get_template(name).map_err(|e| WebError::App(AppError::Internal(e.into())))?;
    tmpl.render(minijinja::Value::from_serialize(ctx)).map_err(|e| WebError::App(AppError::Internal(e.into())))
}

/// A form's comma-separated list (`"rust, postgres"`), trimmed, blanks dropped.
pub(crate) fn comma_list(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// 303 to `to`: the answer to a successful form post.
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/web/base.html")),
    ("error.html", include_str!("../../templates/web/error.html")),
    ("login.html", include_str!("../../templates/web/login.html")),
    ("signup.html", include_str!("../../templates/web/signup.html")),
    ("forgot.html", include_str!("../../templates/web/forgot.html")),
    ("reset.html", include_str!("../../templates/web/reset.html")),
    ("account.html", include_str!("../../templates/web/account.html")),
    ("tickets.html", include_str!("../../templates/web/tickets.html")),
    ("_ticket_table.html", include_str!("../../templates/web/_ticket_table.html")),
    ("ticket_new.html", include_str!("../../templates/web/ticket_new.html")),
    ("_similar.html", include_str!("../../templates/web/_similar.html")),
    ("ticket.html", include_str!("../../templates/web/ticket.html")),
    ("_ticket_live.html", include_str!("../../templates/web/_ticket_live.html")),
    ("_macro_preview.html", include_str!("../../templates/web/_macro_preview.html")),
    ("canned.html", include_str!("../../templates/web/canned.html")),
    ("admin_macros.html", include_str!("../../templates/web/admin_macros.html")),
    ("admin_rules.html", include_str!("../../templates/web/admin_rules.html")),
    ("admin_webhooks.html", include_str!("../../templates/web/admin_webhooks.html")),
    ("admin_dashboard.html", include_str!("../../templates/web/admin_dashboard.html")),
    ("_bars.html", include_str!("../../templates/web/_bars.html")),
    ("admin_users.html", include_str!("../../templates/web/admin_users.html")),
    ("admin_taxonomy.html", include_str!("../../templates/web/admin_taxonomy.html")),
    ("admin_jobs.html", include_str!("../../templates/web/admin_jobs.html")),
    ("admin_mail.html", include_str!("../../templates/web/admin_mail.html")),
    ("admin_ai.html", include_str!("../../templates/web/admin_ai.html")),
    ("help.html", include_str!("../../templates/web/help.html")),
    ("help_article.html", include_str!("../../templates/web/help_article.html")),
    ("help_solved.html", include_str!("../../templates/web/help_solved.html")),
    ("help_answered.html", include_str!("../../templates/web/help_answered.html")),
    ("help_editor.html", include_str!("../../templates/web/help_editor.html")),
    ("help_proposals.html", include_str!("../../templates/web/help_proposals.html")),
];

fn templates() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env.add_filter("when", format_ts);
        env.add_filter("pct", |v: f64| format!("{:.0}%", v * 100.0));
        for (name, source) in TEMPLATES {
            env.add_template(name, source).unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        env
    })
}

/// `2026-11-27T06:31:33.123456Z` → `2026-11-27 06:31 UTC`.
fn format_ts(v: String) -> String {
    match chrono::DateTime::parse_from_rfc3339(&v) {
        Ok(t) => t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => v,
    }
}

/// Static files, compiled into the binary (the machine may be offline: no CDN).
async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind): (&'static str, &str) = match file.as_str() {
        // htmx 2.0.8 from the npm package htmx.org (0BSD), sha256 22283ef6…d31313.
        "htmx.min.js" => (include_str!("../../static/htmx.min.js"), "text/javascript; charset=utf-8"),
        "app.js" => (include_str!("../../static/app.js"), "text/javascript; charset=utf-8"),
        "app.css" => (include_str!("../../static/app.css"), "text/css; charset=utf-8"),
        _ => return WebError::App(AppError::NotFound).into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// Why a page could not be shown, in words.
#[derive(serde::Serialize)]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl Page for ErrorPage<'_> {
    const TEMPLATE: &'static str = "error.html";
}

/// What a page handler fails with, shown as a readable page (never a JSON body, never a stack trace).
#[derive(Debug)]
pub enum WebError {
    App(AppError),
    /// The form's CSRF token was missing or did not match.
    Csrf,
    /// The form did not parse.
    Form(String),
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        WebError::App(e)
    }
}

impl From<crate::db::StoreError> for WebError {
    fn from(e: crate::db::StoreError) -> Self {
        WebError::App(e.into())
    }
}

impl From<anyhow::Error> for WebError {
    fn from(e: anyhow::Error) -> Self {
        WebError::App(AppError::Internal(e))
    }
}

/// A readable message for a form error.
pub(crate) fn describe(e: &AppError) -> String {
    match e {
        AppError::Validation(fields) => {
            fields.iter().map(|(f, m)| format!("{}: {m}", f.replace('_', " "))).collect::<Vec<_>>().join("; ")
        }
        other => other.to_string(),
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            WebError::App(AppError::TooManyRequests { retry_after }) => Some(*retry_after),
            _ => None,
        };
        let (status, title, message) = match self {
            WebError::App(AppError::Unauthorized | AppError::InvalidToken) => return see_other("/login"),
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not sent from this site's current page. Go back, reload the page and try again."
                    .to_owned(),
            ),
            WebError::Form(m) => (StatusCode::BAD_REQUEST, "Bad form", m),
            WebError::App(AppError::NotFound) => {
                (StatusCode::NOT_FOUND, "Not found", "There is no such page, or you may not see it.".to_owned())
            }
            WebError::App(AppError::Forbidden) => {
                (StatusCode::FORBIDDEN, "Not allowed", "Your account may not do this.".to_owned())
            }
            WebError::App(AppError::Internal(e)) => {
                tracing::error!(error = %format!("{e:#}"), "page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Something went wrong on our side; it has been logged. Try again in a moment.".to_owned(),
                )
            }
            WebError::App(e) => {
                let status = e.status();
                (status, "Cannot do that", describe(&e))
            }
        };
        let body = render_string(ErrorPage::TEMPLATE, &ErrorPage { title, message: &message })
            .unwrap_or_else(|_| format!("<!doctype html><title>{}</title><p>{}</p>", status, status));
        let mut res = (status, Html(body)).into_response();
        if let Some(secs) = retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn every_template_renders_and_escapes() {
        let me = json!({ "id": "u1", "email": "root@example.com", "role": "admin", "staff": true });
        let ticket = json!({
            "id": "t1", "number": 7, "title": "<script>alert(1)</script>", "description": "d", "status": "open",
            "priority": "high", "category": "bug", "skills": ["printers"], "helpful_notes": "note",
            "requester_email": "ann@example.com", "assignee_email": null, "created_at": "2026-11-27T06:31:33.123456Z",
            "updated_at": "2026-11-27T06:31:33.123456Z", "deadline": "2026-11-27T07:31:33Z", "overdue": true,
            "routing_reason": "matched printers", "assigned_to": null,
        });
        let guess = json!({ "value": "bug", "confidence": 0.8, "source": "knn" });
        let cases = [
            ("login.html", json!({ "error": "bad" })),
            ("signup.html", json!({})),
            ("account.html", json!({ "user": { "away": true, "capacity": 5, "skills": ["a"] } })),
            (
                "tickets.html",
                json!({ "heading": "Tickets", "staff": true, "tickets": [ticket], "filter": {}, "query": "q=a&b=c",
                "statuses": ["open"], "priorities": ["low"] }),
            ),
            ("ticket_new.html", json!({})),
            (
                "_similar.html",
                json!({ "similar": [{ "id": "x", "number": 3, "title": "<b>", "status": "open", "similarity": 0.9 }] }),
            ),
            (
                "ticket.html",
                json!({ "t": ticket, "workable": true, "comments": [{ "author_email": "a", "body": "<i>", "internal": true,
                "created_at": "2026-11-27T06:31:33Z" }], "events": [{ "created_at": "2026-11-27T06:31:33Z", "who": "system", "text": "x" }],
                "ai": { "category": guess, "priority": guess, "skills": [guess], "engine": "local" }, "categories": ["bug"],
                "priorities": ["low"], "statuses": ["open"], "suggestions": [{ "number": 1, "title": "t", "resolution": "r",
                "similarity": 0.5, "shared_terms": ["x"] }], "draft": { "text": "d", "citations": [1], "engine": "local" },
                "staff_list": [{ "id": "u2", "email": "m", "role": "moderator" }],
                "macros": [{ "id": 1, "name": "<script>alert(1)</script>" }],
                "canned": [{ "id": 2, "name": "<script>alert(1)</script>", "text": "<script>alert(1)</script>", "shared": true }],
                "canned_suggested": [{ "id": 2, "name": "<script>alert(1)</script>", "used_on": 2 }] }),
            ),
            (
                "_macro_preview.html",
                json!({ "preview": { "name": "<script>alert(1)</script>", "changes": [{ "field": "tags", "old": [],
                "new": ["<script>alert(1)</script>"] }], "comments": [{ "internal": false, "body": "<script>alert(1)</script>" }] } }),
            ),
            (
                "canned.html",
                json!({ "canned": [{ "id": 1, "name": "<script>alert(1)</script>", "body": "<script>alert(1)</script>",
                "owner_id": null }], "placeholders": [{ "name": "ticket.title", "description": "<script>alert(1)</script>" }] }),
            ),
            (
                "admin_macros.html",
                json!({ "macros": [{ "id": 1, "name": "<script>alert(1)</script>", "description": "<script>alert(1)</script>",
                "steps": ["<script>alert(1)</script>"] }], "shared_canned": [{ "id": 1, "name": "<script>alert(1)</script>" }],
                "statuses": ["open"], "priorities": ["low"], "categories": ["<script>alert(1)</script>"] }),
            ),
            (
                "admin_dashboard.html",
                json!({ "open": 1, "breaches": 0, "window_days": 30,
                "by_priority": { "label": "p", "height": 26, "bars": [{ "label": "high", "value": 1, "y": 0, "width": 260.0, "class": "high" }] },
                "by_category": { "label": "c", "height": 26, "bars": [] } }),
            ),
            (
                "admin_users.html",
                json!({ "users": [{ "id": "u", "email": "e", "role": "user", "skills": [], "away": false, "capacity": 10 }],
                "roles": ["user"], "next": "e", "q": "x y" }),
            ),
            (
                "admin_taxonomy.html",
                json!({ "categories": [{ "name": "bug", "description": "d", "examples": ["a", "b"] }],
                "skills": [{ "name": "s", "description": null, "staff": 1 }] }),
            ),
            (
                "admin_jobs.html",
                json!({ "jobs": [{ "id": 1, "kind": "k", "attempts": 8, "max_attempts": 8, "state": "dead",
                "last_error": "e", "updated_at": "2026-11-27T06:31:33Z" }], "state": "dead", "states": ["dead"],
                "counts": { "queued": 0, "running": 0, "dead": 1 } }),
            ),
            (
                "admin_ai.html",
                json!({ "days": 30, "quality": { "tickets": 0, "corrected": 0,
                "category": { "evaluated": 0, "correct": 0, "accuracy": null },
                "priority": { "evaluated": 2, "correct": 1, "accuracy": 0.5 },
                "skills": { "evaluated": 0, "exact": 0, "accuracy": null, "mean_jaccard": null },
                "suggestions": { "marked": 2, "helpful": 1, "helpful_rate": 0.5 } },
                "status": { "ai": { "engine": "local", "embeddings": true, "model_version": 2, "trained_on": 40,
                "labelled_tickets": 40, "retrain_every": 20 }, "providers": { "triage": { "provider": "gemini", "model": "m",
                "metrics": { "calls": 1, "successes": 0, "fallbacks": 1 } } } } }),
            ),
            (
                "admin_mail.html",
                json!({ "mailboxes": [{ "name": "default", "host": "imap:993", "folder": "INBOX", "healthy": false,
                "state": "failing", "last_success_at": null, "last_error": "<script>alert(1)</script>",
                "last_error_at": "2026-11-27T06:31:33Z", "stored": 1 }], "messages": [{ "id": 3, "from": "<b>x</b>", "subject": "<script>alert(1)</script>", "state": "rejected",
                "reason": "no sender", "received_at": "2026-11-27T06:31:33Z" }], "state": "rejected", "states": ["rejected"] }),
            ),
            (
                "admin_rules.html",
                json!({ "rules": [{ "id": 1, "position": 1, "name": "<script>alert(1)</script>", "event": "schedule",
                "enabled": true, "spec": { "when": { "every_minutes": 60 } } }], "draft": "<script>alert(1)</script>",
                "dry_run": { "checked": 1, "matched": [{ "id": "t", "number": 1, "title": "<script>alert(1)</script>", "status": "open" }] } }),
            ),
            (
                "admin_webhooks.html",
                json!({ "webhooks": [{ "id": 1, "name": "<script>alert(1)</script>", "url": "<script>alert(1)</script>",
                "events": ["ticket.created"], "enabled": true, "allow_private": false,
                "deliveries": [{ "id": "d", "created_at": "2026-11-27T06:31:33Z", "event": "ticket.created", "state": "dead",
                "attempts": 12, "last_status": 500, "last_latency_ms": 3, "last_error": "<script>alert(1)</script>",
                "last_response": "<script>alert(1)</script>" }] }], "events": ["ticket.created"],
                "created": { "webhook": { "name": "<script>alert(1)</script>" }, "secret": "s" } }),
            ),
            ("error.html", json!({ "title": "t", "message": "m" })),
        ];
        for (name, ctx) in cases {
            let chrome = Chrome::<Value>::new(&ctx, None, "tok");
            let html = render_string(name, &chrome).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(!html.contains("<script>alert(1)"), "{name} escapes");
            if name == "ticket.html" {
                assert!(html.contains("&lt;script&gt;alert(1)&lt;"));
                assert!(html.contains("_csrf") && html.contains("tok"));
            }
        }
        let _ = me;
    }
}
