//! Admin pages: the dashboard, users, the taxonomy, the job queue and AI quality.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use smart_ticket_domain::{InboundState, JobState, Priority, Role};
use std::collections::BTreeMap;

use super::account::parse_capacity;
use super::{CsrfForm, Page, Signed, SignedAdmin, WebError, comma_list, describe, see_other};
use crate::db::{Category, DashboardRow, Job, SkillInfo};
use crate::desk::accounts::{UserChange, change_user};
use crate::desk::ai_admin::{EngineStatus, Quality, engine_status, quality_since, request_retrain};
use crate::desk::jobs::retry;
use crate::desk::mail::{MailView, MailboxHealth, dismiss_mail, list_mail, mailbox_health, retry_mail};
use crate::desk::taxonomy::{delete_category as remove_category, save_category, save_skill};
use crate::desk::{AppError, Desk, into_page, state_filter};
use crate::model::{Ts, User, UserId};

pub fn router() -> Router<Desk> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/settings", post(save_settings))
        .route("/admin/users", get(users))
        .route("/admin/users/{id}", post(save_user))
        .route("/admin/taxonomy", get(taxonomy))
        .route("/admin/taxonomy/categories", post(save_category_form))
        .route("/admin/taxonomy/categories/{name}/delete", post(delete_category))
        .route("/admin/taxonomy/skills", post(save_skill_form))
        .route("/admin/jobs", get(jobs))
        .route("/admin/jobs/{id}/retry", post(retry_form))
        .route("/admin/mail", get(mail_page))
        .route("/admin/mail/{id}/{action}", post(mail_action))
        .route("/admin/ai", get(ai_page))
        .route("/admin/ai/retrain", post(retrain_form))
}

/// An admin page with a one-line notice: what was just done, or why a form was refused.
#[derive(Serialize)]
struct Noticed<P> {
    #[serde(flatten)]
    page: P,
    flash: Option<String>,
    error: Option<String>,
}

impl<P: Page> Page for Noticed<P> {
    const TEMPLATE: &'static str = P::TEMPLATE;
}

/// Shows `page` with what was just done.
fn done<P: Page>(signed: &Signed, page: P, flash: String) -> Result<Response, WebError> {
    signed.page(&Noticed { page, flash: Some(flash), error: None })
}

/// Shows `page` again with the reason a form was refused (422 and the like).
fn refused<P: Page>(signed: &Signed, page: P, e: &AppError) -> Result<Response, WebError> {
    let mut res = signed.page(&Noticed { page, flash: None, error: Some(describe(e)) })?;
    *res.status_mut() = e.status();
    Ok(res)
}

const WINDOW_DAYS: i64 = 30;

async fn dashboard(State(desk): State<Desk>, SignedAdmin(signed): SignedAdmin) -> Result<Response, WebError> {
    let rows = desk.db.dashboard_rows(Ts::now() + chrono::Duration::days(-WINDOW_DAYS)).await?;
    let mut page = dashboard_context(&rows, Ts::now());
    page.knowledge = Some(crate::desk::articles::knowledge_report(&desk, WINDOW_DAYS).await?);
    page.settings = Some(crate::desk::settings::settings(&desk).await?);
    signed.page(&page)
}

#[derive(Deserialize)]
struct SettingsForm {
    /// A checkbox: present when ticked.
    #[serde(default)]
    email_answers: Option<String>,
}

/// The dashboard's settings form.
async fn save_settings(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    CsrfForm(form): CsrfForm<SettingsForm>,
) -> Result<Response, WebError> {
    let change = crate::desk::settings::SettingsChange { email_answers: Some(form.email_answers.is_some()) };
    crate::desk::settings::change_settings(&desk, &signed.auth, change).await?;
    Ok(see_other("/admin"))
}

