//! Ingest: Kafka messages → decoded points → the store, with the store's durability driving
//! offset commits.
//!
//! ```text
//! consumer thread ──MessageBatch──► decoder thread ──append──► Store ◄──flush── flusher
//!   poll, copy payloads               skip already-durable        │
//!   commit durable offsets ◄──────────────────────────────────────┘ durable offsets
//! ```
//!
//! The decoder is format-aware per topic ([`decode`]); undecodable messages are counted,
//! logged once per burst and copied to a dead-letter topic when one is configured.

pub mod decode;
mod fast_json;
#[cfg(feature = "kafka")]
pub mod kafka;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counters of the ingest pipeline (exported by `/metrics`).
#[derive(Debug, Default)]
pub struct IngestStats {
    pub messages: AtomicU64,
    pub points: AtomicU64,
    pub decode_errors: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub duplicates_skipped: AtomicU64,
    pub commits: AtomicU64,
    pub flushes: AtomicU64,
    /// Partitions are assigned to this member.
    pub assigned: AtomicBool,
    /// Wall-clock time (epoch ms) up to which ingest is caught up: at that moment the
    /// consumer had no message waiting and everything before was in the store. A judgment
    /// of a window ending at `t` waits until this passes `t` (plus the allowed lateness).
    pub caught_up_ms: AtomicI64,
}

impl IngestStats {
    pub fn caught_up_ms(&self) -> i64 {
        self.caught_up_ms.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> IngestSnapshot {
        IngestSnapshot {
            messages: self.messages.load(Ordering::Relaxed),
            points: self.points.load(Ordering::Relaxed),
            decode_errors: self.decode_errors.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            duplicates_skipped: self.duplicates_skipped.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
        }
    }
}

/// A copy of [`IngestStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestSnapshot {
    pub messages: u64,
    pub points: u64,
    pub decode_errors: u64,
    pub dead_lettered: u64,
    pub duplicates_skipped: u64,
    pub commits: u64,
    pub flushes: u64,
}

/// Logs the first event of a burst at once and a summary of the rest at most every
/// `every`, so a stream of bad messages does not flood the log.
pub struct BurstLog {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl BurstLog {
    pub fn new(every: Duration) -> Self {
        BurstLog {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// Returns `Some(suppressed_since_last)` when this event should be logged.
    pub fn admit(&self) -> Option<u64> {
        let mut s = self.state.lock().expect("burst log lock");
        let now = Instant::now();
        match s.0 {
            Some(last) if now.duration_since(last) < self.every => {
                s.1 += 1;
                None
            }
            _ => {
                let suppressed = s.1;
                *s = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}
