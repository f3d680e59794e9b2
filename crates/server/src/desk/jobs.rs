//! The job queue as admins work it.

use super::error::{AppError, AppResult};
use super::{AuthUser, Desk};

/// Puts a dead job back in the queue.
pub(crate) async fn retry(desk: &Desk, admin: &AuthUser, id: i64) -> AppResult<crate::db::Job> {
    match desk.db.retry_job(id).await? {
        Some(job) => {
            tracing::info!(admin = %admin.user.id, job_id = id, kind = %job.kind, "dead job retried");
            desk.wake_workers();
            Ok(job)
        }
        None if desk.db.job(id).await?.is_some() => Err(AppError::Conflict("only a dead job can be retried".into())),
        None => Err(AppError::NotFound),
    }
}
