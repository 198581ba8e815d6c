//! Group commit: every push of an HTTP worker thread goes through its one [`Pusher`], whose tasks
//! send each group of pushes that arrived while the previous group was in flight as one
//! pipeline, in one round trip:
//!
//! - one transaction for every plain request's messages: `MULTI`, one native `LPUSH` of them
//!   all, their count, then `lua/admit_plain.lua`, which keeps or takes out each request whole
//!   against `ingest.max_queue_depth`, `EXEC`: the bound holds however many groups of however
//!   many processes push at once, and the messages never pass through Lua;
//! - one such transaction per request with an `Idempotency-Key` (`lua/admit_idempotent.lua`
//!   records the key with the push, or takes the messages out again), so that one request's
//!   failure (a key of the wrong type, say) never changes another's answer;
//! - with `redis.ack_replicas` = N > 0, one `WAIT N ack_timeout_ms` after them: `WAIT` covers
//!   every write the connection made before it, so one wait confirms the whole group.
//!
//! What stays queued is counted in `accepted_total` in the same atomic step. The scripts are
//! sent with `EVAL`, not `EVALSHA`: inside a transaction a script Redis lost (a restart, a
//! failover) would fail at `EXEC`, after the `LPUSH` before it had run.
//!
//! A lone request goes out at once, so a quiet API adds no latency; under load a group holds
//! whatever arrived during one round trip, at most [`MAX_GROUP`] requests or
//! [`MAX_GROUP_BYTES`] of messages (plus the request that crossed it). Pushes over
//! [`LARGE_PUSH_BYTES`] (batches of megabytes) have a task and a connection of their own, so
//! that the small ones never queue behind them. A task ends once the thread's state (every
//! sender) is dropped, after the last group it was given.

use std::sync::Arc;
use std::time::Duration;

use redis::{FromRedisValue, Value};
use sluice_core::Keys;
use sluice_core::connect::RedisConnection;
use sluice_core::keys::ACCEPTED_WINDOW_TTL_SECS;
use sluice_core::lua;
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::lua::admit_idempotent::{self, AdmitIdempotent};
use crate::lua::admit_plain::{self, AdmitPlain};
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
    /// Whether the last group was short of confirmations, shared by every thread, so the log
    /// says when replication fails and when it is back, once each.
    pub replication_short: Arc<std::sync::atomic::AtomicBool>,
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
    let mut trimmed = None;
    while let Some(first) = queued.recv().await {
        let mut bytes = first.0.bytes();
        group.push(first);
        while group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
            let Ok(next) = queued.try_recv() else { break };
            bytes += next.0.bytes();
            group.push(next);
        }
        let (pushes, replies): (Vec<Push>, Vec<Reply>) = group.drain(..).unzip();
        let outcomes = send(&mut conn, &config, pushes, &mut trimmed).await;
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }
}

/// One group's transactions, in order, and which request each answers. Each transaction is
/// `MULTI`, an `LPUSH` of its messages, for the plain requests their count added to
/// `accepted_total` and `accepted_window`, an `EVAL` of the script that admits them (keeps them,
/// or takes them out again and corrects the counts), and `EXEC`: the messages never pass
/// through Lua, and no other client ever sees them before the script has decided.
struct Commands {
    /// The transactions, errors answered per command.
    pipe: redis::Pipeline,
    /// Each transaction's `EXEC` (its index among the pipeline's commands) and the number of
    /// commands it ran, the admit script being the last.
    transactions: Vec<(usize, usize)>,
    /// Per request: the transaction answering it.
    owners: Vec<Owner>,
}

#[derive(Clone, Copy)]
enum Owner {
    /// The plain requests' transaction, this one; the request is its `n`-th.
    Plain(usize, usize),
    /// Its own transaction, this one.
    Idempotent(usize),
    /// Refused before any command: the queue holds this many.
    Full(u64),
}

