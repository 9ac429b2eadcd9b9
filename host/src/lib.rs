//! Obra: a supervisor for coding agents.
//!
//! The `obra` binary runs the supervision loop; agents, LLM providers, quality gates and breakpoint rules are
//! sandboxed WebAssembly components that implement the `obra:plugin` WIT contract (see `wit/` and
//! `docs/architecture.md`). Data flows one way: `cli` -> `engine` -> (`state`, `plugins`, `workspace`).
//! [`orchestrator::Orchestrator`] is the programmatic API.

pub mod builtin;
pub mod cli;
pub mod config;
pub mod contract;
pub mod engine;
pub mod orchestrator;
pub mod plugins;
pub mod sandbox;
pub mod state;
pub mod telemetry;
pub mod text;
pub mod transport;
pub mod workspace;
