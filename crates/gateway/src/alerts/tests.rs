use super::*;

fn settings() -> AlertSettings {
    AlertSettings {
        queue_depth_threshold: 100,
        queue_depth_for_secs: 5,
        resolve_after_secs: 3,
        anomaly_for_secs: 2,
        dead_letters_quiet_secs: 10,
        ..AlertSettings::default()
    }
}

/// A reading at Redis second `second` with one live worker and nothing else going on.
fn reading(second: i64) -> Stats {
    let mut s = Stats::at(chrono::Utc::now(), 0, 0, 0, 0.0);
    s.workers_alive = 1;
    s.timestamp = chrono::DateTime::from_timestamp(1_700_000_000 + second, 0)
        .expect("valid")
        .to_rfc3339();
    s
}

/// Feeds `stats(second)` once a second for `seconds` seconds from `start`, returning every
/// transition with the second it happened in, and applying each as a store would.
fn run(
    e: &mut Evaluator,
    start: Instant,
    seconds: std::ops::Range<i64>,
    stats: impl Fn(i64) -> Stats,
) -> Vec<(i64, Transition)> {
    let mut out = Vec::new();
    for second in seconds {
        let now = start + Duration::from_secs(second as u64);
        for t in e.evaluate(&stats(second), now) {
            e.applied(&t);
            out.push((second, t));
        }
    }
    out
}

fn fired(transitions: &[(i64, Transition)], rule: Rule) -> Vec<i64> {
    transitions
        .iter()
        .filter(|(_, t)| matches!(t, Transition::Fire(r, _) if *r == rule))
        .map(|(s, _)| *s)
        .collect()
}

fn resolved(transitions: &[(i64, Transition)], rule: Rule) -> Vec<i64> {
    transitions
        .iter()
        .filter(|(_, t)| matches!(t, Transition::Resolve(r, _) if *r == rule))
        .map(|(s, _)| *s)
        .collect()
}

#[test]
fn a_rule_fires_once_after_its_duration_and_resolves_once() {
    let mut e = Evaluator::new(settings());
    let start = Instant::now();
    let deep = |second| {
        let mut s = reading(second);
        s.queue_depth = if (10..30).contains(&second) { 500 } else { 0 };
        s
    };
    let t = run(&mut e, start, 0..60, deep);
    assert_eq!(fired(&t, Rule::QueueDepthHigh), [15]);
    // At start the gateway does not know whether the rule is active: it resolves it once
    // (a no-op in the store) after resolve_after_secs, then again after the real alert.
    assert_eq!(resolved(&t, Rule::QueueDepthHigh), [3, 33]);
}

#[test]
fn a_rule_another_gateway_fired_is_not_fired_again() {
    let mut e = Evaluator::new(settings());
    let start = Instant::now();
    let mut s = reading(0);
    s.queue_depth = 500;
    let depth_rule = |t: Vec<Transition>| -> Vec<Transition> {
        t.into_iter()
            .filter(|t| matches!(t, Transition::Fire(Rule::QueueDepthHigh, _)))
            .collect()
    };
    let first = depth_rule(e.evaluate(&s, start + Duration::from_secs(6)));
    assert!(first.is_empty(), "{first:?}");
    let fire = depth_rule(e.evaluate(&s, start + Duration::from_secs(12)));
    assert_eq!(fire.len(), 1, "{fire:?}");
    // The store found it already fired by another gateway: still active here.
    e.applied(&fire[0]);
    assert!(depth_rule(e.evaluate(&s, start + Duration::from_secs(20))).is_empty());
}

#[test]
fn dead_letters_fire_on_an_increase_only_and_resolve_when_quiet() {
    let mut e = Evaluator::new(settings());
    let start = Instant::now();
    let dead = |second| {
        let mut s = reading(second);
        // 7 dead letters before the gateway started, 2 more at second 20.
        s.dead_letters_total = if second < 20 { 7 } else { 9 };
        s.dead_letters = s.dead_letters_total;
        s
    };
    let t = run(&mut e, start, 0..40, dead);
    assert_eq!(fired(&t, Rule::DeadLettersIncreased), [20]);
    assert_eq!(resolved(&t, Rule::DeadLettersIncreased), [0, 30]);
    let Some((_, Transition::Fire(_, check))) = t
        .iter()
        .find(|(_, t)| matches!(t, Transition::Fire(Rule::DeadLettersIncreased, _)))
    else {
        panic!("no fire");
    };
    assert_eq!((check.value, check.threshold), (9.0, 7.0));
}

