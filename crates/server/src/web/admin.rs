//! Admin pages: the dashboard, users, the taxonomy, the job queue and AI quality.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use smart_ticket_domain::{Priority, Role};
use std::collections::BTreeMap;

use super::account::parse_capacity;
use super::{CsrfForm, Signed, WebError, comma_list, describe, see_other};
use crate::db::{DashboardRow, JOB_STATES};
use crate::http::AppState;
use crate::http::accounts::{UserChange, change_user};
use crate::http::admin::retry;
use crate::http::ai::{engine_status, quality_since, request_retrain};
use crate::http::error::AppError;
use crate::http::taxonomy::{save_category, save_skill};
use crate::model::{Ts, UserId};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/users", get(users))
        .route("/admin/users/{id}", post(save_user))
        .route("/admin/taxonomy", get(taxonomy))
        .route("/admin/taxonomy/categories", post(save_category_form))
        .route("/admin/taxonomy/categories/{name}/delete", post(delete_category))
        .route("/admin/taxonomy/skills", post(save_skill_form))
        .route("/admin/jobs", get(jobs))
        .route("/admin/jobs/{id}/retry", post(retry_form))
        .route("/admin/ai", get(ai_page))
        .route("/admin/ai/retrain", post(retrain_form))
}

/// An admin; everyone else gets "not found", as for any page they may not see.
fn admin_only(signed: &Signed) -> Result<(), WebError> {
    if signed.is_admin() { Ok(()) } else { Err(WebError::App(AppError::NotFound)) }
}

/// Shows `page` again with the reason a form was refused (422 and the like).
fn refused(signed: &Signed, page: &str, mut ctx: Value, e: &AppError) -> Result<Response, WebError> {
    ctx["error"] = json!(describe(e));
    let mut res = signed.page(page, ctx)?;
    *res.status_mut() = e.status();
    Ok(res)
}

const WINDOW_DAYS: i64 = 30;

async fn dashboard(State(state): State<AppState>, signed: Signed) -> Result<Response, WebError> {
    admin_only(&signed)?;
    let rows = state.db.dashboard_rows(Ts::now() + chrono::Duration::days(-WINDOW_DAYS)).await?;
    signed.page("admin_dashboard.html", dashboard_context(&rows, Ts::now()))
}

/// Open tickets by priority and category, SLA breaches, and median times to assignment and resolution
/// over the window.
fn dashboard_context(rows: &[DashboardRow], now: Ts) -> Value {
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
    json!({
        "open": open.len(),
        "breaches": breaches,
        "median_assign": median(to_assign).map(duration_words),
        "median_resolve": median(to_resolve).map(duration_words),
        "window_days": WINDOW_DAYS,
        "by_priority": bars("Open tickets by priority", &by_priority),
        "by_category": bars("Open tickets by category", &by_category),
    })
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
fn bars(label: &str, data: &[(String, usize)]) -> Value {
    let max = data.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let shown: Vec<&(String, usize)> = data.iter().filter(|(_, n)| *n > 0).collect();
    let bars: Vec<Value> = shown
        .iter()
        .enumerate()
        .map(|(i, (name, n))| {
            json!({
                "label": name, "value": n, "y": i * 26,
                "width": (*n as f64 / max as f64 * 260.0).round().max(2.0),
                "class": name,
            })
        })
        .collect();
    json!({ "label": label, "height": shown.len().max(1) * 26, "bars": bars })
}

#[derive(Deserialize, Default)]
struct UserQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    role: String,
    cursor: Option<String>,
}

async fn users_context(state: &AppState, q: &UserQuery) -> Result<Value, WebError> {
    let role = match q.role.as_str() {
        "" => None,
        r => Some(r.parse::<Role>().map_err(|e| WebError::Form(e.message.into_owned()))?),
    };
    let text = Some(q.q.trim()).filter(|s| !s.is_empty());
    let limit = 50;
    let users = state.db.list_users(text, role, q.cursor.as_deref().filter(|c| !c.is_empty()), limit).await?;
    let (users, next) = crate::http::into_page(users, limit, |u| u.email.clone());
    Ok(json!({ "users": users, "next": next, "q": q.q, "role": q.role, "roles": Role::ALL }))
}

