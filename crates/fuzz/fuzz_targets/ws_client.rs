//! What a WebSocket client sends the gateway: the frame guard over raw bytes, and the
//! protocol parser over text messages.
//!
//! The guard must reach the same verdict whether the bytes arrive at once or split anywhere,
//! and every text either parses or is refused with a stable code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_stream::frames::Scanner;
use sluice_stream::protocol;

const LIMIT: usize = 1_024;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let whole = Scanner::new(LIMIT).feed(bytes).err().map(|(_, v)| v);
    let at = usize::from(split).min(bytes.len());
    let mut scanner = Scanner::new(LIMIT);
    let parts = scanner
        .feed(&bytes[..at])
        .and_then(|()| scanner.feed(&bytes[at..]))
        .err()
        .map(|(_, v)| v);
    assert_eq!(whole, parts, "the verdict depends on where the bytes were split");

    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Err(e) = protocol::parse(text) {
            assert!(
                ["invalid_json", "invalid_message", "unknown_type"].contains(&e.code),
                "unexpected code {}",
                e.code
            );
            assert!(!e.message.is_empty());
        }
    }
});