#[test]
fn dead_letters_purged_resolve_the_alert_at_once() {
    let mut e = Evaluator::new(settings());
    let start = Instant::now();
    // 2 new dead letters at second 10, purged at second 15: the quiet period is 10 s.
    let dead = |second| {
        let mut s = reading(second);
        s.dead_letters_total = if second < 10 { 0 } else { 2 };
        s.dead_letters = if (10..15).contains(&second) { 2 } else { 0 };
        s
    };
    let t = run(&mut e, start, 0..30, dead);
    assert_eq!(fired(&t, Rule::DeadLettersIncreased), [10]);
    assert_eq!(resolved(&t, Rule::DeadLettersIncreased), [0, 15]);
}

#[test]
fn no_live_workers_needs_waiting_messages() {
    let mut e = Evaluator::new(settings());
    let start = Instant::now();
    let idle = |second| {
        let mut s = reading(second);
        s.workers_alive = 0;
        s.queue_depth = u64::from(second >= 20);
        s
    };
    let t = run(&mut e, start, 0..40, idle);
    assert_eq!(fired(&t, Rule::NoLiveWorkers), [30]);
}

#[test]
fn a_steady_noisy_rate_is_no_anomaly_and_a_stall_is_a_high_one() {
    let mut e = Evaluator::new(settings());
    let start = Instant::now();
    let rate = |second: i64| {
        let mut s = reading(second);
        // 5,000 msg/s ± 1 %, then the pipeline stalls at second 200 while arrivals go on.
        s.current_rps = if second < 200 {
            5_000.0 + 50.0 * ((second * 7919) % 13 - 6) as f64 / 6.0
        } else {
            0.0
        };
        s.accepted_per_second = 5_000.0;
        s
    };
    let t = run(&mut e, start, 0..205, rate);
    assert_eq!(fired(&t, Rule::ThroughputAnomaly), [202]);
    let severity = t.iter().find_map(|(_, t)| match t {
        Transition::Fire(Rule::ThroughputAnomaly, c) => Some(c.severity),
        _ => None,
    });
    assert_eq!(severity, Some("high"));
}

#[test]
fn a_stall_a_cause_explains_is_no_anomaly_but_the_cause_fires() {
    let mut e = Evaluator::new(AlertSettings {
        replication_degraded_for_secs: 2,
        ..settings()
    });
    // The same stall, while the primary's only replica is gone: pushes are queued (503
    // not_replicated) but workers cannot confirm what they take, so nothing is persisted.
    let rate = |second: i64| {
        let mut s = reading(second);
        s.current_rps = if second < 200 { 5_000.0 } else { 0.0 };
        s.accepted_per_second = 5_000.0;
        s.replicas_wanted = 1;
        s.replicas_in_sync = Some(if second < 199 { 1 } else { 0 });
        s
    };
    let t = run(&mut e, Instant::now(), 0..230, rate);
    assert_eq!(fired(&t, Rule::ReplicationDegraded), [201]);
    assert!(
        fired(&t, Rule::ThroughputAnomaly).is_empty(),
        "one outage pages once"
    );
}

#[test]
fn z_scores_need_a_baseline_and_have_a_deviation_floor() {
    assert_eq!(z_score(10.0, &[1.0; 10], 1.0), None);
    let steady = vec![100.0; 100];
    // σ = 0 is floored at 5 % of the mean (5 msg/s), or at the given floor when larger.
    assert_eq!(z_score(110.0, &steady, 1.0), Some(2.0));
    assert_eq!(z_score(110.0, &steady, 10.0), Some(1.0));
    assert_eq!(z_score(0.0, &vec![0.0; 100], 1.0), Some(0.0));
}