async fn users(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<UserQuery>,
) -> Result<Response, WebError> {
    admin_only(&signed)?;
    signed.page("admin_users.html", users_context(&state, &q).await?)
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
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<UserForm>,
) -> Result<Response, WebError> {
    admin_only(&signed)?;
    let id = UserId(id.parse().map_err(|_| WebError::App(AppError::NotFound))?);
    let change = UserChange {
        role: form.role.filter(|r| !r.is_empty()),
        skills: Some(comma_list(&form.skills)),
        away: Some(form.away.is_some()),
        capacity: Some(parse_capacity(form.capacity.as_deref())?),
    };
    match change_user(&state, &signed.auth, id, change).await {
        Ok(user) => {
            let mut ctx = users_context(&state, &UserQuery::default()).await?;
            ctx["flash"] = json!(format!("Saved {}.", user.email));
            signed.page("admin_users.html", ctx)
        }
        Err(e @ (AppError::Validation(_) | AppError::Conflict(_))) => {
            let ctx = users_context(&state, &UserQuery::default()).await?;
            refused(&signed, "admin_users.html", ctx, &e)
        }
        Err(e) => Err(e.into()),
    }
}

async fn taxonomy_context(state: &AppState) -> Result<Value, WebError> {
    Ok(json!({ "categories": state.db.categories().await?, "skills": state.db.skills().await? }))
}

async fn taxonomy(State(state): State<AppState>, signed: Signed) -> Result<Response, WebError> {
    admin_only(&signed)?;
    signed.page("admin_taxonomy.html", taxonomy_context(&state).await?)
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
    State(state): State<AppState>,
    signed: Signed,
    CsrfForm(form): CsrfForm<CategoryForm>,
) -> Result<Response, WebError> {
    admin_only(&signed)?;
    let examples: Vec<String> = form.examples.lines().map(str::to_owned).collect();
    match save_category(&state, &form.name, &form.description, &examples).await {
        Ok(_) => Ok(see_other("/admin/taxonomy")),
        Err(e @ AppError::Validation(_)) => {
            refused(&signed, "admin_taxonomy.html", taxonomy_context(&state).await?, &e)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct NoFields {}

async fn delete_category(
    State(state): State<AppState>,
    signed: Signed,
    Path(name): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    admin_only(&signed)?;
    let name = smart_ticket_domain::CategoryName::parse(&name).map_err(|_| WebError::App(AppError::NotFound))?;
    if !state.db.delete_category(&name).await? {
        return Err(AppError::NotFound.into());
    }
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
    State(state): State<AppState>,
    signed: Signed,
    CsrfForm(form): CsrfForm<SkillForm>,
) -> Result<Response, WebError> {
    admin_only(&signed)?;
    match save_skill(&state, &form.name, &form.description).await {
        Ok(_) => Ok(see_other("/admin/taxonomy")),
        Err(e @ AppError::Validation(_)) => {
            refused(&signed, "admin_taxonomy.html", taxonomy_context(&state).await?, &e)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct JobQuery {
    state: Option<String>,
}

async fn jobs_context(state: &AppState, job_state: &str) -> Result<Value, WebError> {
    if !JOB_STATES.contains(&job_state) {
        return Err(WebError::Form(format!("state must be one of: {}", JOB_STATES.join(", "))));
    }
    let jobs = state.db.list_jobs(job_state, None, 100).await?;
    let mut counts = serde_json::Map::new();
    for s in ["queued", "running", "dead"] {
        counts.insert(s.into(), json!(state.db.count_jobs_in_state(s).await?));
    }
    Ok(json!({ "jobs": jobs, "state": job_state, "states": JOB_STATES, "counts": counts }))
}

async fn jobs(State(state): State<AppState>, signed: Signed, Query(q): Query<JobQuery>) -> Result<Response, WebError> {
    admin_only(&signed)?;
    let ctx = jobs_context(&state, q.state.as_deref().unwrap_or("dead")).await?;
    signed.page("admin_jobs.html", ctx)
}

async fn retry_form(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    admin_only(&signed)?;
    let id: i64 = id.parse().map_err(|_| WebError::App(AppError::NotFound))?;
    match retry(&state, &signed.auth, id).await {
        Ok(job) => {
            let mut ctx = jobs_context(&state, "dead").await?;
            ctx["flash"] = json!(format!("Job {} ({}) is queued again.", job.id, job.kind));
            signed.page("admin_jobs.html", ctx)
        }
        Err(e @ AppError::Conflict(_)) => refused(&signed, "admin_jobs.html", jobs_context(&state, "dead").await?, &e),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct AiQuery {
    days: Option<i64>,
}

async fn ai_page(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<AiQuery>,
) -> Result<Response, WebError> {
    admin_only(&signed)?;
    let days = q.days.unwrap_or(WINDOW_DAYS).clamp(1, 3650);
    let (_, quality) = quality_since(&state, days).await?;
    let status = engine_status(&state).await?;
    signed.page("admin_ai.html", json!({ "days": days, "quality": quality, "status": status }))
}

async fn retrain_form(
    State(state): State<AppState>,
    signed: Signed,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    admin_only(&signed)?;
    request_retrain(&state, &signed.auth).await?;
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
        let v = dashboard_context(&rows, Ts::now());
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
