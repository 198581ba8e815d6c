//! Group commit: every push of an HTTP worker thread goes through its one [`Pusher`], whose tasks
//! send each group of pushes that arrived while the previous group was in flight as one
//! pipeline, in one round trip:
//!
//! - one call of the bounding script carrying every plain request's messages, which takes or
//!   refuses each request whole against `ingest.max_queue_depth`, atomically, however many
//!   groups of however many processes push at once;
//! - one script call per request with an `Idempotency-Key`, so that one request's failure
//!   (a key of the wrong type, say) never changes another's answer;
//! - with `redis.ack_replicas` = N > 0, one `WAIT N ack_timeout_ms` after them: `WAIT` covers
//!   every write the connection made before it, so one wait confirms the whole group.
//!
//! Each script counts what it queued in `accepted_total` in the same atomic step, and pushes in
//! chunks ([`lua/accept.lua`](lua/accept.lua)), so that no request size meets Lua's stack limit.
//!
//! A lone request goes out at once, so a quiet API adds no latency; under load a group holds
//! whatever arrived during one round trip, at most [`MAX_GROUP`] requests or
//! [`MAX_GROUP_BYTES`] of messages (plus the request that crossed it). Pushes over
//! [`LARGE_PUSH_BYTES`] (batches of megabytes) have a task and a connection of their own, so
//! that the small ones never queue behind them. A task ends once the thread's state (every
//! sender) is dropped, after the last group it was given.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use sluice_core::Keys;
use sluice_core::connect::RedisConnection;
use sluice_core::keys::RATE_WINDOW_SECS;
use sluice_core::lua::LuaScript;
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::queue::{self, Depth, Encoded, Retention};

/// Most requests in one group.
pub const MAX_GROUP: usize = 512;

/// Most bytes of messages in one group, past which it is sent without waiting for more.
pub const MAX_GROUP_BYTES: usize = 4 << 20;

/// Requests waiting for the task, per HTTP worker thread; a request past it waits its turn.
const QUEUED_REQUESTS: usize = 4 * MAX_GROUP;

/// A push of more bytes than this goes through the thread's second task and connection, so
/// that a single message never waits for megabytes of someone's batch to be written to Redis
/// and answered first.
pub const LARGE_PUSH_BYTES: usize = 256 * 1024;

/// The chunked push and the accepted count, prepended to both scripts.
const ACCEPT: &str = include_str!("lua/accept.lua");
static BOUNDED: std::sync::LazyLock<LuaScript> = std::sync::LazyLock::new(|| {
    LuaScript::new(&[ACCEPT, include_str!("lua/push_bounded.lua")].concat())
});
static IDEMPOTENT: std::sync::LazyLock<LuaScript> = std::sync::LazyLock::new(|| {
    LuaScript::new(&[ACCEPT, include_str!("lua/push_idempotent.lua")].concat())
});

/// One request's push.
#[derive(Debug)]
pub enum Push {
    /// Messages without an `Idempotency-Key`.
    Plain(Encoded),
    /// Messages under an `Idempotency-Key`, with the answer to record for it.
    Idempotent {
        /// The full Redis key, `idempotency:<key>`.
        key: String,
        /// The answer a retry gets back.
        answer: String,
        /// The messages.
        envelopes: Encoded,
    },
}

impl Push {
    fn envelopes(&self) -> &Encoded {
        match self {
            Self::Plain(envelopes) | Self::Idempotent { envelopes, .. } => envelopes,
        }
    }

    fn bytes(&self) -> usize {
        self.envelopes().bytes()
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The messages were queued (and, with acknowledgements on, the replicas hold them).
    Queued,
    /// The key was used before: nothing was queued; this is the first request's answer.
    Replay(String),
}

/// How the task pushes, the same for every thread of the process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Key names.
    pub keys: Keys,
    /// The queue bound and gauge.
    pub depth: Arc<Depth>,
    /// How long Redis has to answer (`redis.response_timeout_ms`), the `WAIT` aside.
    pub timeout: Duration,
    /// How `Idempotency-Key`s are kept.
    pub retention: Retention,
    /// `redis.ack_replicas` and `redis.ack_timeout_ms`, when acknowledgements are on.
    pub acks: Option<(u32, Duration)>,
}

type Reply = oneshot::Sender<Result<Pushed, ApiError>>;

