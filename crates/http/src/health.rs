//! The `GET /ready` answer every service gives: 200 only when each dependency answers, 503
//! naming the one that does not.

use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};

/// State of one dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Dependency {
    /// Answered in time.
    Up,
    /// Failed or did not answer in time.
    Down,
}

impl Dependency {
    /// `Up` when `up`.
    pub fn from_up(up: bool) -> Self {
        if up { Self::Up } else { Self::Down }
    }
}

/// Whether a service is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    /// Every dependency answers.
    Ready,
    /// One does not (named in the body).
    NotReady,
}

/// `GET /ready` body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: ReadyStatus,
    /// Whether Redis answered.
    pub redis: Dependency,
    /// Whether PostgreSQL answered `SELECT 1`; absent for a service that does not use it
    /// (the gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<Dependency>,
    /// With `redis.ack_replicas`: whether the primary has that many replicas in sync, so that
    /// pushes can be acknowledged; absent without acknowledgements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<Dependency>,
    /// The PostgreSQL server this service reaches (with a multi-host `postgres.url`, the
    /// primary), and since when; absent before it reached one, and for the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_primary: Option<sluice_core::primary::PrimaryReport>,
}

impl Readiness {
    /// Ready when both are up.
    pub fn of(redis: Dependency, postgres: Dependency) -> Self {
        Self::new(redis, Some(postgres))
    }

    /// Ready when Redis is up, for a service that uses nothing else.
    pub fn redis_only(redis: Dependency) -> Self {
        Self::new(redis, None)
    }

    fn new(redis: Dependency, postgres: Option<Dependency>) -> Self {
        let ready = redis == Dependency::Up && postgres != Some(Dependency::Down);
        Self {
            status: if ready {
                ReadyStatus::Ready
            } else {
                ReadyStatus::NotReady
            },
            redis,
            postgres,
            replication: None,
            postgres_primary: None,
        }
    }

    /// Also not ready while `replication` (when given) is down.
    pub fn with_replication(mut self, replication: Option<Dependency>) -> Self {
        self.replication = replication;
        if replication == Some(Dependency::Down) {
            self.status = ReadyStatus::NotReady;
        }
        self
    }

    /// Says which PostgreSQL server the service reaches.
    pub fn with_primary(mut self, primary: Option<sluice_core::primary::PrimaryReport>) -> Self {
        self.postgres_primary = primary;
        self
    }

    /// 200 with this body when ready, 503 otherwise.
    pub fn respond(self) -> HttpResponse {
        if self.status == ReadyStatus::Ready {
            HttpResponse::Ok().json(self)
        } else {
            HttpResponse::ServiceUnavailable().json(self)
        }
    }
}