/// Sends one group and returns each request's outcome, in order. `trimmed` is the task's
/// (see [`build`]).
async fn send(
    conn: &mut RedisConnection,
    config: &Config,
    pushes: Vec<Push>,
    trimmed: &mut Option<i64>,
) -> Vec<Result<Pushed, ApiError>> {
    let count = pushes.len();
    let sizes: Vec<u64> = pushes.iter().map(|p| p.envelopes().len() as u64).collect();
    let failed = |e: ApiError| (0..count).map(|_| Err(e.duplicate())).collect();
    let mut commands = match build(config, pushes, trimmed) {
        Ok(commands) => commands,
        Err(e) => return failed(e),
    };
    let (replies, confirmed) = if commands.transactions.is_empty() {
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
        .map(|owner| outcome(*owner, &commands, &replies, &config.depth))
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
    if let (Some((wanted, wait)), Some(confirmed)) = (config.acks, confirmed) {
        let short = confirmed < u64::from(wanted);
        log_replication(&config.replication_short, short, confirmed, wanted, wait);
        if short {
            for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
                *outcome = Err(ApiError::NotReplicated { confirmed, wanted });
            }
        }
    }
    outcomes
}

/// Logs when pushes stop being confirmed by enough replicas, and when they are again: once
/// per change, whatever the rate.
fn log_replication(
    was_short: &std::sync::atomic::AtomicBool,
    short: bool,
    confirmed: u64,
    wanted: u32,
    wait: Duration,
) {
    use std::sync::atomic::Ordering;
    if was_short.swap(short, Ordering::Relaxed) == short {
        return;
    }
    if short {
        tracing::warn!(
            confirmed,
            wanted,
            "pushes are not confirmed by enough replicas within {} ms (redis.ack_replicas); \
             answering 503 not_replicated, and /ready says replication is down, until they are",
            wait.as_millis()
        );
    } else {
        tracing::info!(wanted, "replicas confirm pushes again");
    }
}

/// The group's transactions: one for the plain requests, one per idempotent request.
/// `trimmed` is the second this task last had `accepted_window` trimmed in.
fn build(
    config: &Config,
    pushes: Vec<Push>,
    trimmed: &mut Option<i64>,
) -> Result<Commands, ApiError> {
    let depth = &config.depth;
    let known = depth.get();
    let mut commands = Commands {
        pipe: redis::pipe(),
        transactions: Vec::new(),
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
                let admit = admit_idempotent(config, &key, &answer, envelopes.len())?;
                let at = commands.transaction([lpush(config, [&envelopes]), admit]);
                commands.owners.push(Owner::Idempotent(at));
            }
        }
    }
    if !plain.is_empty() {
        add_plain(config, &mut commands, plain, trimmed)?;
    }
    Ok(commands)
}

impl Commands {
    /// Adds a transaction of `commands`, the admit script last; returns its index.
    fn transaction<const N: usize>(&mut self, commands: [redis::Cmd; N]) -> usize {
        self.pipe.cmd("MULTI");
        for cmd in commands {
            self.pipe.add_command(cmd);
        }
        self.pipe.cmd("EXEC");
        let exec = self.pipe.len() - 1;
        self.transactions.push((exec, N));
        self.transactions.len() - 1
    }
}

/// `LPUSH pending_messages` of every message of `requests`, each request's in order, the
/// requests one after the other.
fn lpush<'a>(
    config: &Config,
    requests: impl IntoIterator<Item = &'a Encoded> + Clone,
) -> redis::Cmd {
    let key = &config.keys.pending_messages;
    let count: usize = requests.clone().into_iter().map(Encoded::len).sum();
    let bytes: usize = requests.clone().into_iter().map(Encoded::bytes).sum();
    let mut cmd = redis::Cmd::with_capacity(2 + count, 5 + key.len() + bytes);
    cmd.arg("LPUSH").arg(key);
    for envelopes in requests {
        envelopes.add_to(&mut cmd);
    }
    cmd
}

