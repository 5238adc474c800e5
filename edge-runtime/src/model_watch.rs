//! Keeps the kiosk's model in step with its file: a replaced file is reloaded, a removed or
//! broken one is reported once while the loaded model keeps running. A kiosk must never go
//! dark because someone copied a new model over the old one.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::model::Generator;

/// What identifies one version of the file: replaced (new inode), rewritten or touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

fn version(path: &Path) -> Option<Version> {
    let m = std::fs::metadata(path).ok()?;
    Some(Version {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    })
}

/// What a check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    None,
    Reloaded,
    /// The file is gone; the loaded model stays.
    Missing,
    /// The new file does not load; the loaded model stays.
    Rejected(String),
}

pub struct ModelWatch {
    path: PathBuf,
    ort_lib: Option<PathBuf>,
    threads: Option<usize>,
    /// The version last looked at (loaded or rejected), or None once found missing.
    seen: Option<Version>,
}

impl ModelWatch {
    /// Watches the file `generator` was loaded from.
    pub fn new(path: &Path, ort_lib: Option<&Path>, threads: Option<usize>) -> Self {
        Self {
            path: path.to_path_buf(),
            ort_lib: ort_lib.map(Path::to_path_buf),
            threads,
            seen: version(path),
        }
    }

    /// Reloads if the file changed since the last look (or always, when `force`).
    pub fn check(&mut self, generator: &Mutex<Generator>, force: bool) -> Change {
        let now = version(&self.path);
        if now == self.seen && !force {
            return Change::None;
        }
        let was_present = self.seen.is_some();
        self.seen = now;
        if now.is_none() {
            if was_present || force {
                tracing::warn!(
                    "model file {} is gone; keeping the loaded model",
                    self.path.display()
                );
            }
            return Change::Missing;
        }
        match Generator::load(&self.path, self.ort_lib.as_deref(), self.threads) {
            Ok(new) => {
                let name = new.info.name.clone();
                match generator.lock() {
                    Ok(mut g) => *g = new,
                    Err(poisoned) => *poisoned.into_inner() = new,
                }
                tracing::info!("reloaded model `{name}` from {}", self.path.display());
                Change::Reloaded
            }
            Err(e) => {
                tracing::warn!("cannot reload the model ({e}); keeping the loaded model");
                Change::Rejected(e.to_string())
            }
        }
    }
}
