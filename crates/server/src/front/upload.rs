//! Reading a `multipart/form-data` body (the API's upload, the pages' forms with files): its text fields and
//! its files, with the size limit answered as a clear 413.

use axum::extract::multipart::{Multipart, MultipartError};
use axum::http::StatusCode;

use crate::desk::attachments::Upload;
use crate::desk::error::AppError;

/// A multipart body's text fields, in order, and its files (empty file inputs left out).
pub async fn read_multipart(
    mut form: Multipart,
    max_body: usize,
) -> Result<(Vec<(String, String)>, Vec<Upload>), AppError> {
    let (mut fields, mut files) = (Vec::new(), Vec::new());
    while let Some(field) = form.next_field().await.map_err(|e| unreadable(e, max_body))? {
        let name = field.name().unwrap_or("").to_owned();
        match field.file_name().map(str::to_owned) {
            Some(file_name) => {
                let content_type = field.content_type().unwrap_or("application/octet-stream").to_owned();
                let data = field.bytes().await.map_err(|e| unreadable(e, max_body))?.to_vec();
                if !(file_name.is_empty() && data.is_empty()) {
                    files.push(Upload { file_name, content_type, data });
                }
            }
            None => fields.push((name, field.text().await.map_err(|e| unreadable(e, max_body))?)),
        }
    }
    Ok((fields, files))
}

fn unreadable(e: MultipartError, max_body: usize) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let limit = crate::mail::inbound::megabytes(max_body);
        AppError::FileTooLarge(format!("the upload is over the limit of {limit} in all"))
    } else {
        AppError::BadRequest { code: "bad_multipart", message: format!("the multipart body could not be read: {e}") }
    }
}

/// The largest body an upload may be: a few files at the size limit each.
pub fn body_limit(max_file: usize) -> usize {
    max_file.saturating_mul(4).saturating_add(1 << 20)
}
