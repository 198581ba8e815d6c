//! The batches a worker committed last, kept to check them again on another server.
//!
//! With asynchronous replication a failover can lose the last commits of the old primary,
//! though the worker has counted them and emptied its processing list: nothing would insert
//! them again. So a worker keeps its last batches, up to `worker.recheck_max_bytes` of
//! content, each with the server that committed it ([`sluice_core::primary`]); once it
//! reaches another server, it inserts each of them again there, skipping the ids the server
//! has, and so restores what was lost. The restored rows were counted when first committed.

use std::collections::VecDeque;
use std::ops::Range;

use sluice_core::primary::Server;
use sluice_proto::message::Envelope;

/// What a kept envelope costs besides its content: the struct, the id and the strings' heads.
const ENVELOPE_COST: usize = 160;

/// One committed batch, as kept.
#[derive(Debug)]
struct Committed {
    server: Server,
    envelopes: Vec<Envelope>,
    bytes: usize,
}

/// The last committed batches, newest last, within a byte budget.
#[derive(Debug)]
pub struct Recent {
    batches: VecDeque<Committed>,
    bytes: usize,
    max_bytes: usize,
}

fn cost(envelope: &Envelope) -> usize {
    ENVELOPE_COST
        + envelope.content.as_str().len()
        + envelope.key_id.as_ref().map_or(0, String::len)
}

impl Recent {
    /// Keeps at most `max_bytes` (0: nothing).
    pub fn new(max_bytes: usize) -> Self {
        Self {
            batches: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Keeps a batch `server` committed, dropping the oldest past the budget (and the oldest
    /// messages of a batch larger than the whole budget).
    pub fn keep(&mut self, server: Server, mut envelopes: Vec<Envelope>) {
        let mut bytes: usize = envelopes.iter().map(cost).sum();
        while bytes > self.max_bytes && !envelopes.is_empty() {
            let over = envelopes.len().div_ceil(2);
            bytes -= envelopes.drain(..over).map(|e| cost(&e)).sum::<usize>();
        }
        if envelopes.is_empty() {
            return;
        }
        while self.bytes + bytes > self.max_bytes {
            let Some(oldest) = self.batches.pop_front() else {
                break;
            };
            self.bytes -= oldest.bytes;
        }
        self.bytes += bytes;
        self.batches.push_back(Committed {
            server,
            envelopes,
            bytes,
        });
    }

    /// Batches kept.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The batches from `at` on that another server than `server` committed, one after the
    /// other, holding at most `max` messages together (one batch at least); empty when batch
    /// `at` is on `server`.
    pub fn run_elsewhere(&self, at: usize, server: &Server, max: usize) -> Range<usize> {
        let mut end = at;
        let mut messages = 0;
        for batch in self.batches.range(at..) {
            if &batch.server == server || (end > at && messages + batch.envelopes.len() > max) {
                break;
            }
            messages += batch.envelopes.len();
            end += 1;
        }
        at..end
    }

    /// The envelopes of the batches in `run`.
    pub fn envelopes(&self, run: Range<usize>) -> Vec<&Envelope> {
        self.batches
            .range(run)
            .flat_map(|b| b.envelopes.iter())
            .collect()
    }

    /// Notes that the batches in `run` are on `server` now (checked, and restored where
    /// needed).
    pub fn moved(&mut self, run: Range<usize>, server: &Server) {
        for batch in self.batches.range_mut(run) {
            batch.server = server.clone();
        }
    }

    /// Bytes kept, by the same count as the budget.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::message::{MessageRequest, NewMessage};

    fn server(address: &str) -> Server {
        Server {
            address: address.into(),
            started_at: chrono::DateTime::from_timestamp(1, 0).expect("a time"),
        }
    }

    fn batch(n: usize, content_bytes: usize) -> Vec<Envelope> {
        (0..n)
            .map(|_| {
                let request = MessageRequest::new(1, 1, "x".repeat(content_bytes));
                let body = serde_json::to_vec(&request).expect("json");
                sluice_core::clock::envelope(NewMessage::from_json(&body).expect("valid"))
            })
            .collect()
    }

    #[test]
    fn the_oldest_batches_go_first_past_the_budget() {
        let per = ENVELOPE_COST + 40;
        let mut recent = Recent::new(25 * per);
        let (a, b) = (server("a:1"), server("b:1"));
        recent.keep(a.clone(), batch(10, 40));
        recent.keep(a.clone(), batch(10, 40));
        assert_eq!(recent.bytes(), 20 * per);
        recent.keep(b.clone(), batch(10, 40));
        assert_eq!(recent.bytes(), 20 * per, "the oldest batch made room");
        assert_eq!(recent.len(), 2);
        assert_eq!(recent.run_elsewhere(0, &b, 100), 0..1);
        assert_eq!(recent.run_elsewhere(1, &b, 100), 1..1, "on b already");
        assert_eq!(recent.run_elsewhere(0, &a, 100), 0..0);
        assert_eq!(recent.run_elsewhere(1, &a, 100), 1..2);
        recent.moved(0..1, &b);
        assert_eq!(recent.run_elsewhere(0, &b, 100), 0..0);
        assert_eq!(recent.envelopes(0..2).len(), 20);
    }

    #[test]
    fn consecutive_batches_elsewhere_go_together_up_to_the_most_messages() {
        let mut recent = Recent::new(1 << 20);
        let (a, b) = (server("a:1"), server("b:1"));
        for _ in 0..5 {
            recent.keep(a.clone(), batch(3, 10));
        }
        recent.keep(b.clone(), batch(3, 10));
        recent.keep(a.clone(), batch(3, 10));
        assert_eq!(recent.run_elsewhere(0, &b, 7), 0..2, "6 of at most 7");
        assert_eq!(
            recent.run_elsewhere(2, &b, 100),
            2..5,
            "up to the batch on b"
        );
        assert_eq!(recent.run_elsewhere(6, &b, 1), 6..7, "one batch at least");
    }

    #[test]
    fn a_batch_larger_than_the_budget_keeps_its_newest_messages() {
        let per = ENVELOPE_COST + 10;
        let mut recent = Recent::new(10 * per);
        let whole = batch(64, 10);
        let newest = whole[whole.len() - 1].id;
        recent.keep(server("a:1"), whole);
        assert_eq!(recent.len(), 1);
        let kept = recent.envelopes(0..1);
        assert!(kept.len() <= 10 && !kept.is_empty(), "{}", kept.len());
        assert_eq!(kept[kept.len() - 1].id, newest);
        assert!(recent.bytes() <= 10 * per);
        let mut off = Recent::new(0);
        off.keep(server("a:1"), batch(3, 10));
        assert_eq!((off.bytes(), off.is_empty()), (0, true), "0 keeps nothing");
    }
}
