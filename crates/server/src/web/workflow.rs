//! The team's workflow in the browser: canned responses (staff keep their own; admins the shared ones) and
//! macros (admins).

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use smart_ticket_domain::workflow::{ActionSpec, Placeholder};
use smart_ticket_domain::{Priority, Status};

use super::{CsrfForm, Page, Signed, SignedAdmin, WebError, comma_list, describe, see_other};
use crate::db::{CannedResponse, Macro};
use crate::desk::canned::{self, CannedChange, NewCanned};
use crate::desk::macros::{self, MacroInput};
use crate::desk::{AppError, Desk};

pub fn router() -> Router<Desk> {
    Router::new()
        .route("/canned", get(canned_page).post(add_canned))
        .route("/canned/{id}", post(save_canned))
        .route("/canned/{id}/delete", post(delete_canned))
        .route("/admin/macros", get(macros_page).post(add_macro))
        .route("/admin/macros/{id}/delete", post(delete_macro))
        .route("/admin/rules", get(rules_page).post(add_rule))
        .route("/admin/rules/{id}/toggle", post(toggle_rule))
        .route("/admin/rules/{id}/delete", post(delete_rule))
        .route("/admin/webhooks", get(webhooks_page).post(add_webhook))
        .route("/admin/webhooks/{id}/toggle", post(toggle_webhook))
        .route("/admin/webhooks/{id}/delete", post(delete_webhook))
        .route("/admin/webhooks/{id}/deliveries/{delivery}/redeliver", post(redeliver))
        .route("/admin/webhooks/{id}/deliver-pending-now", post(deliver_pending_now))
}

#[derive(Serialize)]
struct WebhooksPage {
    webhooks: Vec<WebhookLine>,
    events: &'static [smart_ticket_domain::webhooks::WebhookEvent],
    /// A webhook just added and its secret, shown this once.
    created: Option<crate::desk::webhooks::CreatedWebhook>,
    error: Option<String>,
}

impl Page for WebhooksPage {
    const TEMPLATE: &'static str = "admin_webhooks.html";
}

/// A webhook and its latest deliveries.
#[derive(Serialize)]
struct WebhookLine {
    #[serde(flatten)]
    w: crate::db::Webhook,
    deliveries: Vec<crate::db::Delivery>,
}

async fn show_webhooks(
    desk: &Desk,
    signed: &Signed,
    created: Option<crate::desk::webhooks::CreatedWebhook>,
    error: Option<&AppError>,
) -> Result<Response, WebError> {
    let mut webhooks = Vec::new();
    for w in crate::desk::webhooks::list(desk, &signed.auth).await? {
        let mut deliveries = crate::desk::webhooks::log(desk, &signed.auth, w.id).await?;
        deliveries.truncate(20);
        webhooks.push(WebhookLine { w, deliveries });
    }
    let events = smart_ticket_domain::webhooks::WebhookEvent::ALL;
    let page = WebhooksPage { webhooks, events, created, error: error.map(describe) };
    let mut res = signed.page(&page)?;
    if let Some(e) = error {
        *res.status_mut() = e.status();
    }
    Ok(res)
}

async fn webhooks_page(State(desk): State<Desk>, SignedAdmin(signed): SignedAdmin) -> Result<Response, WebError> {
    show_webhooks(&desk, &signed, None, None).await
}

/// The webhook form: `name`, `url`, `allow_private`, and one `event:{name}` checkbox per event.
type WebhookForm = std::collections::HashMap<String, String>;

