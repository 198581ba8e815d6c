//! The worker's envelope parser: entries read from a processing list (here, the input split
//! on newlines) become envelopes or dead letters, never a panic, and none is lost; a dead
//! letter keeps at most its cap of an entry (64 bytes here), and says how long a longer one was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proto::events::DeadLetter;
use sluice_proto::message::Envelope;
use sluice_worker::batch::Batch;

fuzz_target!(|data: &[u8]| {
    let entries: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let valid = entries.iter().filter(|e| Envelope::from_json(e).is_ok()).count();
    const CAP: usize = 64;
    let batch = Batch::parse(entries.clone(), "fuzz", false, CAP);
    assert_eq!(batch.size, entries.len());
    assert_eq!(batch.dead_letters.len(), entries.len() - valid);
    assert!(batch.envelopes.len() <= valid);
    for letter in &batch.dead_letters {
        let letter: DeadLetter = serde_json::from_str(letter).expect("dead letters are JSON");
        assert!(letter.bytes().len() <= CAP);
        match letter.payload_bytes {
            Some(size) => assert!(size as usize > CAP),
            None => assert!(entries.iter().any(|e| *e == letter.bytes())),
        }
    }
    for envelope in &batch.envelopes {
        let back = Envelope::from_json(&envelope.to_json()).expect("round trip");
        assert_eq!(&back, envelope);
    }
});
