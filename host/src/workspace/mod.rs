//! The workspace the agents work in: what changed during an agent run, and checkpoints of its working tree.
//!
//! Changes are tracked by a hash index of the tree and a file watcher ([`watcher`], ADR 0025); the whole-tree
//! snapshot diff ([`Snapshot`], ADR 0004) remains for comparison. Checkpoints are commits under private git refs
//! (see [`checkpoint`]).

pub mod checkpoint;
pub mod git;
mod snapshot;
pub mod watcher;

pub use snapshot::{Snapshot, diff};
pub use watcher::{ChangeTracker, TrackedChange};
