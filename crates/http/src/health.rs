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

/// `GET /ready` body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `"ready"` or `"not_ready"`.
    pub status: String,
    /// Whether Redis answered.
    pub redis: Dependency,
    /// Whether PostgreSQL answered `SELECT 1`.
    pub postgres: Dependency,
}

impl Readiness {
    /// Ready when both are up.
    pub fn of(redis: Dependency, postgres: Dependency) -> Self {
        let ready = redis == Dependency::Up && postgres == Dependency::Up;
        Self {
            status: if ready { "ready" } else { "not_ready" }.into(),
            redis,
            postgres,
        }
    }

    /// 200 with this body when ready, 503 otherwise.
    pub fn respond(self) -> HttpResponse {
        if self.status == "ready" {
            HttpResponse::Ok().json(self)
        } else {
            HttpResponse::ServiceUnavailable().json(self)
        }
    }
}
