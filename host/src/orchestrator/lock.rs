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

/// The pid of a live obra process holding the run lock at `path`, if any. It only reads the file (which a
/// holder fills with its pid and empties when it lets go), so it never gets in the way of a process taking the
/// lock; a pid left by a killed holder is checked against the running processes.
pub fn live_holder(path: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let program = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    let name = Path::new(std::str::from_utf8(program).ok()?).file_name()?.to_string_lossy().into_owned();
    name.starts_with("obra").then_some(pid)
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

    #[test]
    fn a_pid_left_by_a_killed_holder_is_not_a_live_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run-1.lock");
        assert_eq!(live_holder(&path), None, "no file");
        // A process that is gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        std::fs::write(&path, format!("{gone}\n")).unwrap();
        assert_eq!(live_holder(&path), None);
        // A live process that is not obra (this test binary is `obra-<hash>`, so use pid 1's name check).
        std::fs::write(&path, "1\n").unwrap();
        assert_eq!(live_holder(&path), None, "pid 1 is not obra");
        std::fs::write(&path, "").unwrap();
        assert_eq!(live_holder(&path), None, "emptied by a holder that let go");
    }
}
