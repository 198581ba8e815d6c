//! `/admin/keys`: make, list and revoke API keys, behind the admin token (as the dead letters
//! are). Each change is logged with the key's name and prefix and the caller's address.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use sluice_admin::Admin;
use sluice_admin::audit::Action;
use sluice_admin::error::AdminError;
use sluice_core::auth::store::{self, KeyError};
use sluice_proto::error::ErrorBody;
use sluice_proto::keys::{CreatedKey, KeyInfo, KeyList, NewKey};

use crate::state::AppState;

/// Why a key call was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The admin token was missing, wrong or throttled, or the admin endpoints are off.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The body is not the JSON of a new key.
    #[error("request body is not a new key: {0}")]
    Malformed(String),
    /// The key operation failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl ResponseError for KeysError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Admin(e) => e.status_code(),
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::Key(KeyError::Invalid { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Key(KeyError::NameTaken(_)) => StatusCode::CONFLICT,
            Self::Key(KeyError::NoSuchKey(_)) => StatusCode::NOT_FOUND,
            Self::Key(KeyError::Postgres(_)) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (code, fields) = match self {
            Self::Admin(e) => return e.error_response(),
            Self::Malformed(_) => ("malformed_json", Default::default()),
            Self::Key(KeyError::Invalid { field, reason }) => (
                "validation_failed",
                [((*field).to_owned(), reason.clone())].into(),
            ),
            Self::Key(KeyError::NameTaken(_)) => ("key_name_taken", Default::default()),
            Self::Key(KeyError::NoSuchKey(_)) => ("key_not_found", Default::default()),
            Self::Key(KeyError::Postgres(_)) => ("postgres_unavailable", Default::default()),
        };
        let mut response = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header(("Retry-After", "1"));
        }
        response.json(ErrorBody::with_fields(code, self.to_string(), fields))
    }
}

/// The failures of every key call, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum KeyErrors {
    /// Missing or wrong admin token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The admin endpoints are off, or no key has the name.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Too many wrong admin tokens from this address lately.
    #[response(status = 429)]
    Throttled(ErrorBody),
    /// PostgreSQL is unavailable (or its `api_keys` table is not made yet: the workers make it).
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// `POST /admin/keys`: a new key, shown this once.
#[utoipa::path(post, path = "/admin/keys", tag = "admin", security(("admin_token" = [])),
    request_body(content = NewKey, content_type = "application/json"),
    responses(
        (status = 201, description = "The key, shown this once, and what is kept of it", body = CreatedKey),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 409, description = "A key has this name already", body = ErrorBody),
        (status = 422, description = "A field is not acceptable (`fields` says which)", body = ErrorBody),
        KeyErrors,
))]
pub async fn create(
    req: HttpRequest,
    body: web::Bytes,
    admin: web::Data<Admin>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, KeysError> {
    let actor = admin.authorize(&req)?;
    let new: NewKey =
        serde_json::from_slice(&body).map_err(|e| KeysError::Malformed(e.to_string()))?;
    let created = store::create(&state.shared.pool, &new).await?;
    let info = &created.info;
    let scopes: Vec<&str> = info.scopes.iter().map(|s| s.name()).collect();
    let target = format!("{} ({}; {})", info.name, info.prefix, scopes.join(" "));
    admin.audit(&actor, Action::KeyCreated, &target).await;
    Ok(HttpResponse::Created().json(created))
}

/// `GET /admin/keys`: every key, newest first; never a key itself.
#[utoipa::path(get, path = "/admin/keys", tag = "admin", security(("admin_token" = [])),
    responses(
        (status = 200, description = "Every key, newest first", body = KeyList),
        KeyErrors,
))]
pub async fn list(
    req: HttpRequest,
    admin: web::Data<Admin>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, KeysError> {
    admin.authorize(&req)?;
    let keys = store::list(&state.shared.pool).await?;
    Ok(HttpResponse::Ok().json(KeyList { keys }))
}

/// `DELETE /admin/keys/{name}`: revokes the key; every server refuses it within about a second.
#[utoipa::path(delete, path = "/admin/keys/{name}", tag = "admin", security(("admin_token" = [])),
    params(("name" = String, Path, description = "The key's name")),
    responses(
        (status = 200, description = "Revoked (again: unchanged); what is kept of it", body = KeyInfo),
        KeyErrors,
))]
pub async fn revoke(
    req: HttpRequest,
    name: web::Path<String>,
    admin: web::Data<Admin>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, KeysError> {
    let actor = admin.authorize(&req)?;
    let info = store::revoke(&state.shared.pool, &name).await?;
    let target = format!("{} ({})", info.name, info.prefix);
    admin.audit(&actor, Action::KeyRevoked, &target).await;
    Ok(HttpResponse::Ok().json(info))
}