/// The plain requests' transaction: one `LPUSH` of all their messages, their count added to
/// `accepted_total` and to this second of `accepted_window`, then the script that keeps or takes
/// out each request whole against the bound. The second is this process's clock's, which
/// follows Redis's ([`sluice_core::clock`]); the idempotent script reads Redis's `TIME`.
fn add_plain(
    config: &Config,
    commands: &mut Commands,
    plain: Vec<(usize, Encoded)>,
    trimmed: &mut Option<i64>,
) -> Result<(), ApiError> {
    let keys = &config.keys;
    let total: usize = plain.iter().map(|(_, e)| e.len()).sum();
    let second = sluice_core::clock::now().timestamp();
    let trim = trimmed.replace(second) != Some(second);
    let counts: Vec<usize> = plain.iter().map(|(_, e)| e.len()).collect();
    let call = AdmitPlain {
        bound: config.depth.max(),
        second,
        trim,
        counts: &counts,
    };
    let admit = lua::eval(keys, &call, 12 * (5 + counts.len())).map_err(queue::unnamed_key)?;
    let mut incrby = redis::cmd("INCRBY");
    incrby.arg(&keys.accepted_total).arg(total);
    let mut hincrby = redis::cmd("HINCRBY");
    hincrby.arg(&keys.accepted_window).arg(second).arg(total);
    let mut expire = redis::cmd("EXPIRE");
    expire
        .arg(&keys.accepted_window)
        .arg(ACCEPTED_WINDOW_TTL_SECS);
    let push = lpush(config, plain.iter().map(|(_, e)| e));
    let at = commands.transaction([push, incrby, hincrby, expire, admit]);
    for (n, (request, _)) in plain.iter().enumerate() {
        commands.owners[*request] = Owner::Plain(at, n);
    }
    Ok(())
}

/// The admit script's call for one request under an `Idempotency-Key`, of `count` messages.
fn admit_idempotent(
    config: &Config,
    key: &str,
    answer: &str,
    count: usize,
) -> Result<redis::Cmd, ApiError> {
    let call = AdmitIdempotent {
        key,
        bound: config.depth.max(),
        retention: config.retention,
        answer,
        count,
    };
    lua::eval(&config.keys, &call, 90 + answer.len()).map_err(queue::unnamed_key)
}

/// One command's reply.
type RedisReply = redis::RedisResult<Value>;

/// One request's outcome.
type PushResult = Result<Pushed, ApiError>;

/// Replies per command, and, with acknowledgements on, how many replicas confirmed them.
type Exchanged = (Vec<RedisReply>, Option<u64>);