async fn add_webhook(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    CsrfForm(form): CsrfForm<WebhookForm>,
) -> Result<Response, WebError> {
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let input = crate::desk::webhooks::WebhookInput {
        name: field("name"),
        url: field("url"),
        events: form.keys().filter_map(|k| k.strip_prefix("event:")).map(str::to_owned).collect(),
        allow_private: form.contains_key("allow_private"),
    };
    match crate::desk::webhooks::create(&desk, &signed.auth, input).await {
        Ok(created) => show_webhooks(&desk, &signed, Some(created), None).await,
        Err(e @ (AppError::Validation(_) | AppError::Conflict(_))) => {
            show_webhooks(&desk, &signed, None, Some(&e)).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn toggle_webhook(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ToggleForm>,
) -> Result<Response, WebError> {
    let change = crate::desk::webhooks::WebhookChange { enabled: Some(form.enabled == "on"), ..Default::default() };
    match crate::desk::webhooks::update(&desk, &signed.auth, canned_id(&id)?, change).await {
        Ok(_) => Ok(see_other("/admin/webhooks")),
        Err(e @ AppError::Validation(_)) => show_webhooks(&desk, &signed, None, Some(&e)).await,
        Err(e) => Err(e.into()),
    }
}

async fn delete_webhook(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    crate::desk::webhooks::delete(&desk, &signed.auth, canned_id(&id)?).await?;
    Ok(see_other("/admin/webhooks"))
}

async fn redeliver(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    Path((id, delivery)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    let delivery: uuid::Uuid = delivery.parse().map_err(|_| WebError::App(AppError::NotFound))?;
    crate::desk::webhooks::send_again(&desk, &signed.auth, canned_id(&id)?, delivery).await?;
    Ok(see_other("/admin/webhooks"))
}

async fn deliver_pending_now(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    crate::desk::webhooks::deliver_pending_now(&desk, &signed.auth, canned_id(&id)?).await?;
    Ok(see_other("/admin/webhooks"))
}

/// A starting point for a new rule, shown in the form.
const EXAMPLE_RULE: &str = r#"{
  "name": "Auto-close password resets the AI is sure about",
  "when": { "event": "ticket_triaged" },
  "match": "all",
  "conditions": [
    { "field": "ai.category", "op": "is", "value": "account & access" },
    { "field": "ai.category.confidence", "op": "gte", "value": 0.95 },
    { "field": "text", "op": "matches", "value": "password|log ?in" }
  ],
  "actions": [
    { "type": "add_tags", "tags": ["auto-closed"] },
    { "type": "set_status", "status": "resolved", "resolution": "Sent the password reset article." }
  ]
}"#;

#[derive(Serialize)]
struct RulesPage {
    rules: Vec<crate::db::StoredRule>,
    /// The rule being written (kept when refused or dry-run).
    draft: String,
    dry_run: Option<crate::desk::rules::DryRun>,
    error: Option<String>,
}

impl Page for RulesPage {
    const TEMPLATE: &'static str = "admin_rules.html";
}

async fn show_rules(
    desk: &Desk,
    signed: &Signed,
    draft: String,
    dry_run: Option<crate::desk::rules::DryRun>,
    error: Option<&AppError>,
) -> Result<Response, WebError> {
    let rules = crate::desk::rules::list(desk, &signed.auth).await?;
    let mut res = signed.page(&RulesPage { rules, draft, dry_run, error: error.map(describe) })?;
    if let Some(e) = error {
        *res.status_mut() = e.status();
    }
    Ok(res)
}

async fn rules_page(State(desk): State<Desk>, SignedAdmin(signed): SignedAdmin) -> Result<Response, WebError> {
    show_rules(&desk, &signed, EXAMPLE_RULE.to_owned(), None, None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RuleForm {
    spec: String,
    /// `dry_run` tests it on recent tickets; anything else saves it.
    action: String,
}

async fn add_rule(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    CsrfForm(form): CsrfForm<RuleForm>,
) -> Result<Response, WebError> {
    let spec: smart_ticket_domain::rules::RuleSpec = match serde_json::from_str(&form.spec) {
        Ok(spec) => spec,
        Err(e) => {
            let e = AppError::field("rule", format!("not a rule in JSON: {e}"));
            return show_rules(&desk, &signed, form.spec, None, Some(&e)).await;
        }
    };
    let result = if form.action == "dry_run" {
        crate::desk::rules::dry_run(&desk, &signed.auth, spec).await.map(Some)
    } else {
        crate::desk::rules::create(&desk, &signed.auth, spec).await.map(|_| None)
    };
    match result {
        Ok(None) => Ok(see_other("/admin/rules")),
        Ok(Some(dry)) => show_rules(&desk, &signed, form.spec, Some(dry), None).await,
        Err(e @ (AppError::Validation(_) | AppError::Conflict(_))) => {
            show_rules(&desk, &signed, form.spec, None, Some(&e)).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct ToggleForm {
    #[serde(default)]
    enabled: String,
}

async fn toggle_rule(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ToggleForm>,
) -> Result<Response, WebError> {
    let change = crate::desk::rules::RuleToggle { enabled: Some(form.enabled == "on"), position: None };
    crate::desk::rules::toggle(&desk, &signed.auth, canned_id(&id)?, change).await?;
    Ok(see_other("/admin/rules"))
}

async fn delete_rule(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    crate::desk::rules::delete(&desk, &signed.auth, canned_id(&id)?).await?;
    Ok(see_other("/admin/rules"))
}

/// A placeholder and what it is filled with, for the help beside the forms.
#[derive(Serialize)]
struct PlaceholderHelp {
    name: &'static str,
    description: &'static str,
}

fn placeholder_help() -> Vec<PlaceholderHelp> {
    Placeholder::ALL.iter().map(|p| PlaceholderHelp { name: p.name(), description: p.description() }).collect()
}

#[derive(Serialize)]
struct CannedPage {
    canned: Vec<CannedResponse>,
    placeholders: Vec<PlaceholderHelp>,
    error: Option<String>,
}

impl Page for CannedPage {
    const TEMPLATE: &'static str = "canned.html";
}

async fn show_canned(desk: &Desk, signed: &Signed, error: Option<&AppError>) -> Result<Response, WebError> {
    let canned = canned::list(desk, &signed.auth, None).await?;
    let mut res = signed.page(&CannedPage { canned, placeholders: placeholder_help(), error: error.map(describe) })?;
    if let Some(e) = error {
        *res.status_mut() = e.status();
    }
    Ok(res)
}

async fn canned_page(State(desk): State<Desk>, signed: Signed) -> Result<Response, WebError> {
    show_canned(&desk, &signed, None).await
}

/// Back to the canned responses after a form; a refused one shows the page again with the reason.
async fn after_canned(desk: &Desk, signed: &Signed, result: Result<(), AppError>) -> Result<Response, WebError> {
    match result {
        Ok(()) => Ok(see_other("/canned")),
        Err(e @ (AppError::Validation(_) | AppError::Conflict(_))) => show_canned(desk, signed, Some(&e)).await,
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct CannedForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    body: String,
    shared: Option<String>,
}

async fn add_canned(
    State(desk): State<Desk>,
    signed: Signed,
    CsrfForm(form): CsrfForm<CannedForm>,
) -> Result<Response, WebError> {
    let new = NewCanned { name: form.name, body: form.body, shared: form.shared.is_some() };
    let result = canned::create(&desk, &signed.auth, new).await.map(|_| ());
    after_canned(&desk, &signed, result).await
}

fn canned_id(raw: &str) -> Result<i64, WebError> {
    raw.parse().map_err(|_| WebError::App(AppError::NotFound))
}

async fn save_canned(
    State(desk): State<Desk>,
    signed: Signed,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<CannedForm>,
) -> Result<Response, WebError> {
    let change = CannedChange { name: Some(form.name), body: Some(form.body) };
    let result = canned::update(&desk, &signed.auth, canned_id(&id)?, change).await.map(|_| ());
    after_canned(&desk, &signed, result).await
}

#[derive(Deserialize)]
struct NoFields {}

async fn delete_canned(
    State(desk): State<Desk>,
    signed: Signed,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    canned::delete(&desk, &signed.auth, canned_id(&id)?).await?;
    Ok(see_other("/canned"))
}

#[derive(Serialize)]
struct MacrosPage {
    macros: Vec<MacroLine>,
    shared_canned: Vec<CannedResponse>,
    statuses: &'static [Status],
    priorities: &'static [Priority],
    categories: Vec<String>,
    error: Option<String>,
}

impl Page for MacrosPage {
    const TEMPLATE: &'static str = "admin_macros.html";
}

/// A macro and its actions in words.
#[derive(Serialize)]
struct MacroLine {
    #[serde(flatten)]
    m: Macro,
    steps: Vec<String>,
}

fn action_words(a: &ActionSpec, canned: &[CannedResponse]) -> String {
    let list = |v: &[String]| v.join(", ");
    match a {
        ActionSpec::SetStatus { status, .. } => format!("set status to {}", status.replace('_', " ")),
        ActionSpec::SetPriority { priority } => format!("set priority to {priority}"),
        ActionSpec::SetCategory { category } => format!("set category to {}", category.as_deref().unwrap_or("none")),
        ActionSpec::SetSkills { skills } => format!("set skills to {}", list(skills)),
        ActionSpec::SetAssignee { assignee } => match assignee {
            Some(id) => format!("assign to {id}"),
            None => "unassign".into(),
        },
        ActionSpec::Reply { canned_response_id } => {
            let name = canned.iter().find(|c| c.id == *canned_response_id).map_or("(deleted)", |c| c.name.as_str());
            format!("reply with canned response \"{name}\"")
        }
        ActionSpec::Note { body } => format!("add an internal note: {}", body.chars().take(80).collect::<String>()),
        ActionSpec::AddTags { tags } => format!("add tags {}", list(tags)),
        ActionSpec::RemoveTags { tags } => format!("remove tags {}", list(tags)),
        ActionSpec::SendEmail { to, subject, .. } => format!("e-mail {to}: {subject}"),
        ActionSpec::Escalate => "escalate".into(),
        ActionSpec::CallWebhook { webhook_id } => format!("call webhook {webhook_id}"),
    }
}

async fn show_macros(desk: &Desk, signed: &Signed, error: Option<&AppError>) -> Result<Response, WebError> {
    let all_canned = canned::list(desk, &signed.auth, None).await?;
    let shared_canned: Vec<CannedResponse> = all_canned.into_iter().filter(|c| c.owner_id.is_none()).collect();
    let macros = macros::list(desk, &signed.auth)
        .await?
        .into_iter()
        .map(|m| MacroLine { steps: m.actions.iter().map(|a| action_words(a, &shared_canned)).collect(), m })
        .collect();
    let page = MacrosPage {
        macros,
        shared_canned,
        statuses: Status::ALL,
        priorities: Priority::ALL,
        categories: desk.db.categories().await?.into_iter().map(|c| c.name).collect(),
        error: error.map(describe),
    };
    let mut res = signed.page(&page)?;
    if let Some(e) = error {
        *res.status_mut() = e.status();
    }
    Ok(res)
}

async fn macros_page(State(desk): State<Desk>, SignedAdmin(signed): SignedAdmin) -> Result<Response, WebError> {
    show_macros(&desk, &signed, None).await
}

/// The macro form: each field filled in is one action, in the order a macro applies them.
#[derive(Deserialize, Default)]
#[serde(default)]
struct MacroForm {
    name: String,
    description: String,
    status: String,
    resolution: String,
    priority: String,
    category: String,
    add_tags: String,
    remove_tags: String,
    reply: String,
    note: String,
}

impl MacroForm {
    fn actions(&self) -> Result<Vec<ActionSpec>, WebError> {
        let filled = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let mut out = Vec::new();
        if let Some(status) = filled(&self.status) {
            out.push(ActionSpec::SetStatus { status, resolution: filled(&self.resolution) });
        }
        if let Some(priority) = filled(&self.priority) {
            out.push(ActionSpec::SetPriority { priority });
        }
        if let Some(category) = filled(&self.category) {
            out.push(ActionSpec::SetCategory { category: Some(category) });
        }
        if filled(&self.add_tags).is_some() {
            out.push(ActionSpec::AddTags { tags: comma_list(&self.add_tags) });
        }
        if filled(&self.remove_tags).is_some() {
            out.push(ActionSpec::RemoveTags { tags: comma_list(&self.remove_tags) });
        }
        if let Some(reply) = filled(&self.reply) {
            let id = reply.parse().map_err(|_| WebError::Form("Choose a canned response from the list.".into()))?;
            out.push(ActionSpec::Reply { canned_response_id: id });
        }
        if let Some(body) = filled(&self.note) {
            out.push(ActionSpec::Note { body });
        }
        Ok(out)
    }
}

async fn add_macro(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    CsrfForm(form): CsrfForm<MacroForm>,
) -> Result<Response, WebError> {
    let input = MacroInput { actions: form.actions()?, name: form.name, description: form.description };
    match macros::create(&desk, &signed.auth, input).await {
        Ok(_) => Ok(see_other("/admin/macros")),
        Err(e @ (AppError::Validation(_) | AppError::Conflict(_))) => show_macros(&desk, &signed, Some(&e)).await,
        Err(e) => Err(e.into()),
    }
}

async fn delete_macro(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    macros::delete(&desk, &signed.auth, canned_id(&id)?).await?;
    Ok(see_other("/admin/macros"))
}
