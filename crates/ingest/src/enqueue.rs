//! Queueing a request's messages: under its `Idempotency-Key` or not, and, with
//! `Prefer: wait`, waiting for their commit. The handlers parse, call [`enqueue`], and answer
//! with [`Answer::respond`].

use std::time::Duration;

use actix_web::HttpResponse;
use chrono::SecondsFormat;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_proto::message::Envelope;
use uuid::Uuid;

use crate::body::Charge;
use crate::error::ApiError;
use crate::group::{Push, Pushed};
use crate::persisted::{Fate, Registration};
use crate::queue::Encoded;
use crate::state::AppState;
use crate::store;
use sluice_proto::api::{BatchQueued, MessageStatus, Queued};

/// An answer a waited request completes with its messages' outcomes.
pub trait Completed: Serialize + DeserializeOwned {
    /// Fills in the outcomes (in the order of the answer's ids); returns the status.
    fn complete(&mut self, outcomes: &[Fate]) -> MessageStatus;
}

impl Completed for Queued {
    fn complete(&mut self, outcomes: &[Fate]) -> MessageStatus {
        let (status, persisted_at) = summary(outcomes);
        self.status = status;
        self.persisted_at = persisted_at;
        status
    }
}

impl Completed for BatchQueued {
    fn complete(&mut self, outcomes: &[Fate]) -> MessageStatus {
        let (status, persisted_at) = summary(outcomes);
        self.dead_lettered_ids = self
            .message_ids
            .iter()
            .zip(outcomes)
            .filter(|(_, o)| **o == Fate::DeadLettered)
            .map(|(id, _)| *id)
            .collect();
        self.status = status;
        self.persisted_at = persisted_at;
        status
    }
}

/// The status of a waited answer, and when the last commit was recorded.
fn summary(outcomes: &[Fate]) -> (MessageStatus, Option<String>) {
    let last = outcomes
        .iter()
        .filter_map(|o| match o {
            Fate::Persisted(at) => Some(*at),
            Fate::DeadLettered => None,
        })
        .max()
        .map(|at| at.to_rfc3339_opts(SecondsFormat::Micros, true));
    if outcomes.contains(&Fate::DeadLettered) {
        (MessageStatus::DeadLettered, last)
    } else {
        (MessageStatus::Persisted, last)
    }
}

/// 201 for persisted, 200 for dead-lettered, both with `Preference-Applied`.
fn waited(status: MessageStatus, wait: Duration) -> actix_web::HttpResponseBuilder {
    let mut builder = if status == MessageStatus::Persisted {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    builder.insert_header(("Preference-Applied", format!("wait={}", wait.as_secs())));
    builder
}

/// The answer to give: this request's, or, for a retry of a used `Idempotency-Key`, the one
/// recorded the first time, already checked to be this endpoint's (and its exact text).
pub enum Answer<A> {
    /// This request's answer.
    Fresh(A),
    /// The first request's answer, parsed, and its exact text.
    Replay(A, String),
}

impl<A: Completed> Answer<A> {
    /// The usual 202 (a replay gets the recorded answer byte for byte), or, when the request
    /// waited and its outcomes came, 201 or 200 with them.
    pub fn respond(self, outcomes: Waited) -> HttpResponse {
        match (self, outcomes) {
            (Self::Fresh(answer), None) => HttpResponse::Accepted().json(answer),
            (Self::Replay(_, first), None) => HttpResponse::Accepted()
                .content_type("application/json")
                .body(first),
            (Self::Fresh(mut answer) | Self::Replay(mut answer, _), Some((outcomes, wait))) => {
                let status = answer.complete(&outcomes);
                waited(status, wait).json(answer)
            }
        }
    }
}

/// Every message's outcome, and the wait that was applied.
pub type Waited = Option<(Vec<Fate>, Duration)>;

/// One request's messages on their way to the queue.
pub struct Queueing<'a> {
    /// Its `Idempotency-Key`, if any.
    pub key: Option<&'a str>,
    /// The messages' ids, in order.
    pub ids: Vec<Uuid>,
    /// The messages, encoded for Redis, in the same order.
    pub envelopes: Encoded,
    /// What they hold of the memory budget; given back, with them, once they are queued.
    pub charge: Charge,
}