/// The way into one thread's group-commit tasks: one for the pushes of up to
/// [`LARGE_PUSH_BYTES`], one for larger ones, each on its own connection.
#[derive(Debug, Clone)]
pub struct Pusher {
    small: mpsc::Sender<(Push, Reply)>,
    large: mpsc::Sender<(Push, Reply)>,
}

impl Pusher {
    /// Starts the tasks on the current runtime, pushing through `small` and `large`, which
    /// must each allow a command `config.timeout` plus the `WAIT` to answer.
    pub fn start(small: RedisConnection, large: RedisConnection, config: Config) -> Self {
        let lane = |conn| {
            let (requests, queued) = mpsc::channel(QUEUED_REQUESTS);
            tokio::spawn(run(queued, conn, config.clone()));
            requests
        };
        Self {
            small: lane(small),
            large: lane(large),
        }
    }

    /// Pushes one request's messages with the next group and returns what happened to them.
    pub async fn push(&self, push: Push) -> Result<Pushed, ApiError> {
        let (reply, answer) = oneshot::channel();
        let lane = if push.bytes() > LARGE_PUSH_BYTES {
            &self.large
        } else {
            &self.small
        };
        lane.send((push, reply))
            .await
            .map_err(|_| ApiError::RedisUnavailable)?;
        answer.await.unwrap_or(Err(ApiError::RedisUnavailable))
    }
}

/// The task: takes whatever is waiting, sends it as one group, answers each request.
async fn run(mut queued: mpsc::Receiver<(Push, Reply)>, mut conn: RedisConnection, config: Config) {
    let mut group = Vec::new();
    while let Some(first) = queued.recv().await {
        let mut bytes = first.0.bytes();
        group.push(first);
        while group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
            let Ok(next) = queued.try_recv() else { break };
            bytes += next.0.bytes();
            group.push(next);
        }
        let (pushes, replies): (Vec<Push>, Vec<Reply>) = group.drain(..).unzip();
        let outcomes = send(&mut conn, &config, pushes).await;
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }
}

/// One group's commands, in order, and which request each answers.
struct Commands {
    /// The commands, `WAIT` aside, errors answered per command.
    pipe: redis::Pipeline,
    /// The script each command runs, if it is one (to load it into a Redis that lost it).
    scripts: Vec<Option<&'static LuaScript>>,
    /// Per request: the command answering it.
    owners: Vec<Owner>,
}

#[derive(Clone, Copy)]
enum Owner {
    /// The bounding script at this command; the request is its `n`-th.
    Bounded(usize, usize),
    /// Its own idempotent script at this command.
    Idempotent(usize),
    /// Refused before any command: the queue holds this many.
    Full(u64),
}

/// Sends one group and returns each request's outcome, in order.
async fn send(
    conn: &mut RedisConnection,
    config: &Config,
    pushes: Vec<Push>,
) -> Vec<Result<Pushed, ApiError>> {
    let count = pushes.len();
    let sizes: Vec<u64> = pushes.iter().map(|p| p.envelopes().len() as u64).collect();
    let failed = |e: ApiError| (0..count).map(|_| Err(e.duplicate())).collect();
    let mut commands = match build(config, pushes) {
        Ok(commands) => commands,
        Err(e) => return failed(e),
    };
    let (replies, confirmed) = if commands.scripts.is_empty() {
        // Every request was refused for the bound before any command: nothing to send.
        (Vec::new(), None)
    } else {
        let budget = config.timeout + config.acks.map_or(Duration::ZERO, |(_, t)| t);
        let call = exchange(conn, &mut commands, config.acks);
        match queue::within(budget, "push group", call).await {
            Ok(replies) => replies,
            Err(e) => return failed(e),
        }
    };
    let mut outcomes: Vec<_> = commands
        .owners
        .iter()
        .map(|owner| outcome(*owner, &replies, &config.depth))
        .collect();
    // What entered the queue, answered 202 or not: the scripts counted the same in
    // `accepted_total`.
    let queued: u64 = outcomes
        .iter()
        .zip(&sizes)
        .filter(|(o, _)| matches!(o, Ok(Pushed::Queued)))
        .map(|(_, n)| n)
        .sum();
    metrics::counter!(sluice_core::metric::MESSAGES_ACCEPTED).increment(queued);
    if let (Some((wanted, _)), Some(confirmed)) = (config.acks, confirmed)
        && confirmed < u64::from(wanted)
    {
        for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
            *outcome = Err(ApiError::NotReplicated { confirmed, wanted });
        }
    }
    outcomes
}

