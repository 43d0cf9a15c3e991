//! Binary responses: clips (original MP4 bytes, HTTP range requests),
//! event snapshots and thumbnails, camera snapshots, export downloads.
//!
//! Routes take ids, never paths: a clip id must parse as a UUID and is
//! looked up in `clips`; the file path is rebuilt from the stored SHA-256
//! (64 hex digits) by `Layout::clip_path`. Nothing from the URL reaches the
//! file system.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rusqlite::{params, OptionalExtension};
use serde_json::json;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use uuid::Uuid;

use super::audit;
use super::auth::{client_ip, Auth, InvestigatorRole, OperatorRole, ViewerRole};
use super::db::is_missing_table;
use super::error::WebError;
use super::AppState;
use crate::topic::valid_id;

fn jpeg(bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=60"),
            ),
        ],
        bytes,
    )
        .into_response()
}

async fn event_image(st: &AppState, id: String, col: &'static str) -> Result<Response, WebError> {
    let bytes: Option<Vec<u8>> = st
        .db
        .call(move |c| {
            Ok(c.query_row(
                &format!("SELECT {col} FROM web_events WHERE event_id = ?1"),
                params![id],
                |r| r.get::<_, Option<Vec<u8>>>(0),
            )
            .optional()?
            .flatten())
        })
        .await?;
    bytes
        .map(jpeg)
        .ok_or_else(|| WebError::NotFound("no such event image".into()))
}

/// `GET /media/events/{id}/thumb.jpg`.
pub async fn event_thumb(
    State(st): State<AppState>,
    _a: Auth<ViewerRole>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    event_image(&st, id, "thumb").await
}

/// `GET /media/events/{id}/snapshot.jpg`.
pub async fn event_snapshot(
    State(st): State<AppState>,
    _a: Auth<ViewerRole>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    event_image(&st, id, "jpeg").await
}

/// `GET /media/cameras/{agent}/{camera}/snapshot.jpg`: latest camera snapshot.
pub async fn camera_snapshot(
    State(st): State<AppState>,
    _a: Auth<OperatorRole>,
    Path((agent, camera)): Path<(String, String)>,
) -> Result<Response, WebError> {
    if !valid_id(&agent) || !valid_id(&camera) {
        return Err(WebError::BadRequest(
            "agent and camera ids are 1-64 of [A-Za-z0-9_-]".into(),
        ));
    }
    let bytes: Option<Vec<u8>> = st
        .db
        .call(move |c| {
            match c
                .query_row(
                    "SELECT jpeg FROM snapshots WHERE agent_id = ?1 AND camera_id = ?2",
                    params![agent, camera],
                    |r| r.get(0),
                )
                .optional()
            {
                Ok(v) => Ok(v),
                Err(e) if is_missing_table(&e) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .await?;
    bytes
        .map(jpeg)
        .ok_or_else(|| WebError::NotFound("no snapshot for this camera yet".into()))
}

/// A clip id from a URL: a UUID, re-spelled lowercase hyphenated.
pub fn parse_clip_id(s: &str) -> Result<String, WebError> {
    Uuid::parse_str(s)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| {
            WebError::BadRequest(format!(
                "{:?} is not a clip id (a UUID)",
                s.chars().take(80).collect::<String>()
            ))
        })
}

/// True if `s` is 64 lowercase hex digits.
pub fn is_sha_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// True if the request reads the clip from its start (a new view, not a seek).
fn starts_view(req: &Request) -> bool {
    match req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(r) => r.trim().starts_with("bytes=0-"),
    }
}

async fn serve_clip(
    st: AppState,
    user: String,
    clip_id: String,
    req: Request,
    download: bool,
) -> Result<Response, WebError> {
    let id = parse_clip_id(&clip_id)?;
    let id2 = id.clone();
    let row: Option<(String, String, String)> = st
        .db
        .call(move |c| {
            Ok(c.query_row(
                "SELECT sha256, camera_id, agent_id FROM clips WHERE clip_id = ?1",
                params![id2],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
        })
        .await?;
    let (sha, camera, agent) =
        row.ok_or_else(|| WebError::NotFound(format!("no stored clip {id}")))?;
    if !is_sha_hex(&sha) {
        return Err(WebError::internal(
            "clip row has a malformed sha256",
            format!("clip {id}"),
        ));
    }
    let path = st.layout.clip_path(&sha);
    let audited = download || starts_view(&req);
    if audited && req.method() != axum::http::Method::HEAD {
        let action = if download {
            "clip_download"
        } else {
            "clip_view"
        };
        let ip = client_ip(req.extensions());
        let id3 = id.clone();
        let camera = camera.clone();
        st.db
            .call(move |c| {
                audit::append(
                    c,
                    &user,
                    action,
                    &id3,
                    &json!({"agent_id": agent, "camera_id": camera, "ip": ip}),
                )
            })
            .await?;
    }
    let mut resp = ServeFile::new(&path)
        .oneshot(req)
        .await
        .map_err(|e| WebError::internal("cannot read the clip file", e))?
        .map(Body::new);
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(WebError::internal(
            "an indexed clip file is missing",
            path.display().to_string(),
        ));
    }
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if download {
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{camera}-{id}.mp4\""))
        {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(resp)
}

/// `GET /media/clips/{clip_id}`: plays in the browser (ranges, 206/416).
pub async fn clip(
    State(st): State<AppState>,
    Auth(user, _): Auth<ViewerRole>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    serve_clip(st, user.username, id, req, false).await
}

/// `GET /media/clips/{clip_id}/download`: the same bytes as an attachment.
pub async fn clip_download(
    State(st): State<AppState>,
    Auth(user, _): Auth<ViewerRole>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    serve_clip(st, user.username, id, req, true).await
}

/// `GET /media/exports/{id}`: an export zip made earlier.
pub async fn export_download(
    State(st): State<AppState>,
    Auth(user, _): Auth<InvestigatorRole>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, WebError> {
    let id = Uuid::parse_str(&id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| WebError::BadRequest("an export id is a UUID".into()))?;
    let id2 = id.clone();
    let username = user.username.clone();
    let row: Option<(String, String)> = st
        .db
        .call(move |c| {
            let r = c
                .query_row(
                    "SELECT file_name, case_number FROM exports WHERE id = ?1",
                    params![id2],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((_, case)) = &r {
                audit::append(
                    c,
                    &username,
                    "export_download",
                    &id2,
                    &json!({"case_number": case}),
                )?;
            }
            Ok(r)
        })
        .await?;
    let (file_name, _) = row.ok_or_else(|| WebError::NotFound(format!("no export {id}")))?;
    let path = super::export::export_path(&st.layout, &id);
    let mut resp = ServeFile::new(&path)
        .oneshot(req)
        .await
        .map_err(|e| WebError::internal("cannot read the export", e))?
        .map(Body::new);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
