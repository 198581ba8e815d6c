//! `GET /health` (liveness) and `GET /ready` (readiness).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use sluice_core::memory::{self, MemoryStats};
pub use sluice_http::health::{Dependency, Readiness};

use crate::queue;
use crate::state::AppState;

/// `GET /health` body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Health)]
pub struct IngestHealth {
    /// Always `"ok"`: the process is alive and serving.
    pub status: String,
    /// Whether Redis answered.
    pub redis: Dependency,
    /// `LLEN pending_messages`, `null` when Redis did not answer.
    pub queue_length: Option<u64>,
    /// What the HTTP edge did to protect the process.
    #[serde(default)]
    pub connections: EdgeCounts,
    /// Live and resident bytes of the allocator; `null` when it is not jemalloc.
    #[serde(default)]
    pub memory: Option<MemoryStats>,
}

/// Counters of the HTTP edge since the process started.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EdgeCounts {
    /// Connections closed because their socket accepted nothing for `write_timeout_ms`.
    pub write_timeouts: u64,
    /// Requests the HTTP parser refused (400, 408, 431), answered with the JSON error body.
    pub malformed_requests: u64,
    /// What requests hold of `ingest.max_buffered_bytes` right now, across all connections:
    /// bodies being read, and messages being parsed and queued.
    pub buffered_bytes: usize,
    /// Message ids `Prefer: wait` requests wait for right now (`ingest.max_waiters`), counted
    /// once per waiting request.
    #[serde(default)]
    pub waiting_ids: usize,
}

/// Liveness: always 200 while the process serves, with the queue length when Redis answers.
#[utoipa::path(get, path = "/health", tag = "operations", responses(
    (status = 200, description = "The process serves; Redis's state and the queue length", body = IngestHealth),
))]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let mut redis = state.redis.clone();
    let queue_length = queue::length(
        &mut redis,
        &state.keys.pending_messages,
        state.redis_timeout,
    )
    .await;
    HttpResponse::Ok().json(IngestHealth {
        status: "ok".into(),
        redis: if queue_length.is_some() {
            Dependency::Up
        } else {
            Dependency::Down
        },
        queue_length,
        connections: EdgeCounts {
            write_timeouts: state.edge.write_timeouts(),
            malformed_requests: state.edge.malformed(),
            buffered_bytes: state.budget.held(),
            waiting_ids: state.waiters.len(),
        },
        memory: memory::stats(),
    })
}

/// Readiness: 200 only when both Redis and PostgreSQL answer (and, with `auth.mode = keys`, the
/// keys have been read from PostgreSQL once); 503 naming the one that is down.
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "Redis and PostgreSQL answer (and, with redis.ack_replicas, the primary has that many replicas in sync)", body = Readiness),
    (status = 503, description = "One is down, named in the body (`replication`: too few replicas to acknowledge pushes)", body = Readiness),
))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let (redis, postgres) = tokio::join!(redis_up(&state), postgres_up(&state));
    // With keys, not before they are read from PostgreSQL: every key would be refused.
    let keys_loaded = state
        .shared
        .verifier
        .as_ref()
        .is_none_or(|verifier| verifier.is_ready());
    let postgres = if keys_loaded {
        postgres
    } else {
        Dependency::Down
    };
    let replication = match state.acks {
        Some((want, _)) if state.checks_replication => Some(replication_up(&state, want).await),
        _ => None,
    };
    Readiness::of(redis, postgres)
        .with_replication(replication)
        .with_primary(state.primary.report())
        .respond()
}

/// Whether the primary has `want` replicas in sync (`state=online` in `INFO replication`):
/// without them every push would be answered 503 `not_replicated`, so a load balancer should
/// send callers elsewhere.
async fn replication_up(state: &AppState, want: u32) -> Dependency {
    let mut redis = state.redis.clone();
    let mut info = redis::cmd("INFO");
    let call = info.arg("replication").query_async::<String>(&mut redis);
    match queue::within(state.redis_timeout, "INFO replication", call).await {
        Ok(text) => Dependency::from_up(replicas_online(&text) >= want as usize),
        Err(_) => Dependency::Down,
    }
}

/// The replicas `INFO replication` lists as in sync: `state=online`, and their last
/// acknowledgement at most [`sluice_core::settings::limits::REPLICA_LAG_MAX_SECS`] old (a
/// replica acknowledges every second; one that is stopped or cut off stays `online` until
/// `repl-timeout`, 60 s, but its `lag` grows, and it confirms nothing).
pub fn replicas_online(info: &str) -> usize {
    info.lines()
        .filter(|line| line.starts_with("slave") && line.contains("state=online"))
        .filter(|line| {
            let lag = line.split(',').find_map(|field| field.strip_prefix("lag="));
            lag.and_then(|lag| lag.trim().parse::<u64>().ok())
                .is_none_or(|lag| lag <= sluice_core::settings::limits::REPLICA_LAG_MAX_SECS)
        })
        .count()
}

async fn redis_up(state: &AppState) -> Dependency {
    let mut redis = state.redis.clone();
    let ping = redis::cmd("PING");
    match queue::within(
        state.redis_timeout,
        "PING",
        ping.query_async::<String>(&mut redis),
    )
    .await
    {
        Ok(_) => Dependency::Up,
        Err(_) => Dependency::Down,
    }
}

/// Asks the server who it is on the probe's own connection: readiness says whether
/// PostgreSQL answers, not whether this process has a connection to spare, and which server
/// that is. A standby is down: it refuses the writes of the keys' store. One that refuses
/// a connection with `target_session_attrs=read-write` never answers here.
async fn postgres_up(state: &AppState) -> Dependency {
    let check = sluice_core::primary::probe(&state.probe);
    match tokio::time::timeout(crate::state::PROBE_TIMEOUT, check).await {
        Ok(Some(found)) if !found.in_recovery => {
            state
                .primary
                .observe(&found.server, sluice_core::clock::now());
            Dependency::Up
        }
        _ => Dependency::Down,
    }
}