/// Open tickets by priority and category, SLA breaches, and median times to assignment and resolution
/// over the window.
fn dashboard_context(rows: &[DashboardRow], now: Ts) -> DashboardPage {
    let open: Vec<&DashboardRow> =
        rows.iter().filter(|r| matches!(r.status.as_str(), "open" | "in_progress")).collect();
    let breaches = open.iter().filter(|r| r.deadline.is_some_and(|d| d < now)).count();
    let since = now + chrono::Duration::days(-WINDOW_DAYS);
    let recent = || rows.iter().filter(move |r| r.created_at >= since);
    let to_assign: Vec<i64> =
        recent().filter_map(|r| r.first_assigned_at.map(|a| (a.0 - r.created_at.0).num_seconds())).collect();
    let to_resolve: Vec<i64> =
        recent().filter_map(|r| r.resolved_at.map(|a| (a.0 - r.created_at.0).num_seconds())).collect();
    let by_priority: Vec<(String, usize)> = Priority::ALL
        .iter()
        .rev()
        .map(|p| (p.as_str().to_owned(), open.iter().filter(|r| r.priority == p.as_str()).count()))
        .collect();
    let mut by_category: BTreeMap<String, usize> = BTreeMap::new();
    for r in &open {
        *by_category.entry(r.category.clone().unwrap_or_else(|| "(none)".into())).or_default() += 1;
    }
    let mut by_category: Vec<(String, usize)> = by_category.into_iter().collect();
    by_category.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    DashboardPage {
        open: open.len(),
        breaches,
        median_assign: median(to_assign).map(duration_words),
        median_resolve: median(to_resolve).map(duration_words),
        window_days: WINDOW_DAYS,
        by_priority: bars("Open tickets by priority", &by_priority),
        by_category: bars("Open tickets by category", &by_category),
        knowledge: None,
        settings: None,
    }
}

/// The admin's dashboard over the last `window_days`.
#[derive(Serialize)]
struct DashboardPage {
    open: usize,
    breaches: usize,
    median_assign: Option<String>,
    median_resolve: Option<String>,
    window_days: i64,
    by_priority: Bars,
    by_category: Bars,
    knowledge: Option<crate::desk::articles::KnowledgeReport>,
    settings: Option<crate::desk::settings::DeskSettings>,
}

impl Page for DashboardPage {
    const TEMPLATE: &'static str = "admin_dashboard.html";
}

/// A horizontal bar chart for the template's inline SVG.
#[derive(Serialize)]
struct Bars {
    label: String,
    height: usize,
    bars: Vec<Bar>,
}

#[derive(Serialize)]
struct Bar {
    label: String,
    value: usize,
    y: usize,
    width: f64,
    class: String,
}

fn median(mut v: Vec<i64>) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2 })
}

/// 42 → "42 s", 3 720 → "1 h 2 min", 200 000 → "2 d 7 h".
fn duration_words(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// A horizontal bar chart, laid out for the template's inline SVG (bars up to 260 units wide).
fn bars(label: &str, data: &[(String, usize)]) -> Bars {
    let max = data.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let shown: Vec<&(String, usize)> = data.iter().filter(|(_, n)| *n > 0).collect();
    let bars = shown
        .iter()
        .enumerate()
        .map(|(i, (name, n))| Bar {
            label: name.clone(),
            value: *n,
            y: i * 26,
            width: (*n as f64 / max as f64 * 260.0).round().max(2.0),
            class: name.clone(),
        })
        .collect();
    Bars { label: label.to_owned(), height: shown.len().max(1) * 26, bars }
}

#[derive(Deserialize, Default)]
struct UserQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    role: String,
    cursor: Option<String>,
}

/// Accounts, a page at a time, with the search form.
#[derive(Serialize)]
struct UsersPage {
    users: Vec<User>,
    /// The cursor of the next page.
    next: Option<String>,
    q: String,
    role: String,
    roles: &'static [Role],
}

impl Page for UsersPage {
    const TEMPLATE: &'static str = "admin_users.html";
}

async fn users_context(desk: &Desk, q: &UserQuery) -> Result<UsersPage, WebError> {
    let role = match q.role.as_str() {
        "" => None,
        r => Some(r.parse::<Role>().map_err(|e| WebError::Form(e.message.into_owned()))?),
    };
    let text = Some(q.q.trim()).filter(|s| !s.is_empty());
    let limit = 50;
    let users = desk.db.list_users(text, role, q.cursor.as_deref().filter(|c| !c.is_empty()), limit).await?;
    let (users, next) = into_page(users, limit, |u| u.email.clone());
    Ok(UsersPage { users, next, q: q.q.clone(), role: q.role.clone(), roles: Role::ALL })
}

async fn users(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    Query(q): Query<UserQuery>,
) -> Result<Response, WebError> {
    signed.page(&users_context(&desk, &q).await?)
}

#[derive(Deserialize)]
struct UserForm {
    role: Option<String>,
    #[serde(default)]
    skills: String,
    away: Option<String>,
    capacity: Option<String>,
}

