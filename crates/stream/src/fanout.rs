//! Delivery of `stats` readings to WebSocket sessions: one task per worker thread, not one
//! wake-up per client.
//!
//! Each actix worker thread keeps a [`Roster`] of its sessions' send handles. When the poller
//! publishes a snapshot, the thread's one delivery task wakes, walks the roster, and hands the
//! snapshot's bytes (serialized once per reading, shared by reference count) to every client
//! whose reading is due. Session tasks no longer wake for readings at all: they sleep until
//! their client speaks, a batch event or alert comes, or a heartbeat is due.
//!
//! A hand-off never waits. When a client's frame queue (actix-ws's 32 frames) is full, the
//! client is not reading; it skips this reading, as slow readers always skipped readings
//! (counted in `sluice_ws_lagged_total{topic="stats"}`), and its session ends through its
//! send timeout or heartbeat.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use actix_ws::Session;
use futures_util::FutureExt;
use sluice_core::metric;

use crate::hub::Hub;
use crate::pace::Pacer;
use crate::snapshot::Snapshot;

/// One session's place on its thread's roster; shared by the session task and the delivery
/// task of the thread. The session leaves the roster when it drops its [`Member`] handle.
struct Entry {
    session: RefCell<Session>,
    pacer: RefCell<Pacer>,
    /// Whether the client is subscribed to `stats`.
    stats: Cell<bool>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("pacer", &self.pacer)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The sessions of one worker thread for one hub.
#[derive(Debug, Default)]
pub struct Roster {
    entries: RefCell<Vec<Rc<Entry>>>,
}

/// What one delivery round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Clients handed the reading.
    pub sent: usize,
    /// Clients whose queue was full.
    pub skipped: usize,
}

impl Roster {
    /// Hands `snapshot` to every member whose reading is due; forgets members whose session
    /// ended.
    pub fn deliver(&self, snapshot: &Arc<Snapshot>, tick: std::time::Duration) -> Delivered {
        let mut entries = self.entries.borrow_mut();
        entries.retain(|entry| Rc::strong_count(entry) > 1);
        let mut delivered = Delivered::default();
        for entry in entries.iter() {
            if !entry.stats.get() || !entry.pacer.borrow().due(snapshot, tick) {
                continue;
            }
            let mut session = entry.session.borrow_mut();
            // `unconstrained`: a free slot must never read as "full" because this task used
            // up its cooperative budget on the clients before.
            let handed =
                tokio::task::unconstrained(session.text(snapshot.json.clone())).now_or_never();
            match handed {
                Some(Ok(())) => {
                    entry.pacer.borrow_mut().sent(snapshot);
                    delivered.sent += 1;
                }
                // The connection is gone; its session task is ending and drops the entry.
                Some(Err(_)) => {}
                None => delivered.skipped += 1,
            }
        }
        delivered
    }

    /// Sessions on the roster, ended ones not yet forgotten included.
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether the roster is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts a session on the roster, not yet subscribed to `stats` ([`Member::open`]).
    fn member(&self, session: Session, pacer: Pacer) -> Member {
        let entry = Rc::new(Entry {
            session: RefCell::new(session),
            pacer: RefCell::new(pacer),
            stats: Cell::new(false),
        });
        self.entries.borrow_mut().push(Rc::clone(&entry));
        Member(entry)
    }
}

/// A session's handle on its roster entry: its `stats` subscription and pacing.
#[derive(Debug)]
pub struct Member(Rc<Entry>);

impl Member {
    /// Whether the client is subscribed to `stats`.
    pub fn stats(&self) -> bool {
        self.0.stats.get()
    }

    /// Starts deliveries after the greeting if the client asked for `stats`, keeping the
    /// pacing of the reading the greeting carried.
    pub fn open(&self, stats: bool) {
        self.0.stats.set(stats);
    }

    /// Subscribes or unsubscribes the client; a new subscription is due a reading at once.
    pub fn set_stats(&self, on: bool) {
        if on && !self.0.stats.get() {
            self.0.pacer.borrow_mut().restart();
        }
        self.0.stats.set(on);
    }

    /// The client's pacing.
    pub fn pacer(&self) -> std::cell::RefMut<'_, Pacer> {
        self.0.pacer.borrow_mut()
    }
}

// Hubs have an id so a thread serving two (tests run several gateways in one process) keeps a
// roster per hub.
thread_local! {
    static ROSTERS: RefCell<HashMap<u64, Rc<Roster>>> = RefCell::default();
}

/// Puts a session on its thread's roster for `hub`, starting the thread's delivery task with
/// the first one. Must be called on an actix worker thread (a `LocalSet`).
/// The member starts unsubscribed: [`Member::open`] turns its deliveries on once the session's
/// greeting is out.
pub fn join(hub: &Arc<Hub>, session: Session, pacer: Pacer) -> Member {
    roster(hub).member(session, pacer)
}

