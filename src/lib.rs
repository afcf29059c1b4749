//! # coalmine
//!
//! Automated canary analysis: decide, continuously and with statistics, whether a canary
//! release is worse than its baseline.
//!
//! ```text
//! ingest (Kafka) → store (Arrow) → query (DataFusion SQL) → judge → runs → sinks (archive,
//! Kafka verdicts); api and report read every stage
//! ```
//!
//! * [`judge`] — pure statistics: Kayenta's `NetflixACAJudge-v1.0` reproduced exactly, and
//!   coalmine's own judges (`coalmine-v1`, exact Mann–Whitney intervals).

#[cfg(feature = "server")]
pub mod api;
pub mod archive;
pub mod canary;
pub mod config;
pub mod daemon;
#[cfg(all(feature = "kafka", feature = "server"))]
pub mod demo;
pub mod error;
pub mod ingest;
pub mod judge;
pub mod query;
pub mod report;
pub mod runs;
pub mod settings;
pub mod sinks;
pub mod store;
pub mod synthetic;

pub use error::{Error, ErrorKind, IoError};
