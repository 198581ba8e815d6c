//! `list_dead.lua`: a page of `dead_messages`, newest first.

use std::sync::LazyLock;

use redis::FromRedisValue;
use sluice_core::lua::{Argv, LuaScript, Script, unexpected};

/// Most bytes of entries one page reads: a page ends after the entry that reaches it, so a page
/// of large entries holds fewer than its `limit`.
pub const PAGE_BYTES: u64 = 1 << 20;
/// Most bytes of one entry a page carries: the largest dead letter a worker writes
/// (`worker.dead_letter_max_bytes` at its largest, 128 KiB, is at most about 8 times that in
/// JSON and hex). Of a longer entry (written by hand, or by a release without that bound) the
/// page has its size and its first bytes.
pub const ENTRY_BYTES: u64 = 1 << 20;

/// Most entries one filtered page examines: a filter that matches few entries gives a short
/// page (or none) and the offset where the next one starts examining.
pub const PAGE_EXAMINED: u64 = 10_000;

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct ListDead<'a> {
    /// Newer entries skipped.
    pub offset: u64,
    /// Most entries listed.
    pub limit: u64,
    /// Only the entries whose reason contains this (lower-case); every entry when empty.
    pub reason: &'a str,
}

/// A page as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Entries in `dead_messages`.
    pub total: u64,
    /// Entries examined from the offset on (listed or not).
    pub examined: u64,
    /// The page's entries, newest first.
    pub entries: Vec<Entry>,
}

/// One entry as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The SHA-1 of its bytes, hex.
    pub id: String,
    /// Its size.
    pub size: u64,
    /// Its bytes, or its first [`ENTRY_BYTES`] when it is longer.
    pub head: Vec<u8>,
}

impl Script for ListDead<'_> {
    type Reply = Page;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| {
            LuaScript::new(&[super::ENTRIES, super::REASON, include_str!("list_dead.lua")])
        });
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.offset)
            .arg(self.limit)
            .arg(PAGE_BYTES)
            .arg(ENTRY_BYTES)
            .arg(self.reason)
            .arg(PAGE_EXAMINED);
    }
}

impl FromRedisValue for Page {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        let mut values = Vec::<redis::Value>::from_redis_value(v)?.into_iter();
        let total = u64::from_redis_value(values.next().unwrap_or(redis::Value::Nil))?;
        let examined = u64::from_redis_value(values.next().unwrap_or(redis::Value::Nil))?;
        let mut entries = Vec::with_capacity(values.len() / 3);
        while let Some(id) = values.next() {
            let (Some(size), Some(head)) = (values.next(), values.next()) else {
                return Err(unexpected("list_dead.lua", &"a cut entry"));
            };
            entries.push(Entry {
                id: String::from_redis_value(id)?,
                size: u64::from_redis_value(size)?,
                head: Vec::<u8>::from_redis_value(head)?,
            });
        }
        Ok(Self {
            total,
            examined,
            entries,
        })
    }
}
