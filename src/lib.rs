//! # coalmine
//!
//! Automated canary analysis: decide, continuously and with statistics, whether a canary
//! release is worse than its baseline.
//!
//! ```text
//! ingest (Kafka) → store (Arrow) → query (DataFusion SQL) → judge → runs → api / report
//! ```
//!
//! * [`judge`] — pure statistics: Kayenta's `NetflixACAJudge-v1.0` reproduced exactly, and
//!   coalmine's own judges (`coalmine-v1`, exact Mann–Whitney intervals).

pub mod config;
pub mod daemon;
pub mod ingest;
pub mod judge;
pub mod query;
pub mod store;
pub mod error;
pub mod report;

pub use error::{Error, ErrorKind};
