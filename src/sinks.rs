//! Sinks: where judgments go once runs have made them — the last stage of the pipeline
//! (sources → store → query → judge → runs → sinks, as Vector lays a pipeline out).
//!
//! * [`archive::ArchiveWriter`] — every judgment's pairs, config and result in the archive.
//! * [`kafka::KafkaVerdicts`] — every judgment and final verdict as JSON on a Kafka topic.
//!
//! Sinks implement the runs' [`RunListener`]. The [`Dispatcher`] calls them on a thread of
//! its own, in the order the runs reported, so that a slow sink (a producer flush of up to
//! 10 s, an fsync) never holds up the async runtime that ticks runs and serves HTTP;
//! [`Dispatcher::close`] delivers everything queued before the daemon exits.

pub mod archive;
#[cfg(feature = "kafka")]
pub mod kafka;

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::kind::ErrorKind;
use crate::runs::{PairData, Run, RunListener};
use crate::settings::{Kind, Setting, Values};

/// A sink that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    #[cfg(feature = "kafka")]
    #[error("verdict topic: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Io(#[from] crate::error::kind::IoError),
}

impl SinkError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SinkError::Archive(e) => e.kind(),
            #[cfg(feature = "kafka")]
            SinkError::Kafka(_) => ErrorKind::Unavailable,
            SinkError::Io(e) => e.kind(),
        }
    }
}

/// The `[verdicts]` settings of `coalmine.toml`.
pub const VERDICTS_SETTINGS: &[Setting] = &[
    Setting { key: "verdicts.topic", kind: Kind::OptStr, default: "", doc: "Kafka topic receiving every judgment and final verdict as JSON, keyed by run id (unset: none)." },
];

/// The `[archive]` settings.
pub const ARCHIVE_SETTINGS: &[Setting] = &[
    Setting { key: "archive.dir", kind: Kind::OptStr, default: "", doc: "Where every judgment's metric-set pairs, config and result are archived (unset: <store.data-dir>/archive; \"off\" disables)." },
];

/// Where judgments go: `[verdicts]` and `[archive]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SinksConfig {
    /// The Kafka topic of judgments and verdicts (`None`: none).
    pub verdicts_topic: Option<String>,
    /// The archive (`None`: off).
    pub archive_dir: Option<std::path::PathBuf>,
}

impl SinksConfig {
    /// The settings as loaded; the archive defaults to `<data_dir>/archive`.
    pub fn from_settings(v: &Values, data_dir: &std::path::Path) -> SinksConfig {
        SinksConfig {
            verdicts_topic: v.string("verdicts.topic"),
            archive_dir: match v.string("archive.dir") {
                Some(d) if d == "off" => None,
                Some(d) => Some(d.into()),
                None => Some(data_dir.join("archive")),
            },
        }
    }
}

enum Event {
    Judged(Box<Run>, Vec<PairData>),
    Finished(Box<Run>),
}

/// Hands run events to sinks on a dedicated thread (itself a [`RunListener`]).
pub struct Dispatcher {
    tx: Mutex<Option<Sender<Event>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Dispatcher {
    /// Start the thread that calls `sinks`, in this order, for every event.
    pub fn start(sinks: Vec<Arc<dyn RunListener>>) -> Result<Arc<Dispatcher>, SinkError> {
        let (tx, rx) = channel::<Event>();
        let thread = std::thread::Builder::new()
            .name("coalmine-sinks".into())
            .spawn(move || {
                for event in rx {
                    for sink in &sinks {
                        match &event {
                            Event::Judged(run, pairs) => sink.judged(run, pairs),
                            Event::Finished(run) => sink.finished(run),
                        }
                    }
                }
            })
            .map_err(crate::error::kind::IoError::at(
                "cannot start the sinks' thread",
            ))?;
        Ok(Arc::new(Dispatcher {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        }))
    }

    fn send(&self, event: Event) {
        if let Some(tx) = self.tx.lock().expect("sinks lock").as_ref() {
            let _ = tx.send(event);
        }
    }

    /// Deliver every queued event, then stop the thread (blocking; later events are dropped).
    pub fn close(&self) {
        self.tx.lock().expect("sinks lock").take();
        if let Some(t) = self.thread.lock().expect("sinks lock").take() {
            if t.join().is_err() {
                tracing::error!("A sink panicked; events after it were not delivered");
            }
        }
    }
}

impl RunListener for Dispatcher {
    fn judged(&self, run: &Run, pairs: &[PairData]) {
        self.send(Event::Judged(Box::new(run.clone()), pairs.to_vec()));
    }

    fn finished(&self, run: &Run) {
        self.send(Event::Finished(Box::new(run.clone())));
    }
}
