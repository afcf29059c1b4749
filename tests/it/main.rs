//! The integration tests: one binary, a module per stage.

mod cli;
mod docs;
mod e2e;
mod histogram;
mod hostile;
mod http;
mod ingest;
mod judge;
mod judge_v2;
mod kafka;
mod kayenta_vectors;
mod otlp;
mod prometheus;
mod properties;
mod query;
mod r_wilcox;
mod seq_v2;
mod sequential;
mod slo;
mod split;
mod store;
mod util;