#[test]
fn redis_down_fires_after_its_duration_and_resolves_when_back() {
    let mut e = Evaluator::new(settings());
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    assert_eq!(e.evaluate_redis(true, at(0)), None);
    let Some(fire) = e.evaluate_redis(true, at(2)) else {
        panic!("fires after redis_down_for_secs");
    };
    e.applied(&fire);
    assert_eq!(e.evaluate_redis(true, at(3)), None);
    assert_eq!(e.evaluate_redis(false, at(4)), None);
    assert!(matches!(
        e.evaluate_redis(false, at(7)),
        Some(Transition::Resolve(Rule::RedisDown, _))
    ));
    // The outage's measured span: the first failed read to the first good one, 4 s, not the
    // 7 s until the resolution (which waits resolve_after_secs).
    let span = e.clear_since(Rule::RedisDown).expect("clear") - at(0);
    assert_eq!(span, Duration::from_secs(4));
}

/// `rate(second)` as a reading with `accepted` msg/s arriving.
fn flowing(second: i64, persisted: f64, accepted: f64) -> Stats {
    let mut s = reading(second);
    s.current_rps = persisted;
    s.accepted_per_second = accepted;
    s
}

#[test]
fn a_load_starting_from_idle_stopping_or_a_backlog_draining_is_no_anomaly() {
    let mut e = Evaluator::new(settings());
    let start = Instant::now();
    // 100 s idle, 100 s at 4,000 msg/s, the load stops (arrivals too) for 100 s, then workers
    // drain a backlog at 9,000 msg/s while 1,000 arrive.
    let day = |second: i64| match second {
        0..100 => flowing(second, 0.0, 0.0),
        100..200 => flowing(second, 4_000.0, 4_000.0),
        200..300 => flowing(second, 0.0, 0.0),
        _ => flowing(second, 9_000.0, 1_000.0),
    };
    let t = run(&mut e, start, 0..400, day);
    assert_eq!(
        fired(&t, Rule::ThroughputAnomaly),
        Vec::<i64>::new(),
        "{t:?}"
    );
}

#[test]
fn a_small_change_of_a_very_steady_rate_is_no_anomaly_and_the_words_say_what_moved() {
    let mut e = Evaluator::new(settings());
    let start = Instant::now();
    // 200 msg/s exactly, then 260, short of 400 arriving: z = 6 with σ floored at 10, but a
    // change under 100 msg/s.
    let steady = |second: i64| {
        let rate = if second < 200 { 200.0 } else { 260.0 };
        flowing(second, rate, 400.0)
    };
    let t = run(&mut e, start, 0..230, steady);
    assert_eq!(fired(&t, Rule::ThroughputAnomaly), Vec::<i64>::new());
    assert_eq!(
        summary(
            Rule::ThroughputAnomaly,
            &Check::new(true, 0.0, 5_000.0, "high")
        ),
        "persisted/s fell from 5,000/s (its recent mean) to 0/s"
    );
    assert_eq!(
        summary(
            Rule::ThroughputAnomaly,
            &Check::new(true, 12_345.0, 2_000.0, "high")
        ),
        "persisted/s rose from 2,000/s (its recent mean) to 12,345/s"
    );
}

#[test]
fn a_paused_worker_is_late_then_lost_and_both_end_when_it_beats_again() {
    let mut e = Evaluator::new(settings());
    let start = Instant::now();
    // Seconds 0-9 fine; 10-14 late; 15-39 presumed dead then reclaimed (lost); back at 40.
    let day = |second: i64| {
        let mut s = reading(second);
        if (10..15).contains(&second) {
            s.workers_late = 1;
            s.late_worker_ids = vec!["w-2".into()];
        } else if (15..40).contains(&second) {
            s.workers_lost = 1;
            s.lost_worker_ids = vec!["w-2".into()];
        }
        s
    };
    let t = run(&mut e, start, 0..60, day);
    // worker_late holds from 10 (late, then lost) and fires after its 2 s.
    assert_eq!(fired(&t, Rule::WorkerLate), [12]);
    assert_eq!(
        fired(&t, Rule::WorkerLost),
        [17],
        "worker_lost_for_secs (2) after 15"
    );
    // Both clear at 40 and resolve resolve_after_secs (3) later (the resolve at 3 is every
    // rule's first, which clears what an earlier gateway may have left firing).
    assert_eq!(resolved(&t, Rule::WorkerLate), [3, 43]);
    assert_eq!(resolved(&t, Rule::WorkerLost), [3, 43]);
    let fire = t.iter().find_map(|(_, t)| match t {
        Transition::Fire(Rule::WorkerLost, check) => Some(check.clone()),
        _ => None,
    });
    let fire = fire.expect("fired");
    assert_eq!(
        summary(Rule::WorkerLost, &fire),
        "worker w-2 is lost: presumed dead or reclaimed, and not back"
    );
    let others: Vec<_> = t
        .iter()
        .filter(|(_, t)| {
            !matches!(
                t,
                Transition::Fire(Rule::WorkerLate | Rule::WorkerLost, _)
                    | Transition::Resolve(Rule::WorkerLate | Rule::WorkerLost, _)
            )
        })
        .collect();
    assert!(
        others
            .iter()
            .all(|(_, t)| matches!(t, Transition::Resolve(..))),
        "no other alert fires: {others:?}"
    );
}

