//! The archive sink: every judgment of the daemon's runs — its metric-set pairs (both
//! scopes, values and timestamps), config and result — written to the archive
//! ([`crate::archive`], read by `coalmine replay` and Python), and the run's summary when it
//! ends.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::archive::{write_judgment, write_run, ArchiveError};
use crate::error::kind::IoError;
use crate::runs::{PairData, Run, RunListener};

/// Archives judgments and runs (a [`RunListener`]).
pub struct ArchiveWriter {
    root: PathBuf,
    lock: Mutex<()>,
}

impl ArchiveWriter {
    /// Write into the archive directory `root` (created if missing).
    pub fn open(root: &Path) -> Result<ArchiveWriter, ArchiveError> {
        std::fs::create_dir_all(root.join("runs")).map_err(|source| {
            ArchiveError::Io(IoError::new(
                format!("cannot create {}", root.display()),
                source,
            ))
        })?;
        Ok(ArchiveWriter {
            root: root.to_path_buf(),
            lock: Mutex::new(()),
        })
    }
}

impl RunListener for ArchiveWriter {
    fn judged(&self, run: &Run, pairs: &[PairData]) {
        let _g = self.lock.lock().expect("archive lock");
        if let Err(e) = write_judgment(&self.root, run, pairs, None) {
            tracing::error!(run = %run.id, error = %e, "Cannot archive a judgment");
        }
    }

    fn finished(&self, run: &Run) {
        let _g = self.lock.lock().expect("archive lock");
        if let Err(e) = write_run(&self.root, run, None) {
            tracing::error!(run = %run.id, error = %e, "Cannot archive a run");
        }
    }
}
