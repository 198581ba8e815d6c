//! Range limits that more than one place needs (a check elsewhere, a derived period), spelled
//! once so the error messages and the checks agree.

/// Smallest and largest `worker.batch_max_size`.
pub const BATCH_MAX_SIZE: (usize, usize) = (1, 100_000);
/// Smallest and largest `worker.batch_max_wait_ms`.
pub const BATCH_MAX_WAIT_MS: (u64, u64) = (0, 60_000);
/// Smallest and largest stats interval, for `stream.interval_ms` and `?interval_ms=`.
pub const INTERVAL_MS: (u64, u64) = (100, 60_000);
/// Shortest and longest period of a worker's heartbeat (see [`heartbeat_period_ms`]).
pub const HEARTBEAT_PERIOD_MS: (u64, u64) = (250, 1_000);
/// Heartbeats of its own a worker must have missed in a row before a peer presumes it
/// dead, whatever the peer's `worker.dead_after_ms` (ten with the same setting from 2.5 s).
pub const HEARTBEATS_MISSED: u64 = 4;
/// Smallest and largest `worker.dead_after_ms`: at least [`HEARTBEATS_MISSED`] of the
/// shortest heartbeat period, so a peer is presumed dead only after that many beats in a
/// row went missing.
pub const DEAD_AFTER_MS: (u64, u64) = (HEARTBEATS_MISSED * HEARTBEAT_PERIOD_MS.0, 3_600_000);

/// How often a worker beats: a tenth of `dead_after_ms`, within [`HEARTBEAT_PERIOD_MS`]. A
/// dead worker's batch is reclaimed at most one period past `dead_after_ms`; an idle worker
/// costs Redis one beat a second from 10 s. Each records its period, so a peer configured
/// otherwise still waits for [`HEARTBEATS_MISSED`] of its beats.
pub const fn heartbeat_period_ms(dead_after_ms: u64) -> u64 {
    let tenth = dead_after_ms / 10;
    if tenth < HEARTBEAT_PERIOD_MS.0 {
        HEARTBEAT_PERIOD_MS.0
    } else if tenth > HEARTBEAT_PERIOD_MS.1 {
        HEARTBEAT_PERIOD_MS.1
    } else {
        tenth
    }
}

/// Seconds since a replica's last acknowledgement (`lag` in `INFO replication`) past which it
/// no longer counts as in sync: replicas acknowledge every second.
pub const REPLICA_LAG_MAX_SECS: u64 = 2;

/// The heartbeat age past which a worker is late (`dead_after_ms` being when it is presumed
/// dead): a quarter of `dead_after_ms`, at least two heartbeat periods.
pub const fn late_after_ms(dead_after_ms: u64) -> u64 {
    let quarter = dead_after_ms / 4;
    let two_beats = 2 * heartbeat_period_ms(dead_after_ms);
    if quarter > two_beats {
        quarter
    } else {
        two_beats
    }
}

/// The part of `ingest.max_buffered_bytes` batch bodies may hold: however many batch
/// uploads stall, the rest stays free for single messages.
pub const BATCH_SHARE: (usize, usize) = (3, 4);
/// Memory that parsing and queueing a request body of `n` bytes needs besides the body
/// itself, in multiples of `n`: the parsed messages, then the command's arguments and the
/// packed command the Redis client writes (the body is freed once parsed).
pub const QUEUE_COST: usize = 2;
/// Memory each parsed message needs besides its text: the envelope, and the JSON field
/// names, id and timestamp in each copy of the command.
pub const MESSAGE_COST: usize = 512;

/// The most of `ingest.max_buffered_bytes` one request of `body` bytes holding `messages`
/// messages takes, from its first byte until its messages are queued.
pub const fn request_cost(body: usize, messages: usize) -> usize {
    body * (1 + QUEUE_COST) + messages * MESSAGE_COST
}
