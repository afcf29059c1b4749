//! What kind of failure an error is — the leaf every stage's error type maps to, with no
//! dependency on any stage. It is mapped once to an exit code, an HTTP status, a log level
//! (here) and a Python exception class (`python/src/lib.rs`).

/// What kind of failure an error is, independent of the stage it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's input is wrong (bad JSON, unknown judge, wrong types, bad SQL…).
    InvalidInput,
    /// Something named does not exist (a file, a config id, a run).
    NotFound,
    /// A dependency is not reachable right now (broker, disk full…); retrying may help.
    Unavailable,
    /// A bug or an unexpected state.
    Internal,
}

impl ErrorKind {
    /// Process exit code for the CLI: 2 for bad input (as argument errors), 1 otherwise.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::InvalidInput | ErrorKind::NotFound => 2,
            ErrorKind::Unavailable | ErrorKind::Internal => 1,
        }
    }

    /// HTTP status code for the API.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidInput => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }

    /// How loudly the daemon logs it: the caller's mistakes are theirs to see (debug), a
    /// dependency down is a warning, a bug an error.
    pub fn log_level(self) -> tracing::Level {
        match self {
            ErrorKind::InvalidInput | ErrorKind::NotFound => tracing::Level::DEBUG,
            ErrorKind::Unavailable => tracing::Level::WARN,
            ErrorKind::Internal => tracing::Level::ERROR,
        }
    }
}

/// A failed I/O operation and what was being done ("cannot write /data/runs/a.json: …"):
/// the one I/O error of every stage.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct IoError {
    pub context: String,
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    pub fn new(context: impl Into<String>, source: std::io::Error) -> Self {
        IoError {
            context: context.into(),
            source,
        }
    }

    /// For `map_err`: `std::fs::read(&p).map_err(IoError::at(format!("cannot read {p}")))`.
    pub fn at(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> IoError {
        let context = context.into();
        move |source| IoError { context, source }
    }

    /// A missing file or directory is `NotFound`; anything else is `Unavailable`.
    pub fn kind(&self) -> ErrorKind {
        match self.source.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Unavailable,
        }
    }
}
