//! The per-project run lock: one process at a time executes a project's tasks (`obra run`, `obra task
//! execute`), so tasks a killed process left `running` can be recovered safely by the next one.
//!
//! The lock is an OS file lock (`File::try_lock`) on `run-<project id>.lock`: in the directory of a SQLite
//! store (`.obra/` for a project-local one), else in the user's state directory, keyed by the store's
//! location. The OS releases it when the holder exits, however it exits, so a SIGKILL leaves no stale lock.
//! The holder writes its pid into the file for the error the next process shows.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A held run lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Take the lock at `path` for `project` (its name, for the error), or fail at once, naming the pid
    /// of the process holding it.
    pub fn acquire(path: &Path, project: &str) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {} for the run lock", dir.display()))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open the run lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let pid = holder.trim();
                let who = if pid.is_empty() { "another obra process".to_string() } else { format!("obra (pid {pid})") };
                bail!(
                    "{who} is already running tasks of project \"{project}\" (lock {}); wait for it to finish or \
                     stop it (Ctrl-C stops it after its current task). Nothing was changed.",
                    path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(Self { file, path: path.to_path_buf() })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("run-1.lock");
        let first = RunLock::acquire(&path, "demo").unwrap();
        let err = RunLock::acquire(&path, "demo").unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())) && err.contains("\"demo\""), "{err}");
        drop(first);
        let again = RunLock::acquire(&path, "demo").unwrap();
        assert_eq!(again.path(), path);
    }
}