async fn save_user(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<UserForm>,
) -> Result<Response, WebError> {
    let id = UserId(id.parse().map_err(|_| WebError::App(AppError::NotFound))?);
    let change = UserChange {
        role: form.role.filter(|r| !r.is_empty()),
        skills: Some(comma_list(&form.skills)),
        away: Some(form.away.is_some()),
        capacity: Some(parse_capacity(form.capacity.as_deref())?),
    };
    match change_user(&desk, &signed.auth, id, change).await {
        Ok(user) => done(&signed, users_context(&desk, &UserQuery::default()).await?, format!("Saved {}.", user.email)),
        Err(e @ (AppError::Validation(_) | AppError::Conflict(_))) => {
            refused(&signed, users_context(&desk, &UserQuery::default()).await?, &e)
        }
        Err(e) => Err(e.into()),
    }
}

/// The categories and skills triage chooses from, with the forms that edit them.
#[derive(Serialize)]
struct TaxonomyPage {
    categories: Vec<Category>,
    skills: Vec<SkillInfo>,
}

impl Page for TaxonomyPage {
    const TEMPLATE: &'static str = "admin_taxonomy.html";
}

async fn taxonomy_context(desk: &Desk) -> Result<TaxonomyPage, WebError> {
    Ok(TaxonomyPage { categories: desk.db.categories().await?, skills: desk.db.skills().await? })
}

async fn taxonomy(State(desk): State<Desk>, SignedAdmin(signed): SignedAdmin) -> Result<Response, WebError> {
    signed.page(&taxonomy_context(&desk).await?)
}

#[derive(Deserialize)]
struct CategoryForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    examples: String,
}

