//! `sluice-admin`: the operator's endpoints, which the ingest API and the gateway both mount,
//! so that `sluice dead-letters` (against the ingest API) and the dashboard's dead-letters page
//! (on the gateway) run the same code on the same keys.
//!
//! - [`Admin`]: what the handlers need (Redis, key names, the token), one per server.
//! - [`routes`]: `/admin/dead-letters`: list (newest first, paged), requeue or delete one,
//!   requeue all, purge; off unless the server's admin token is set, and then every call needs
//!   `Authorization: Bearer <token>`.
//! - [`letters`]: the operations the routes run; [`lua`]: their scripts, one module beside each.
//! - [`error`]: the answers when something is refused; [`openapi`]: the routes' document.
//! - [`throttle`]: wrong tokens counted per client address, and brute force slowed.

pub mod error;
pub mod letters;
pub mod lua;
pub mod openapi;
pub mod routes;
pub mod throttle;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use sluice_core::connect::{CallFailed, RedisConnection};
use sluice_core::keys::Keys;
use sluice_core::settings::Secret;
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
    /// The bearer token; `None` turns the endpoints off.
    token: Option<Secret>,
    /// The variable that sets the token, named when the endpoints are off.
    setting: &'static str,
    /// Wrong tokens per client address, shared by the server's threads.
    throttle: Arc<Throttle>,
}

impl Admin {
    /// The admin state of one server. `token` empty turns the endpoints off; `setting` is the
    /// environment variable that sets it (`SLUICE__INGEST__ADMIN_TOKEN`, ...).
    pub fn new(
        redis: RedisConnection,
        keys: Keys,
        redis_timeout: Duration,
        token: &Secret,
        setting: &'static str,
    ) -> Self {
        Self {
            redis,
            keys,
            redis_timeout,
            token: (!token.is_empty()).then(|| token.clone()),
            setting,
            throttle: Arc::default(),
        }
    }

    /// Whether the endpoints are on.
    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    /// Checks `Authorization: Bearer <token>`, in constant time whatever the first difference,
    /// so timing says nothing about the token; an address past its wrong tokens
    /// ([`throttle`]) is refused with 429 before its token is read.
    pub fn authorize(&self, req: &actix_web::HttpRequest) -> Result<(), AdminError> {
        let Some(expected) = self.token.as_ref().map(Secret::expose) else {
            return Err(AdminError::Disabled(self.setting));
        };
        let peer = req.peer_addr().map(|a| a.ip());
        let now = Instant::now();
        if let Verdict::Throttled(wait) = self.throttle.admit(peer, now) {
            return Err(AdminError::Throttled(wait));
        }
        let given = sluice_http::bearer(req).unwrap_or("");
        if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            self.throttle.failed(peer, now);
            Err(AdminError::Unauthorized)
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