/// The group's commands: one push for the plain requests, one script per idempotent request.
fn build(config: &Config, pushes: Vec<Push>) -> Result<Commands, ApiError> {
    let depth = &config.depth;
    let known = depth.get();
    let mut commands = Commands {
        pipe: redis::pipe(),
        scripts: Vec::new(),
        owners: Vec::with_capacity(pushes.len()),
    };
    commands.pipe.ignore_errors();
    let mut plain = Vec::new();
    for push in pushes {
        let n = push.envelopes().len() as u64;
        if known + n > depth.max() {
            commands.owners.push(Owner::Full(known));
            continue;
        }
        match push {
            Push::Plain(envelopes) => {
                plain.push((commands.owners.len(), envelopes));
                commands.owners.push(Owner::Full(known));
            }
            Push::Idempotent {
                key,
                answer,
                envelopes,
            } => {
                let cmd = idempotent(config, &key, &answer, envelopes)?;
                commands
                    .owners
                    .push(Owner::Idempotent(commands.scripts.len()));
                commands.add(cmd, Some(&IDEMPOTENT));
            }
        }
    }
    if !plain.is_empty() {
        add_plain(config, &mut commands, plain)?;
    }
    Ok(commands)
}

impl Commands {
    fn add(&mut self, cmd: redis::Cmd, script: Option<&'static LuaScript>) {
        self.pipe.add_command(cmd);
        self.scripts.push(script);
    }
}

/// The plain requests' messages in one call of the bounding script, which takes or refuses
/// each request whole.
fn add_plain(
    config: &Config,
    commands: &mut Commands,
    plain: Vec<(usize, Encoded)>,
) -> Result<(), ApiError> {
    let at = commands.scripts.len();
    let count: usize = plain.iter().map(|(_, e)| e.len()).sum();
    let bytes: usize = plain.iter().map(|(_, e)| e.bytes()).sum();
    let mut cmd = BOUNDED
        .command(
            &config.keys,
            &[],
            3 + plain.len() + count,
            30 * plain.len() + bytes,
        )
        .map_err(queue::unnamed_key)?;
    cmd.arg(config.depth.max())
        .arg(RATE_WINDOW_SECS)
        .arg(plain.len());
    for (n, (request, envelopes)) in plain.iter().enumerate() {
        commands.owners[*request] = Owner::Bounded(at, n);
        cmd.arg(envelopes.len());
    }
    for (_, envelopes) in plain {
        envelopes.add_to(&mut cmd);
    }
    commands.add(cmd, Some(&BOUNDED));
    Ok(())
}

/// The idempotent script's call for one request.
fn idempotent(
    config: &Config,
    key: &str,
    answer: &str,
    envelopes: Encoded,
) -> Result<redis::Cmd, ApiError> {
    let bytes = 80 + answer.len() + envelopes.bytes();
    let mut cmd = IDEMPOTENT
        .command(
            &config.keys,
            &[("idempotency", key)],
            6 + envelopes.len(),
            bytes,
        )
        .map_err(queue::unnamed_key)?;
    let retention = config.retention;
    cmd.arg(config.depth.max())
        .arg(retention.ttl_secs)
        .arg(retention.max_keys)
        .arg(retention.max_bytes)
        .arg(answer)
        .arg(RATE_WINDOW_SECS);
    envelopes.add_to(&mut cmd);
    Ok(cmd)
}

/// Replies per command, and, with acknowledgements on, how many replicas confirmed them.
type Exchanged = (Vec<redis::RedisResult<Value>>, Option<u64>);

/// Sends the commands (and a `WAIT` with `acks`) in one round trip. A script Redis does not
/// know (a restarted or failed-over Redis) is loaded, and the commands that ran into it are sent
/// again, with a `WAIT` of their own.
async fn exchange(
    conn: &mut RedisConnection,
    commands: &mut Commands,
    acks: Option<(u32, Duration)>,
) -> redis::RedisResult<Exchanged> {
    let (mut replies, mut confirmed) = query(conn, &mut commands.pipe, acks).await?;
    let missing: Vec<usize> = (0..replies.len())
        .filter(|&i| matches!(&replies[i], Err(e) if no_script(e)))
        .collect();
    if missing.is_empty() {
        return Ok((replies, confirmed));
    }
    let mut again = redis::pipe();
    again.ignore_errors();
    for &i in &missing {
        if let Some(script) = commands.scripts[i] {
            script.load(conn).await?;
        }
        if let Some(cmd) = commands.pipe.cmd_iter().nth(i) {
            again.add_command(cmd.clone());
        }
    }
    let (retried, retried_confirmed) = query(conn, &mut again, acks).await?;
    for (i, reply) in missing.into_iter().zip(retried) {
        replies[i] = reply;
    }
    confirmed = retried_confirmed.or(confirmed);
    Ok((replies, confirmed))
}

