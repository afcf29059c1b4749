//! The crate's error type: one `#[from]` variant per stage, each keeping its stage's error
//! (and that error's cause) intact. Every error has an [`ErrorKind`] (the leaf module
//! [`kind`]), mapped once to an exit code, an HTTP status, a log level and a Python
//! exception class.

pub mod kind;

pub use kind::{ErrorKind, IoError};

/// The crate's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Judge(#[from] crate::judge::JudgeError),
    #[error(transparent)]
    Io(#[from] IoError),
    /// A command-line value the CLI checks itself (a path, an option's value).
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Config(#[from] crate::settings::ConfigError),
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
    #[error(transparent)]
    Canary(#[from] crate::canary::CanaryError),
    #[error(transparent)]
    Run(#[from] crate::runs::RunError),
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    #[error(transparent)]
    Sink(#[from] crate::sinks::SinkError),
    #[cfg(feature = "kafka")]
    #[error("ingest: {0}")]
    Ingest(#[from] crate::ingest::kafka::IngestError),
    /// A Kafka client the CLI itself creates (the demo's broker and producer).
    #[cfg(feature = "kafka")]
    #[error("{context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A task of the daemon ended abnormally (it panicked or was cancelled).
    #[error("a task of the daemon failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A state that should not happen.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Judge(e) => e.kind(),
            Error::InvalidInput(_) | Error::Config(_) => ErrorKind::InvalidInput,
            Error::Io(e) => e.kind(),
            Error::Store(e) => e.kind(),
            Error::Query(e) => e.kind(),
            Error::Canary(e) => e.kind(),
            Error::Run(e) => e.kind(),
            Error::Archive(e) => e.kind(),
            Error::Sink(e) => e.kind(),
            #[cfg(feature = "kafka")]
            Error::Ingest(e) => e.kind(),
            #[cfg(feature = "kafka")]
            Error::Kafka { .. } => ErrorKind::Unavailable,
            Error::Task(_) | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io(IoError::new(context, source))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