/// Sends the transactions, and a `WAIT` after them with `acks`, in one round trip; splits off
/// the `WAIT`'s answer.
async fn exchange(
    conn: &mut RedisConnection,
    commands: &mut Commands,
    acks: Option<(u32, Duration)>,
) -> redis::RedisResult<Exchanged> {
    let pipe = &mut commands.pipe;
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

/// What transaction `at` answered: its script's reply, or why there is none. A transaction
/// Redis refused (`EXECABORT`, after `OOM` at queueing) ran nothing; one whose `LPUSH` failed
/// (a key of another type) had its script fail on the same key and queued nothing.
fn admitted(
    replies: &[redis::RedisResult<Value>],
    (exec, commands): (usize, usize),
) -> Result<Value, ApiError> {
    let failed = |e: &redis::RedisError| Err(queue::refused(e));
    // The queued commands answer QUEUED, or the error that aborted the transaction.
    let queued = exec.saturating_sub(commands)..exec.min(replies.len());
    for reply in &replies[queued] {
        if let Err(e) = reply {
            return failed(e);
        }
    }
    let results = match replies.get(exec) {
        Some(Ok(Value::Array(results))) => results,
        Some(Err(e)) => return failed(e),
        _ => return Err(ApiError::RedisUnavailable),
    };
    match results.get(commands - 1) {
        Some(Value::ServerError(e)) => failed(&redis::RedisError::from(e.clone())),
        Some(reply) => Ok(reply.clone()),
        None => Err(ApiError::RedisUnavailable),
    }
}

/// One request's outcome from the replies.
fn outcome(owner: Owner, commands: &Commands, replies: &[RedisReply], depth: &Depth) -> PushResult {
    let script = |at: usize| admitted(replies, commands.transactions[at]);
    match owner {
        Owner::Full(len) => Err(ApiError::QueueFull { depth: len }),
        Owner::Plain(at, n) => {
            let admitted = admit_plain::Admitted::from_redis_value(script(at)?)
                .map_err(|_| ApiError::RedisUnavailable)?;
            if admitted.kept.get(n) == Some(&true) {
                queue::pushed(depth, admitted.len);
                Ok(Pushed::Queued)
            } else {
                depth.set(admitted.len);
                Err(ApiError::QueueFull {
                    depth: admitted.len,
                })
            }
        }
        Owner::Idempotent(at) => idempotent_outcome(script(at)?, depth),
    }
}

/// One request's outcome from the idempotent script's reply.
fn idempotent_outcome(reply: Value, depth: &Depth) -> Result<Pushed, ApiError> {
    let admitted = admit_idempotent::Admitted::from_redis_value(reply)
        .map_err(|_| ApiError::RedisUnavailable)?;
    match admitted {
        admit_idempotent::Admitted::Queued(len) => {
            queue::pushed(depth, len);
            Ok(Pushed::Queued)
        }
        admit_idempotent::Admitted::Replay(answer) => Ok(Pushed::Replay(answer)),
        admit_idempotent::Admitted::Full(len) => {
            depth.set(len);
            Err(ApiError::QueueFull { depth: len })
        }
        admit_idempotent::Admitted::Unusable(error) => {
            tracing::debug!(error, "a push under an Idempotency-Key was refused");
            sluice_core::metric::redis_error("push");
            Err(ApiError::RedisUnavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use sluice_core::Keys;
    use sluice_core::connect::RedisConnection;
    use sluice_proto::message::{Envelope, NewMessage};

    use super::{Config, Owner, Push, Pushed, build, send};
    use crate::error::ApiError;
    use crate::queue::{Depth, Encoded, Retention};

    fn envelopes(n: usize) -> Encoded {
        let envelopes = (0..n)
            .map(|i| {
                let body = format!(r#"{{"user_id":1,"channel_id":1,"content":"m{i}"}}"#);
                sluice_core::clock::envelope(NewMessage::from_json(body.as_bytes()).expect("valid"))
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
            replication_short: Default::default(),
        }
    }

    /// Each command's name and number of arguments (its name included).
    fn args(commands: &super::Commands) -> Vec<(String, usize)> {
        commands
            .pipe
            .cmd_iter()
            .map(|c| {
                let name = match c.args_iter().next() {
                    Some(redis::Arg::Simple(name)) => String::from_utf8_lossy(name).into_owned(),
                    _ => String::new(),
                };
                (name, c.args_iter().count())
            })
            .collect()
    }

    fn named(list: &[(&str, usize)]) -> Vec<(String, usize)> {
        list.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
    }

    fn owners(commands: &super::Commands) -> Vec<String> {
        commands
            .owners
            .iter()
            .map(|o| match o {
                Owner::Idempotent(i) => format!("idempotent {i}"),
                Owner::Plain(i, n) => format!("plain {i} {n}"),
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
        let commands = build(&config("t:", 1_000_000), pushes, &mut None).expect("built");
        // The idempotent request's transaction first (LPUSH key, 1 envelope; EVAL code, 6
        // keys, 8 arguments), then the plain requests' (LPUSH key, 5 envelopes; the 5 counted;
        // EVAL code, 3 keys, bound, window, second, 2 requests, their counts 2 and 3).
        let wanted = [
            ("MULTI", 1),
            ("LPUSH", 2 + 1),
            ("EVAL", 3 + 6 + 8),
            ("EXEC", 1),
            ("MULTI", 1),
            ("LPUSH", 2 + 5),
            ("INCRBY", 3),
            ("HINCRBY", 4),
            ("EXPIRE", 3),
            ("EVAL", 3 + 3 + 5 + 2),
            ("EXEC", 1),
        ];
        assert_eq!(args(&commands), named(&wanted));
        assert_eq!(
            owners(&commands),
            ["plain 1 0", "idempotent 0", "plain 1 1"]
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
            &mut None,
        )
        .expect("built");
        // The request of 11 can never fit a queue of 10; the others go to the script, which
        // checks them against the queue as Redis holds it.
        let wanted = [
            ("MULTI", 1),
            ("LPUSH", 2 + 10),
            ("INCRBY", 3),
            ("HINCRBY", 4),
            ("EXPIRE", 3),
            ("EVAL", 3 + 3 + 5 + 2),
            ("EXEC", 1),
        ];
        assert_eq!(args(&commands), named(&wanted));
        assert_eq!(owners(&commands), ["plain 0 0", "full 0", "plain 0 1"]);
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
        let outcomes = send(&mut conn, &config, pushes, &mut None).await;
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
            url: sluice_tests::redis_url().into(),
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
        let outcomes = send(&mut conn, &config, pushes, &mut None).await;
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

    /// `n` envelopes whose contents are `<tag>0`, `<tag>1`, ….
    fn tagged(tag: &str, n: usize) -> Encoded {
        let envelopes = (0..n)
            .map(|i| {
                let body = format!(r#"{{"user_id":1,"channel_id":1,"content":"{tag}{i}"}}"#);
                sluice_core::clock::envelope(NewMessage::from_json(body.as_bytes()).expect("valid"))
            })
            .collect();
        Encoded::new(envelopes)
    }

    #[tokio::test]
    async fn requests_put_back_after_a_refusal_keep_their_order_behind_what_was_queued() {
        let prefix = sluice_tests::unique_prefix("grouporder");
        let mut conn = redis().await;
        let config = config(&prefix, 6);
        let first = send(
            &mut conn,
            &config,
            vec![Push::Plain(tagged("x", 1))],
            &mut None,
        )
        .await;
        assert_eq!(summary(&first), ["queued"]);
        let pushes = vec![
            Push::Plain(tagged("a", 2)),
            Push::Plain(tagged("b", 5)),
            Push::Plain(tagged("c", 3)),
        ];
        let outcomes = send(&mut conn, &config, pushes, &mut None).await;
        assert_eq!(summary(&outcomes), ["queued", "queue_full", "queued"]);
        // Consumed from the tail: what was there first, then a's and c's, each in order.
        let queue: Vec<String> = redis::cmd("LRANGE")
            .arg(&config.keys.pending_messages)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .expect("LRANGE");
        let contents: Vec<String> = queue
            .iter()
            .rev()
            .map(|raw| {
                let envelope = Envelope::from_json(raw.as_bytes()).expect("an envelope");
                envelope.content.as_str().to_owned()
            })
            .collect();
        assert_eq!(contents, ["x0", "a0", "a1", "c0", "c1", "c2"]);
        assert_eq!(queued_and_counted(&mut conn, &config.keys).await, (6, 6));
        sluice_tests::delete_prefix(&prefix).await.expect("cleanup");
    }

    #[tokio::test]
    async fn a_refusal_among_huge_requests_puts_back_the_others_whole() {
        let prefix = sluice_tests::unique_prefix("grouphuge");
        let mut conn = redis().await;
        let config = config(&prefix, 10_000);
        // 9,000 fit, 2,000 more would not, 500 do: 9,500 put back, past Lua's unpack limit.
        let pushes = vec![
            Push::Plain(tagged("a", 9_000)),
            Push::Plain(tagged("b", 2_000)),
            Push::Plain(tagged("c", 500)),
        ];
        let outcomes = send(&mut conn, &config, pushes, &mut None).await;
        assert_eq!(summary(&outcomes), ["queued", "queue_full", "queued"]);
        assert_eq!(
            queued_and_counted(&mut conn, &config.keys).await,
            (9_500, 9_500)
        );
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
        let outcomes = send(&mut conn, &config, pushes, &mut None).await;
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
        let again = send(&mut conn, &config, vec![idempotent(big, 9_000)], &mut None).await;
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
    async fn a_plain_push_onto_a_queue_of_the_wrong_type_counts_nothing() {
        let prefix = sluice_tests::unique_prefix("groupwrong");
        let mut conn = redis().await;
        let config = config(&prefix, 1_000_000);
        let _: () = redis::cmd("SET")
            .arg(&config.keys.pending_messages)
            .arg("not a list")
            .query_async(&mut conn)
            .await
            .expect("SET");
        let outcomes = send(
            &mut conn,
            &config,
            vec![Push::Plain(envelopes(3))],
            &mut None,
        )
        .await;
        assert_eq!(summary(&outcomes), ["redis_unavailable"]);
        let counted: Option<i64> = redis::cmd("GET")
            .arg(&config.keys.accepted_total)
            .query_async(&mut conn)
            .await
            .expect("GET");
        assert_eq!(counted.unwrap_or(0), 0, "nothing entered the queue");
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
        let outcomes = send(
            &mut conn,
            &config,
            vec![idempotent(key.clone(), 3)],
            &mut None,
        )
        .await;
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
        let retried = send(&mut conn, &config, vec![idempotent(key, 3)], &mut None).await;
        assert_eq!(summary(&retried), ["queued"]);
        assert_eq!(queued_and_counted(&mut conn, &config.keys).await, (3, 3));
        sluice_tests::delete_prefix(&prefix).await.expect("cleanup");
    }
}
