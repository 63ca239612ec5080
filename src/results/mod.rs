//! The results folder as a typed model: the manifest, summary rows, cell
//! records and their files, the lock; every file written atomically and
//! through the redactor, so none can be written with a secret in it.

pub mod files;
pub mod lock;
pub mod manifest;
pub mod read;
pub mod record;
pub mod seconds;
pub mod summary;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::redact::Redactor;
use std::time::{SystemTime, UNIX_EPOCH};

pub use lock::RunLock;
pub use manifest::{CellEntry, CellStatus, Manifest, RunStatus, VisitEntry};
pub use read::{load_rows, read_manifest};
pub use record::{CellRecord, StatsFile};
pub use summary::SummaryRow;

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{} is not a run folder: cannot read run.json: {error}", dir.display())]
    NotARun { dir: PathBuf, error: io::Error },
    #[error("{} is damaged: {message}", path.display())]
    Damaged { path: PathBuf, message: String },
    #[error("cannot write {}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("{} is in use by another loadmatrix process{}; wait for it to finish (or stop it) and try again", dir.display(), holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { dir: PathBuf, holder: Option<u32> },
}

/// Writes `bytes` to `path` so that readers see the old file or the whole new
/// one, never a part: temp file in the same folder, fsync, rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    // A full disk fails the write: no half-written temp file is left behind.
    written.inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    sync_dir(dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Removes half-written files a killed run left behind (hidden temp files
/// and cell folders that were never renamed into place).
pub(crate) fn clean_stale_temp(root: &Path) {
    for dir in [root.to_path_buf(), root.join("cells")] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp-") {
                let p = e.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
    }
}

/// `YYYYmmdd-HHMMSS` in UTC.
pub(crate) fn run_id(now: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(now);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// RFC 3339 in UTC, to the millisecond.
pub fn timestamp(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// One run's folder: `<base>/<plan-name>/<run-id>/`. Text written through it
/// is redacted first: secrets never reach the disk.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
    redactor: Arc<Redactor>,
}

impl RunDir {
    /// Creates a fresh run folder; a second run in the same second gets a suffix.
    pub fn create(base: &Path, plan_name: &str, id: &str) -> io::Result<RunDir> {
        let parent = base.join(plan_name);
        fs::create_dir_all(&parent)?;
        for n in 1.. {
            let name = if n == 1 {
                id.to_string()
            } else {
                format!("{id}-{n}")
            };
            let root = parent.join(name);
            match fs::create_dir(&root) {
                Ok(()) => {
                    fs::create_dir_all(root.join("cells"))?;
                    return Ok(RunDir::open(&root));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    pub fn open(root: &Path) -> RunDir {
        RunDir {
            root: root.to_path_buf(),
            redactor: Arc::new(Redactor::default()),
        }
    }

    /// The same folder, redacting these secrets from everything written.
    pub(crate) fn with_secrets(mut self, secrets: Vec<String>) -> RunDir {
        self.redactor = Arc::new(Redactor::new(&secrets));
        self
    }

    pub(crate) fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }

    /// The masking every file written through this folder gets.
    pub fn redactor(&self) -> &Arc<Redactor> {
        &self.redactor
    }

    /// Bytes with every secret masked, text or not.
    fn clean(&self, bytes: &[u8]) -> Vec<u8> {
        self.redactor.redact_bytes(bytes)
    }

    pub fn lock(&self) -> Result<RunLock, ResultsError> {
        RunLock::acquire(&self.root)
    }

    pub fn id(&self) -> String {
        self.root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub(crate) fn cell_dir(&self, cell_id: &str) -> PathBuf {
        self.root.join("cells").join(cell_id)
    }

    /// Where a file named `name` (a template may have built the name from
    /// `env`) goes: `root/name`, with every secret in the name masked.
    pub(crate) fn path_of(&self, name: &str) -> PathBuf {
        self.root.join(self.redactor.redact(name))
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), ResultsError> {
        let path = self.path_of(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|error| ResultsError::Io {
                path: parent.to_path_buf(),
                error,
            })?;
        }
        write_atomic(&path, &self.clean(bytes)).map_err(|error| ResultsError::Io { path, error })
    }

    /// A file inside a cell folder that already exists (its report page).
    pub(crate) fn write_in_cell(
        &self,
        cell_id: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), ResultsError> {
        let path = self.cell_dir(cell_id).join(self.redactor.redact(name));
        write_atomic(&path, &self.clean(bytes)).map_err(|error| ResultsError::Io { path, error })
    }

    /// Writes a cell's files into a hidden folder, then renames it into place:
    /// a cell folder exists only when all its files do.
    pub(crate) fn write_cell(
        &self,
        cell_id: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<(), ResultsError> {
        let tmp = self
            .root
            .join("cells")
            .join(format!(".{cell_id}.tmp-{}", std::process::id()));
        let files: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(n, b)| (self.redactor.redact(n), self.clean(b)))
            .collect();
        self.write_cell_via(&tmp, cell_id, &files).map_err(|error| {
            let _ = fs::remove_dir_all(&tmp);
            ResultsError::Io {
                path: self.cell_dir(cell_id),
                error,
            }
        })
    }

    fn write_cell_via(
        &self,
        tmp: &Path,
        cell_id: &str,
        files: &[(String, Vec<u8>)],
    ) -> io::Result<()> {
        let cells = self.root.join("cells");
        fs::create_dir_all(&cells)?;
        if tmp.exists() {
            fs::remove_dir_all(tmp)?;
        }
        fs::create_dir_all(tmp)?;
        for (name, bytes) in files {
            let mut f = File::create(tmp.join(name))?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        sync_dir(tmp);
        let dest = self.cell_dir(cell_id);
        if dest.exists() {
            fs::remove_dir_all(&dest)?;
        }
        fs::rename(tmp, &dest)?;
        sync_dir(&cells);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn run_ids_and_timestamps_are_utc_civil_time() {
        // 2026-11-27 21:42:14 UTC
        let t = UNIX_EPOCH + Duration::from_millis(1_795_815_734_250);
        assert_eq!(run_id(t), "20261127-214214");
        assert_eq!(timestamp(t), "2026-11-27T21:42:14.250Z");
        assert_eq!(run_id(UNIX_EPOCH), "19700101-000000");
    }

    #[test]
    fn cell_folders_appear_whole_and_runs_never_collide() {
        let base = std::env::temp_dir().join(format!("lm-results-{}", std::process::id()));
        let a = RunDir::create(&base, "p", "20260101-000000").unwrap();
        let b = RunDir::create(&base, "p", "20260101-000000").unwrap();
        assert_ne!(a.root, b.root);
        assert!(b.root.ends_with("20260101-000000-2"));
        a.write_cell(
            "c1",
            &[
                ("stats.json".to_string(), b"{}".to_vec()),
                ("timeline.csv".to_string(), b"t\n".to_vec()),
            ],
        )
        .unwrap();
        let names: Vec<String> = fs::read_dir(a.root.join("cells"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["c1"]);
        assert_eq!(
            fs::read(a.cell_dir("c1").join("stats.json")).unwrap(),
            b"{}"
        );
        a.write("run.json", b"1").unwrap();
        a.write("run.json", b"2").unwrap();
        assert_eq!(fs::read(a.root.join("run.json")).unwrap(), b"2");
        let leftovers = fs::read_dir(&a.root)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        assert_eq!(leftovers, 0);
        fs::remove_dir_all(&base).unwrap();
    }
}
