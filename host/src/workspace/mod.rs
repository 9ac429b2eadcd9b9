//! The workspace the agents work in: what changed during an agent run, and checkpoints of its working tree.
//!
//! Changes are tracked by a hash index of the tree and a file watcher ([`watcher`], ADR 0025); the whole-tree
//! snapshot diff ([`Snapshot`], ADR 0004) remains for comparison. Checkpoints are commits under private git refs
//! (see [`checkpoint`]). Every file they open is opened beneath the workspace's directory descriptor
//! ([`beneath`], ADR 0035): no symbolic link is followed and FIFOs, sockets and devices are skipped.

pub mod beneath;
pub mod checkpoint;
pub mod git;
mod snapshot;
pub mod watcher;

pub use snapshot::{Snapshot, diff};
pub use watcher::{ChangeTracker, TrackedChange};
