//! `POST /messages` and `POST /messages/batch` bodies: any bytes are either refused with a
//! reason or parse to messages that survive the trip through an envelope unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proto::message::{Envelope, MessageError, NewMessage};

fn check_refusal(error: &MessageError) {
    match error {
        MessageError::Malformed(reason) => assert!(!reason.is_empty()),
        MessageError::Invalid(fields) => assert!(!fields.is_empty()),
    }
}

fn round_trip(message: NewMessage) {
    let envelope = sluice_core::clock::envelope(message);
    let back = Envelope::from_json(&envelope.to_json()).expect("an envelope we wrote parses");
    assert_eq!(back, envelope);
}

fuzz_target!(|body: &[u8]| {
    match NewMessage::from_json(body) {
        Ok(message) => round_trip(message),
        Err(e) => check_refusal(&e),
    }
    match NewMessage::batch_from_json(body, 1_000) {
        Ok(messages) => {
            assert!((1..=1_000).contains(&messages.len()));
            messages.into_iter().for_each(round_trip);
        }
        Err(e) => check_refusal(&e),
    }
});
