//! The crate's error type. Every error has a [`ErrorKind`], mapped once to an exit code,
//! an HTTP status, a log level and a Python exception class.

use crate::judge::JudgeError;

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
}

/// The crate's error: one variant per stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Judge(#[from] JudgeError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("ingest: {0}")]
    Ingest(String, ErrorKind),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Judge(_) | Error::InvalidInput(_) => ErrorKind::InvalidInput,
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Error::Io { .. } => ErrorKind::Unavailable,
            Error::Store(e) => e.kind(),
            Error::Config(_) => ErrorKind::InvalidInput,
            Error::Ingest(_, kind) => *kind,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