fn roster(hub: &Arc<Hub>) -> Rc<Roster> {
    ROSTERS.with_borrow_mut(|rosters| {
        Rc::clone(rosters.entry(hub.id()).or_insert_with(|| {
            let roster = Rc::new(Roster::default());
            actix_web::rt::spawn(run(Arc::clone(hub), Rc::clone(&roster)));
            roster
        }))
    })
}

/// A thread's delivery task: one round per snapshot, until the poller's sender is gone.
async fn run(hub: Arc<Hub>, roster: Rc<Roster>) {
    let mut snapshots = hub.subscribe();
    snapshots.borrow_and_update();
    let lagged = metrics::counter!(metric::WS_LAGGED, "topic" => "stats");
    let sent = metrics::counter!(metric::WS_MESSAGES_SENT);
    while snapshots.changed().await.is_ok() {
        let Some(snapshot) = snapshots.borrow_and_update().clone() else {
            continue;
        };
        let delivered = roster.deliver(&snapshot, hub.tick());
        sent.increment(delivered.sent as u64);
        lagged.increment(delivered.skipped as u64);
    }
    ROSTERS.with_borrow_mut(|rosters| rosters.remove(&hub.id()));
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix_web::FromRequest;
    use actix_web::test::TestRequest;
    use bytestring::ByteString;

    use super::*;

    /// A session whose connection is never written out: its queue fills after 32 frames.
    fn session() -> Session {
        let (req, mut payload) = TestRequest::default()
            .insert_header(("upgrade", "websocket"))
            .insert_header(("connection", "upgrade"))
            .insert_header(("sec-websocket-version", "13"))
            .insert_header(("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="))
            .to_http_parts();
        let body = actix_web::web::Payload::from_request(&req, &mut payload)
            .now_or_never()
            .expect("ready")
            .expect("a payload");
        let (response, session, _stream) = actix_ws::handle(&req, body).expect("an upgrade");
        // The response (and with it the receiving end) lives as long as the test.
        std::mem::forget(response);
        session
    }

    fn snapshot(seq: u64) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            seq,
            taken_at: tokio::time::Instant::now(),
            stats: sluice_proto::stats::Stats::at(chrono::Utc::now(), 0, 0, 0, 0.0),
            json: ByteString::from_static(r#"{"type":"stats"}"#),
        })
    }

    const TICK: Duration = Duration::from_millis(100);

    fn every_reading() -> Pacer {
        Pacer::new(Duration::ZERO)
    }

    #[test]
    fn a_client_whose_queue_is_full_skips_readings_and_holds_no_one_back() {
        let roster = Roster::default();
        let stuck = roster.member(session(), every_reading());
        stuck.open(true);
        for seq in 1..=32 {
            assert_eq!(roster.deliver(&snapshot(seq), TICK).sent, 1);
        }
        let reading = roster.member(session(), every_reading());
        reading.open(true);
        for seq in 33..=40 {
            assert_eq!(
                roster.deliver(&snapshot(seq), TICK),
                Delivered {
                    sent: 1,
                    skipped: 1
                },
                "reading {seq}"
            );
        }
    }

    #[test]
    fn only_subscribed_members_due_a_new_reading_are_sent_it() {
        let roster = Roster::default();
        let every = roster.member(session(), every_reading());
        let unsubscribed = roster.member(session(), every_reading());
        let slow = roster.member(session(), Pacer::new(Duration::from_secs(60)));
        every.open(true);
        slow.open(true);
        unsubscribed.open(false);
        assert_eq!(roster.deliver(&snapshot(1), TICK).sent, 2, "every and slow");
        assert_eq!(roster.deliver(&snapshot(1), TICK).sent, 0, "not new");
        assert_eq!(
            roster.deliver(&snapshot(2), TICK).sent,
            1,
            "slow is not due"
        );
        unsubscribed.set_stats(true);
        assert_eq!(roster.deliver(&snapshot(3), TICK).sent, 2);
        every.set_stats(false);
        assert_eq!(roster.deliver(&snapshot(4), TICK).sent, 1);
    }

    #[test]
    fn members_whose_session_ended_leave_the_roster() {
        let roster = Roster::default();
        let kept = roster.member(session(), every_reading());
        let ended = roster.member(session(), every_reading());
        kept.open(true);
        ended.open(true);
        assert_eq!(roster.len(), 2);
        drop(ended);
        assert_eq!(roster.deliver(&snapshot(1), TICK).sent, 1);
        assert_eq!(roster.len(), 1);
    }
}
