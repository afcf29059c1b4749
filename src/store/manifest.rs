//! The manifest: which segments are live, and up to which Kafka offset every partition is
//! durable. Replaced atomically (write a temporary file, fsync, rename, fsync the
//! directory), so after `kill -9` at any instant it is either the old or the new one.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::segment::{sync_dir, SegmentMeta};
use super::StoreError;
use crate::error::kind::IoError;

pub const FILE: &str = "manifest.json";

/// topic → partition → next offset to consume (everything before it is durable here).
pub type Durable = BTreeMap<String, BTreeMap<i32, i64>>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub next_segment_id: u64,
    pub segments: Vec<SegmentMeta>,
    #[serde(default)]
    pub durable: Durable,
}

impl Manifest {
    pub fn load(root: &Path) -> Result<Option<Manifest>, StoreError> {
        let path = root.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StoreError::Io(IoError::new(
                    format!("cannot read {}", path.display()),
                    e,
                )))
            }
        };
        let m: Manifest = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: format!(
                "invalid manifest: {e} (line {}, column {})",
                e.line(),
                e.column()
            ),
        })?;
        if m.version != 1 {
            return Err(StoreError::Corrupt {
                path,
                reason: format!("manifest version {} (this build reads 1)", m.version),
            });
        }
        Ok(Some(m))
    }

    pub fn store(&self, root: &Path) -> Result<(), StoreError> {
        let tmp = root.join("tmp").join(FILE);
        let dest = root.join(FILE);
        let io = |what: &str, e: std::io::Error| {
            StoreError::Io(IoError::new(format!("{what} {}", tmp.display()), e))
        };
        let text = serde_json::to_vec_pretty(self).expect("manifest serialises");
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)
            .map_err(|e| io("cannot create", e))?;
        f.write_all(&text).map_err(|e| io("cannot write", e))?;
        f.sync_all().map_err(|e| io("cannot fsync", e))?;
        drop(f);
        std::fs::rename(&tmp, &dest).map_err(|e| {
            StoreError::Io(IoError::new(
                format!("cannot rename {} into place", dest.display()),
                e,
            ))
        })?;
        sync_dir(root)
    }
}