/// Sends `pipe`, with a `WAIT` appended with `acks`, and splits off the `WAIT`'s answer.
async fn query(
    conn: &mut RedisConnection,
    pipe: &mut redis::Pipeline,
    acks: Option<(u32, Duration)>,
) -> redis::RedisResult<Exchanged> {
    if let Some((replicas, timeout)) = acks {
        pipe.cmd("WAIT")
            .arg(replicas)
            .arg(timeout.as_millis() as u64);
    }
    let mut replies: Vec<redis::RedisResult<Value>> = pipe.query_async(conn).await?;
    let confirmed = match acks {
        Some(_) => Some(redis::from_redis_value::<u64>(
            replies.pop().transpose()?.unwrap_or(Value::Nil),
        )?),
        None => None,
    };
    Ok((replies, confirmed))
}

fn no_script(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// One request's outcome from the replies.
fn outcome(
    owner: Owner,
    replies: &[redis::RedisResult<Value>],
    depth: &Depth,
) -> Result<Pushed, ApiError> {
    let reply = |i: usize| match replies.get(i) {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(queue::refused(e)),
        None => Err(ApiError::RedisUnavailable),
    };
    match owner {
        Owner::Full(len) => Err(ApiError::QueueFull { depth: len }),
        Owner::Bounded(i, n) => {
            let flags: Vec<u64> = redis::from_redis_value(reply(i)?.clone())
                .map_err(|_| ApiError::RedisUnavailable)?;
            let len = flags.first().copied().unwrap_or(depth.max());
            match flags.get(1 + n) {
                Some(1) => {
                    queue::pushed(depth, len);
                    Ok(Pushed::Queued)
                }
                _ => {
                    depth.set(len);
                    Err(ApiError::QueueFull { depth: len })
                }
            }
        }
        Owner::Idempotent(i) => idempotent_outcome(reply(i)?, depth),
    }
}

/// The idempotent script's reply: `{1, length}` queued, `{0, answer}` a replay, `{-1, length}`
/// refused for the bound.
fn idempotent_outcome(reply: &Value, depth: &Depth) -> Result<Pushed, ApiError> {
    let (code, value): (i64, Value) =
        redis::from_redis_value(reply.clone()).map_err(|_| ApiError::RedisUnavailable)?;
    match code {
        1 => {
            if let Ok(len) = redis::from_redis_value::<u64>(value) {
                queue::pushed(depth, len);
            }
            Ok(Pushed::Queued)
        }
        0 => Ok(Pushed::Replay(
            redis::from_redis_value::<String>(value).unwrap_or_default(),
        )),
        _ => {
            let len = redis::from_redis_value::<u64>(value).unwrap_or(depth.max());
            depth.set(len);
            Err(ApiError::QueueFull { depth: len })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use sluice_core::Keys;
    use sluice_core::connect::RedisConnection;
    use sluice_core::message::{Envelope, NewMessage};

    use super::{Config, Owner, Push, Pushed, build, send};
    use crate::error::ApiError;
    use crate::queue::{Depth, Encoded, Retention};

    fn envelopes(n: usize) -> Encoded {
        let envelopes = (0..n)
            .map(|i| {
                let body = format!(r#"{{"user_id":1,"channel_id":1,"content":"m{i}"}}"#);
                Envelope::new(NewMessage::from_json(body.as_bytes()).expect("valid"))
            })
            .collect();
        Encoded::new(envelopes)
    }

    fn config(prefix: &str, max: u64) -> Config {
        Config {
            keys: Keys::new(prefix),
            depth: Arc::new(Depth::new(max)),
            timeout: Duration::from_secs(1),
            retention: Retention {
                ttl_secs: 60,
                max_keys: 100,
                max_bytes: 1 << 20,
            },
            acks: None,
        }
    }

    fn args(commands: &super::Commands) -> Vec<usize> {
        commands
            .pipe
            .cmd_iter()
            .map(|c| c.args_iter().count())
            .collect()
    }

    fn owners(commands: &super::Commands) -> Vec<String> {
        commands
            .owners
            .iter()
            .map(|o| match o {
                Owner::Idempotent(i) => format!("idempotent {i}"),
                Owner::Bounded(i, n) => format!("bounded {i} {n}"),
                Owner::Full(d) => format!("full {d}"),
            })
            .collect()
    }

    #[test]
    fn plain_requests_share_one_bounded_push_and_idempotent_ones_get_a_script_each() {
        let pushes = vec![
            Push::Plain(envelopes(2)),
            Push::Idempotent {
                key: "idempotency:k".into(),
                answer: "{}".into(),
                envelopes: envelopes(1),
            },
            Push::Plain(envelopes(3)),
        ];
        let commands = build(&config("t:", 1_000_000), pushes).expect("built");
        // The idempotent script first (EVALSHA sha 6 keys, 6 arguments, 1 envelope), then the
        // bounding script (EVALSHA sha 3 keys, bound, window, 2 requests, their counts 2 and 3)
        // with both plain requests' five envelopes.
        assert_eq!(args(&commands), [3 + 6 + 6 + 1, 3 + 3 + 3 + 2 + 5]);
        assert_eq!(
            owners(&commands),
            ["bounded 1 0", "idempotent 0", "bounded 1 1"]
        );
    }

    #[test]
    fn a_request_that_can_never_fit_is_refused_before_any_command() {
        let commands = build(
            &config("t:", 10),
            vec![
                Push::Plain(envelopes(4)),
                Push::Plain(envelopes(11)),
                Push::Plain(envelopes(6)),
            ],
        )
        .expect("built");
        // The request of 11 can never fit a queue of 10; the others go to the script, which
        // checks them against the queue as Redis holds it.
        assert_eq!(args(&commands), [3 + 3 + 3 + 2 + 10]);
        assert_eq!(owners(&commands), ["bounded 0 0", "full 0", "bounded 0 1"]);
    }

    #[tokio::test]
    async fn a_group_refused_whole_for_the_bound_sends_nothing_and_answers_429() {
        let settings = sluice_core::settings::RedisSettings {
            // Nothing listens there: a command sent would fail with 503, not 429.
            url: "redis://127.0.0.1:1".into(),
            ..Default::default()
        };
        let mut conn = sluice_core::connect::redis_manager(&settings).expect("connection");
        let config = config("t:", 10);
        config.depth.set(10);
        let pushes = vec![Push::Plain(envelopes(1)), Push::Plain(envelopes(2))];
        let outcomes = send(&mut conn, &config, pushes).await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Err(ApiError::QueueFull { depth: 10 }))),
            "{outcomes:?}"
        );
    }

    fn summary(outcomes: &[Result<Pushed, ApiError>]) -> Vec<String> {
        outcomes
            .iter()
            .map(|o| match o {
                Ok(Pushed::Queued) => "queued".to_owned(),
                Ok(Pushed::Replay(_)) => "replay".to_owned(),
                Err(e) => e.code().to_owned(),
            })
            .collect()
    }

    fn idempotent(key: String, n: usize) -> Push {
        Push::Idempotent {
            key,
            answer: format!("{{\"n\":{n}}}"),
            envelopes: envelopes(n),
        }
    }

    async fn redis() -> sluice_core::connect::RedisConnection {
        let settings = sluice_core::settings::RedisSettings {
            url: sluice_tests::redis_url(),
            ..Default::default()
        };
        sluice_core::connect::redis_manager(&settings).expect("connection")
    }

    /// `LLEN pending_messages` and `accepted_total`.
    async fn queued_and_counted(conn: &mut RedisConnection, keys: &Keys) -> (u64, u64) {
        redis::pipe()
            .cmd("LLEN")
            .arg(&keys.pending_messages)
            .cmd("GET")
            .arg(&keys.accepted_total)
            .query_async::<(u64, Option<u64>)>(conn)
            .await
            .map(|(len, total)| (len, total.unwrap_or(0)))
            .expect("LLEN, GET")
    }

    #[tokio::test]
    async fn the_bounding_script_takes_or_refuses_each_request_whole_in_order() {
        let prefix = sluice_tests::unique_prefix("group");
        let mut conn = redis().await;
        let config = config(&prefix, 10);
        let pushes = vec![
            Push::Plain(envelopes(4)),
            Push::Plain(envelopes(7)),
            idempotent(format!("{prefix}idempotency:a"), 3),
            Push::Plain(envelopes(3)),
            Push::Plain(envelopes(1)),
        ];
        let outcomes = send(&mut conn, &config, pushes).await;
        // The idempotent request runs first (3), then 4 fits, 7 does not, 3 fits: 10, full.
        assert_eq!(
            summary(&outcomes),
            ["queued", "queue_full", "queued", "queued", "queue_full"]
        );
        assert!(matches!(
            outcomes[1],
            Err(ApiError::QueueFull { depth: 10 })
        ));
        // Exactly what was queued is counted, in the same step.
        assert_eq!(queued_and_counted(&mut conn, &config.keys).await, (10, 10));
        assert_eq!(config.depth.get(), 10, "the gauge learns the length");
        sluice_tests::delete_prefix(&prefix).await.expect("cleanup");
    }

    #[tokio::test]
    async fn a_group_mixing_a_failing_request_and_huge_ones_answers_each_as_it_was_treated() {
        let prefix = sluice_tests::unique_prefix("groupmix");
        let mut conn = redis().await;
        let config = config(&prefix, 1_000_000);
        // A key of the wrong type: its request fails inside Redis, and only it.
        let broken = format!("{prefix}idempotency:broken");
        let _: () = redis::cmd("RPUSH")
            .arg(&broken)
            .arg("not an answer")
            .query_async(&mut conn)
            .await
            .expect("RPUSH");
        let big = format!("{prefix}idempotency:big");
        // 9,000 values are past what one Lua `unpack` can hand over (about 8,000).
        let pushes = vec![
            Push::Plain(envelopes(2)),
            idempotent(broken.clone(), 5),
            idempotent(big.clone(), 9_000),
            Push::Plain(envelopes(9_000)),
            Push::Plain(envelopes(1)),
        ];
        let outcomes = send(&mut conn, &config, pushes).await;
        assert_eq!(
            summary(&outcomes),
            ["queued", "redis_unavailable", "queued", "queued", "queued"]
        );
        assert_eq!(
            queued_and_counted(&mut conn, &config.keys).await,
            (18_003, 18_003)
        );
        // The retry of the big batch replays its answer and queues nothing; the broken key is
        // as it was.
        let again = send(&mut conn, &config, vec![idempotent(big, 9_000)]).await;
        assert_eq!(summary(&again), ["replay"]);
        assert!(matches!(&again[0], Ok(Pushed::Replay(a)) if a == r#"{"n":9000}"#));
        assert_eq!(
            queued_and_counted(&mut conn, &config.keys).await,
            (18_003, 18_003)
        );
        let kind: String = redis::cmd("TYPE")
            .arg(&broken)
            .query_async(&mut conn)
            .await
            .expect("TYPE");
        assert_eq!(kind, "list");
        sluice_tests::delete_prefix(&prefix).await.expect("cleanup");
    }

    #[tokio::test]
    async fn an_idempotent_push_that_fails_records_no_answer() {
        let prefix = sluice_tests::unique_prefix("groupfail");
        let mut conn = redis().await;
        let config = config(&prefix, 1_000_000);
        // The queue itself is unusable: the push fails, and must leave no record behind that a
        // retry would replay as if its messages were queued.
        let _: () = redis::cmd("SET")
            .arg(&config.keys.pending_messages)
            .arg("not a list")
            .query_async(&mut conn)
            .await
            .expect("SET");
        let key = format!("{prefix}idempotency:k");
        let outcomes = send(&mut conn, &config, vec![idempotent(key.clone(), 3)]).await;
        assert_eq!(summary(&outcomes), ["redis_unavailable"]);
        let (recorded, index, counted): (bool, u64, Option<u64>) = redis::pipe()
            .cmd("EXISTS")
            .arg(&key)
            .cmd("ZCARD")
            .arg(&config.keys.idempotency_keys)
            .cmd("GET")
            .arg(&config.keys.accepted_total)
            .query_async(&mut conn)
            .await
            .expect("reads");
        assert_eq!((recorded, index, counted), (false, 0, None));
        // Once the queue is usable again, the retry queues the messages.
        let _: () = redis::cmd("DEL")
            .arg(&config.keys.pending_messages)
            .query_async(&mut conn)
            .await
            .expect("DEL");
        let retried = send(&mut conn, &config, vec![idempotent(key, 3)]).await;
        assert_eq!(summary(&retried), ["queued"]);
        assert_eq!(queued_and_counted(&mut conn, &config.keys).await, (3, 3));
        sluice_tests::delete_prefix(&prefix).await.expect("cleanup");
    }
}