#[test]
fn a_late_beat_shorter_than_the_rule_s_duration_is_no_alert() {
    let mut e = Evaluator::new(settings());
    let day = |second: i64| {
        let mut s = reading(second);
        if second == 10 {
            s.workers_late = 1;
            s.late_worker_ids = vec!["w-1".into()];
        }
        s
    };
    let t = run(&mut e, Instant::now(), 0..30, day);
    assert!(fired(&t, Rule::WorkerLate).is_empty());
}

#[test]
fn replication_is_degraded_when_replicas_are_short_or_pushes_refused() {
    let mut e = Evaluator::new(AlertSettings {
        replication_degraded_for_secs: 2,
        ..settings()
    });
    let day = |second: i64| {
        let mut s = reading(second);
        s.replicas_wanted = 1;
        s.replicas_in_sync = Some(if (10..25).contains(&second) { 0 } else { 1 });
        if (30..35).contains(&second) {
            // A replica that is connected but too slow: WAIT times out.
            s.errors_per_second.insert("not_replicated".into(), 1_950.0);
        }
        s
    };
    let t = run(&mut e, Instant::now(), 0..50, day);
    assert_eq!(fired(&t, Rule::ReplicationDegraded), [12, 32]);
    assert_eq!(resolved(&t, Rule::ReplicationDegraded), [3, 28, 38]);
    // Without acknowledgements, no replica is short.
    let mut e = Evaluator::new(settings());
    let quiet = |second: i64| {
        let mut s = reading(second);
        s.replicas_in_sync = Some(0);
        s
    };
    let t = run(&mut e, Instant::now(), 0..30, quiet);
    assert!(fired(&t, Rule::ReplicationDegraded).is_empty());
}

#[test]
fn the_error_rate_fires_only_when_it_lasts_and_names_the_codes() {
    let mut e = Evaluator::new(AlertSettings {
        error_rate_for_secs: 20,
        ..settings()
    });
    let day = |second: i64| {
        let mut s = reading(second);
        // A 15-s burst (shorter than the rule's 20 s), then a lasting one.
        if (10..25).contains(&second) || (40..100).contains(&second) {
            s.errors_per_second.insert("redis_unavailable".into(), 3.0);
            s.errors_per_second.insert("not_replicated".into(), 41.0);
        }
        s
    };
    let t = run(&mut e, Instant::now(), 0..110, day);
    assert_eq!(fired(&t, Rule::ErrorRate), [60]);
    assert_eq!(resolved(&t, Rule::ErrorRate), [3, 103]);
    let check = e.states[Rule::ErrorRate.index()]
        .last
        .clone()
        .expect("checked");
    assert!(!check.breaching);
    let firing = t.iter().find_map(|(_, t)| match t {
        Transition::Fire(Rule::ErrorRate, check) => Some(summary(Rule::ErrorRate, check)),
        _ => None,
    });
    assert_eq!(
        firing.as_deref(),
        Some(
            "the ingest APIs answer 5xx at 44/s (threshold 1.0/s): not_replicated 41/s, redis_unavailable 3.0/s"
        )
    );
}