impl Queueing<'_> {
    /// The envelopes of one request, encoded; their ids come with them.
    pub fn encode(envelopes: Vec<Envelope>) -> (Vec<Uuid>, Encoded) {
        let ids = envelopes.iter().map(|e| e.id).collect();
        (ids, Encoded::new(envelopes))
    }
}

/// Pushes the envelopes (under the idempotency key, if any) and returns the answer to give:
/// this request's `answer`, or, for a retry of an already used key, the answer recorded the
/// first time. With a `wait`, it then waits for the messages' commit and returns their
/// outcomes, or `None` when the wait runs out (or too many requests wait already). Whatever
/// the wait, the messages and their share of the budget are freed as soon as they are queued.
pub async fn enqueue<A: Serialize + DeserializeOwned>(
    state: &AppState,
    queueing: Queueing<'_>,
    answer: A,
    wait: Option<Duration>,
) -> Result<(Answer<A>, Waited), ApiError> {
    let Queueing {
        key,
        ids,
        envelopes,
        charge,
    } = queueing;
    // Registered before the push, so a commit cannot be announced before anyone listens.
    let mut registration = wait.and_then(|_| state.waiters.register(&ids));
    let answer = push(state, key, envelopes, answer).await?;
    drop(charge);
    if let (Some(_), Answer::Replay(_, first)) = (wait, &answer) {
        // The messages are the first request's: wait for those instead.
        registration = replay_registration(state, first).await;
    }
    let (Some(wait), Some(registration)) = (wait, registration.as_mut()) else {
        return Ok((answer, None));
    };
    Ok((answer, registration.wait(wait).await.map(|o| (o, wait))))
}

/// Queues `envelopes`, under `key` if given; a used key gets the first request's answer.
async fn push<A: Serialize + DeserializeOwned>(
    state: &AppState,
    key: Option<&str>,
    envelopes: Encoded,
    answer: A,
) -> Result<Answer<A>, ApiError> {
    let push = match key {
        None => Push::Plain(envelopes),
        Some(key) => Push::Idempotent {
            key: state.keys.idempotency(key),
            // An answer holds ids, strings and a timestamp: it always serializes.
            answer: serde_json::to_string(&answer).unwrap_or_default(),
            envelopes,
        },
    };
    match state.pusher.push(push).await? {
        Pushed::Queued => Ok(Answer::Fresh(answer)),
        Pushed::Replay(first) => {
            // The key may have been used on the other endpoint first.
            let recorded: A =
                serde_json::from_str(&first).map_err(|_| ApiError::IdempotencyKeyReused)?;
            Ok(Answer::Replay(recorded, first))
        }
    }
}

/// For a replayed request that asks to wait: registers the first request's ids, then resolves
/// at once those PostgreSQL already holds (their commit was announced long ago, perhaps to
/// nobody). One query per replay, never a poll.
async fn replay_registration(state: &AppState, first: &str) -> Option<Registration> {
    let answer: serde_json::Value = serde_json::from_str(first).ok()?;
    let ids: Vec<Uuid> = match &answer["message_ids"] {
        serde_json::Value::Array(ids) => ids
            .iter()
            .filter_map(|v| v.as_str()?.parse().ok())
            .collect(),
        _ => vec![answer["message_id"].as_str()?.parse().ok()?],
    };
    let registration = state.waiters.register(&ids)?;
    let check = store::inserted_at(&state.pool, &ids);
    match tokio::time::timeout(state.redis_timeout.max(Duration::from_secs(2)), check).await {
        Ok(Ok(found)) => state
            .waiters
            .resolve(found.iter().map(|(id, at)| (id, Fate::Persisted(*at)))),
        _ => sluice_core::metric::postgres_error("replay_check"),
    }
    Some(registration)
}