async fn save_category_form(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    CsrfForm(form): CsrfForm<CategoryForm>,
) -> Result<Response, WebError> {
    let examples: Vec<String> = form.examples.lines().map(str::to_owned).collect();
    match save_category(&desk, &form.name, &form.description, &examples).await {
        Ok(_) => Ok(see_other("/admin/taxonomy")),
        Err(e @ AppError::Validation(_)) => refused(&signed, taxonomy_context(&desk).await?, &e),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct NoFields {}

async fn delete_category(
    State(desk): State<Desk>,
    _admin: SignedAdmin,
    Path(name): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    remove_category(&desk, &name).await?;
    Ok(see_other("/admin/taxonomy"))
}

#[derive(Deserialize)]
struct SkillForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

async fn save_skill_form(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    CsrfForm(form): CsrfForm<SkillForm>,
) -> Result<Response, WebError> {
    match save_skill(&desk, &form.name, &form.description).await {
        Ok(_) => Ok(see_other("/admin/taxonomy")),
        Err(e @ AppError::Validation(_)) => refused(&signed, taxonomy_context(&desk).await?, &e),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct JobQuery {
    state: Option<String>,
}

/// Jobs in one state, with how many wait, run or died.
#[derive(Serialize)]
struct JobsPage {
    jobs: Vec<Job>,
    state: JobState,
    states: &'static [JobState],
    counts: BTreeMap<&'static str, i64>,
}

impl Page for JobsPage {
    const TEMPLATE: &'static str = "admin_jobs.html";
}

async fn jobs_context(desk: &Desk, state: JobState) -> Result<JobsPage, WebError> {
    let jobs = desk.db.list_jobs(state, None, 100).await?;
    let mut counts = BTreeMap::new();
    for s in JobState::PENDING {
        counts.insert(s.as_str(), desk.db.count_jobs_in_state(s).await?);
    }
    Ok(JobsPage { jobs, state, states: JobState::ALL, counts })
}

async fn jobs(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    Query(q): Query<JobQuery>,
) -> Result<Response, WebError> {
    let job_state = state_filter(q.state.as_deref(), JobState::Dead).map_err(WebError::Form)?;
    signed.page(&jobs_context(&desk, job_state).await?)
}

async fn retry_form(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    let id: i64 = id.parse().map_err(|_| WebError::App(AppError::NotFound))?;
    match retry(&desk, &signed.auth, id).await {
        Ok(job) => {
            let flash = format!("Job {} ({}) is queued again.", job.id, job.kind);
            done(&signed, jobs_context(&desk, JobState::Dead).await?, flash)
        }
        Err(e @ AppError::Conflict(_)) => refused(&signed, jobs_context(&desk, JobState::Dead).await?, &e),
        Err(e) => Err(e.into()),
    }
}

/// Received mail in one state (refused by default), with retry and dismiss buttons.
#[derive(Serialize)]
struct MailPage {
    mailboxes: Vec<MailboxHealth>,
    messages: Vec<MailView>,
    state: InboundState,
    states: &'static [InboundState],
}

impl Page for MailPage {
    const TEMPLATE: &'static str = "admin_mail.html";
}

async fn mail_context(desk: &Desk, state: InboundState) -> Result<MailPage, WebError> {
    let mailboxes = mailbox_health(desk).await?;
    Ok(MailPage { mailboxes, messages: list_mail(desk, state).await?, state, states: InboundState::ALL })
}

async fn mail_page(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    Query(q): Query<JobQuery>,
) -> Result<Response, WebError> {
    let state = state_filter(q.state.as_deref(), InboundState::Rejected).map_err(WebError::Form)?;
    signed.page(&mail_context(&desk, state).await?)
}

async fn mail_action(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    Path((id, action)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    let id: i64 = id.parse().map_err(|_| WebError::App(AppError::NotFound))?;
    let result = match action.as_str() {
        "retry" => retry_mail(&desk, &signed.auth, id).await,
        "dismiss" => dismiss_mail(&desk, &signed.auth, id).await,
        _ => return Err(WebError::App(AppError::NotFound)),
    };
    match result {
        Ok(m) => done(
            &signed,
            mail_context(&desk, InboundState::Rejected).await?,
            format!("Message {} is {}.", m.id, m.state),
        ),
        Err(e @ AppError::Conflict(_)) => refused(&signed, mail_context(&desk, InboundState::Rejected).await?, &e),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct AiQuery {
    days: Option<i64>,
}

async fn ai_page(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    Query(q): Query<AiQuery>,
) -> Result<Response, WebError> {
    let days = q.days.unwrap_or(WINDOW_DAYS).clamp(1, 3650);
    let (_, quality) = quality_since(&desk, days).await?;
    let status = engine_status(&desk).await?;
    signed.page(&AiPage { days, quality, status })
}

/// How well the AI does over `days`, what it runs on, and the retrain button.
#[derive(Serialize)]
struct AiPage {
    days: i64,
    quality: Quality,
    status: EngineStatus,
}

impl Page for AiPage {
    const TEMPLATE: &'static str = "admin_ai.html";
}

async fn retrain_form(
    State(desk): State<Desk>,
    SignedAdmin(signed): SignedAdmin,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    request_retrain(&desk, &signed.auth).await?;
    Ok(see_other("/admin/ai"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        status: &str,
        priority: &str,
        created_min_ago: i64,
        assigned_after_s: Option<i64>,
        overdue: bool,
    ) -> DashboardRow {
        let now = Ts::now();
        let created = now + chrono::Duration::minutes(-created_min_ago);
        DashboardRow {
            status: status.into(),
            priority: priority.into(),
            category: Some("bug".into()),
            created_at: created,
            resolved_at: (status == "resolved").then(|| created + chrono::Duration::hours(2)),
            deadline: Some(if overdue {
                now + chrono::Duration::minutes(-1)
            } else {
                now + chrono::Duration::hours(1)
            }),
            first_assigned_at: assigned_after_s.map(|s| created + chrono::Duration::seconds(s)),
        }
    }

    #[test]
    fn dashboard_counts_open_work_breaches_and_medians() {
        let rows = vec![
            row("open", "urgent", 10, Some(1), true),
            row("in_progress", "low", 20, Some(3), false),
            row("resolved", "high", 300, Some(5), true),
            row("open", "urgent", 30, None, false),
        ];
        let v = serde_json::to_value(dashboard_context(&rows, Ts::now())).unwrap();
        assert_eq!(v["open"], 3);
        assert_eq!(v["breaches"], 1, "the resolved ticket past its deadline is no breach");
        assert_eq!(v["median_assign"], "3 s");
        assert_eq!(v["median_resolve"], "2 h 0 min");
        let bars = v["by_priority"]["bars"].as_array().unwrap();
        assert_eq!(bars[0]["label"], "urgent");
        assert_eq!(bars[0]["value"], 2);
        assert_eq!(bars[0]["width"], 260.0);
        assert_eq!(bars.len(), 2, "priorities with nothing open are not drawn");
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration_words(42), "42 s");
        assert_eq!(duration_words(3720), "1 h 2 min");
        assert_eq!(duration_words(200_000), "2 d 7 h");
        assert_eq!(median(vec![5, 1, 3, 2]), Some(2));
        assert_eq!(median(vec![]), None);
    }
}
