//! The workspace the agents work in: what changed during an agent run.
//!
//! For now changes are found by comparing content hashes before and after the run (the file watcher of the
//! seeds' M3 comes with checkpoints and git integration).

mod snapshot;

pub use snapshot::{Snapshot, diff};
