//! `sluice-admin`: the operator's endpoints, which the ingest API and the gateway both mount,
//! so that `sluice dead-letters` (against the ingest API) and the dashboard's dead-letters page
//! (on the gateway) run the same code on the same keys.
//!
//! - [`Admin`]: what the handlers need (Redis, key names, the credentials), one per server.
//! - [`routes`]: `/admin/dead-letters`: list (newest first, paged), requeue or delete one,
//!   requeue all, purge; off unless the server's admin token is set or callers are checked
//!   (`auth.mode = keys`), and then every call needs `Authorization: Bearer` with the token or
//!   a credential with the `admin` scope.
//! - [`letters`]: the operations the routes run; [`lua`]: their scripts, one module beside each.
//! - [`error`]: the answers when something is refused; [`openapi`]: the routes' document.
//! - [`throttle`]: wrong tokens counted per client address, and brute force slowed.

pub mod audit;
pub mod error;
pub mod letters;
pub mod lua;
pub mod openapi;
pub mod routes;
pub mod throttle;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use sluice_core::auth::{Caller, Refused, Verifier};
use sluice_core::connect::{CallFailed, RedisConnection};
use sluice_core::keys::Keys;
use sluice_core::settings::Secret;
use sluice_proto::keys::Scope;
use subtle::ConstantTimeEq;

use crate::error::AdminError;
use crate::throttle::{Throttle, Verdict};

/// What the admin handlers share; cheap to clone.
#[derive(Clone)]
pub struct Admin {
    /// Shared multiplexed connection (no admin call blocks).
    pub redis: RedisConnection,
    /// Key names under the configured prefix.
    pub keys: Keys,
    /// Longest wait for one Redis call.
    pub redis_timeout: Duration,
    /// The bearer token, when set.
    token: Option<Secret>,
    /// The variable that sets the token, named when the endpoints are off.
    setting: &'static str,
    /// Credentials with the `admin` scope, when callers are checked.
    verifier: Option<Arc<Verifier>>,
    /// Wrong tokens per client address, shared by the server's threads.
    throttle: Arc<Throttle>,
    /// Where the audit trail is written ([`audit`]).
    postgres: deadpool_postgres::Pool,
}

/// Who may call a server's admin endpoints.
pub struct Credentials<'a> {
    /// The server's admin token; empty: none.
    pub token: &'a Secret,
    /// The environment variable that sets it (`SLUICE__INGEST__ADMIN_TOKEN`, ...).
    pub setting: &'static str,
    /// The server's credentials, when callers are checked: one with the `admin` scope is let in.
    pub verifier: Option<Arc<Verifier>>,
}

/// Who made an admin call, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `admin token`, `key <name> (slk_…)` or `jwt:<sub>`.
    pub name: String,
    /// The client's address.
    pub address: Option<std::net::IpAddr>,
}

impl Admin {
    /// The admin state of one server; the endpoints are off when `credentials` name no way in.
    pub fn new(
        redis: RedisConnection,
        keys: Keys,
        redis_timeout: Duration,
        credentials: Credentials<'_>,
        postgres: deadpool_postgres::Pool,
    ) -> Self {
        let token = credentials.token;
        Self {
            redis,
            keys,
            redis_timeout,
            token: (!token.is_empty()).then(|| token.clone()),
            setting: credentials.setting,
            verifier: credentials.verifier,
            throttle: Arc::default(),
            postgres,
        }
    }

    /// Whether the endpoints are on.
    pub fn enabled(&self) -> bool {
        self.token.is_some() || self.verifier.is_some()
    }

    /// Checks `Authorization: Bearer`: the admin token, compared in constant time whatever the
    /// first difference, so timing says nothing about it; else, when callers are checked, a
    /// credential with the `admin` scope. An address past its failures ([`throttle`]) is
    /// refused with 429 before its credential is read.
    pub fn authorize(&self, req: &actix_web::HttpRequest) -> Result<Actor, AdminError> {
        if !self.enabled() {
            return Err(AdminError::Disabled(self.setting));
        }
        let address = req.peer_addr().map(|a| a.ip());
        let now = Instant::now();
        if let Verdict::Throttled(wait) = self.throttle.admit(address, now) {
            return Err(AdminError::Throttled(wait));
        }
        let given = sluice_http::bearer(req);
        let token_matches = match (&self.token, given) {
            (Some(expected), Some(given)) => {
                bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes()))
            }
            _ => false,
        };
        if token_matches {
            let name = "admin token".to_owned();
            return Ok(Actor { name, address });
        }
        let checked = match &self.verifier {
            Some(verifier) => verifier.check(given, Scope::Admin, chrono::Utc::now()),
            None => Err(given.map_or(Refused::Missing, |_| Refused::Invalid)),
        };
        match checked {
            Ok(caller) => Ok(Actor {
                name: self.name_of(&caller),
                address,
            }),
            Err(refused) => {
                if matches!(
                    refused,
                    Refused::Missing | Refused::Invalid | Refused::WrongSecret
                ) {
                    self.throttle.failed(address, now);
                }
                Err(AdminError::Refused(refused))
            }
        }
    }

    /// Records what `actor` did ([`audit::record`]).
    pub async fn audit(&self, actor: &Actor, action: audit::Action, target: &str) {
        audit::record(&self.postgres, actor, action, target).await;
    }

    /// The most recent `limit` entries of the audit trail.
    pub async fn recent_audit(
        &self,
        limit: i64,
    ) -> Result<Vec<sluice_proto::audit::AuditEntry>, AdminError> {
        audit::recent(&self.postgres, limit).await.map_err(|e| {
            tracing::warn!(error = e, "cannot read the audit trail");
            AdminError::PostgresUnavailable
        })
    }

    /// How the audit trail names `caller`: a key by its name and prefix, a token by its `sub`.
    fn name_of(&self, caller: &Caller) -> String {
        let ring = self.verifier.as_ref().and_then(|v| v.keyring());
        match ring.and_then(|ring| ring.name_of(&caller.id)) {
            Some(name) => format!("key {name} ({})", caller.id),
            None => caller.id.clone(),
        }
    }

    /// Awaits a Redis call for at most `redis_timeout` ([`sluice_core::connect::within`]): a
    /// timeout or an error is [`AdminError::RedisUnavailable`], a refusal for `maxmemory`
    /// [`AdminError::RedisFull`].
    async fn within<T>(
        &self,
        what: &'static str,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, AdminError> {
        match sluice_core::connect::within(self.redis_timeout, what, call).await {
            Ok(value) => Ok(value),
            Err(CallFailed::Full) => Err(AdminError::RedisFull),
            Err(failed) => {
                let error = failed.to_string();
                let redis = sluice_core::connect::redis_name();
                tracing::warn!(error, "{redis} unavailable ({what} failed)");
                Err(AdminError::RedisUnavailable)
            }
        }
    }
}

/// Registers `/admin/dead-letters` and its sub-paths. The server adds `web::Data<Admin>`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/dead-letters")
            .route(web::get().to(routes::list))
            .route(web::delete().to(routes::purge))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/admin/audit")
            .route(web::get().to(routes::audit))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/admin/dead-letters/requeue")
            .route(web::post().to(routes::requeue))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/admin/dead-letters/{id}")
            .route(web::delete().to(routes::delete_one))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/admin/dead-letters/{id}/requeue")
            .route(web::post().to(routes::requeue_one))
            .default_service(web::to(method_not_allowed)),
    );
}

async fn method_not_allowed() -> actix_web::HttpResponse {
    actix_web::ResponseError::error_response(&AdminError::MethodNotAllowed)
}
