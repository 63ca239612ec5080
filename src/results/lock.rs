//! One process writes a run folder at a time: an advisory lock on
//! `<run>/.lock`, which also holds the holder's pid.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use super::ResultsError;

/// Held for as long as the run writes the folder; released on drop (also
/// when the process dies, as the kernel closes the file).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    pub(crate) fn acquire(dir: &Path) -> Result<RunLock, ResultsError> {
        let path = dir.join(".lock");
        let io = |error| ResultsError::Io {
            path: path.clone(),
            error,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(ResultsError::Locked {
                dir: dir.to_path_buf(),
                holder: holder.trim().parse().ok(),
            });
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(RunLock { _file: file })
    }
}
