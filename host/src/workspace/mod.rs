//! The workspace the agents work in: what changed during an agent run, and checkpoints of its working tree.
//!
//! For now changes are found by comparing content hashes before and after the run (the file watcher of the
//! seeds' M3 comes with git integration). Checkpoints are commits under private git refs (see [`checkpoint`]).

pub mod checkpoint;
mod snapshot;

pub use snapshot::{Snapshot, diff};
