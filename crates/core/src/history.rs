//! Reading the stats history ([`sluice_proto::history::History`]) from Redis.

use sluice_proto::history::{History, Sample, Window};

use crate::keys::Keys;

/// Reads `window` from Redis in one round trip.
pub async fn read<C>(conn: &mut C, keys: &Keys, window: Window) -> redis::RedisResult<History>
where
    C: redis::aio::ConnectionLike + Send,
{
    let seconds = match window {
        Window::Minute => 60,
        Window::FiveMinutes => 300,
        Window::Hour | Window::Day => 60,
    };
    let minutes = (window.span_secs() / 60) as isize;
    let ((now, _), raw_seconds, raw_minutes): ((u64, u64), Vec<String>, Vec<String>) =
        redis::pipe()
            .cmd("TIME")
            .cmd("LRANGE")
            .arg(&keys.history_1s)
            .arg(0)
            .arg(seconds - 1)
            .cmd("LRANGE")
            .arg(&keys.history_1m)
            .arg(0)
            .arg(if window.resolution_secs() == 1 {
                -1
            } else {
                minutes - 1
            })
            .query_async(conn)
            .await?;
    let parse = |raw: &[String]| -> Vec<Sample> {
        raw.iter()
            .filter_map(|s| serde_json::from_str(s).ok())
            .collect()
    };
    let minute_samples = if window.resolution_secs() == 1 {
        Vec::new()
    } else {
        parse(&raw_minutes)
    };
    Ok(History::build(
        window,
        now,
        &parse(&raw_seconds),
        &minute_samples,
    ))
}
