//! The integration tests: one binary, a module per stage.

mod cli;
mod judge;
mod kayenta_vectors;
mod r_wilcox;
mod util;
