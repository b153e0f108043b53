//! plcbundle-tools: small composable filters that archive the AT Protocol's
//! PLC directory into plcbundle V1 bundles.
//!
//! All logic lives in this library so that it can be tested without
//! spawning processes; each `bin/plc-*.rs` is a thin main that parses its
//! arguments and calls one entry point here. [`cli`] holds the only process
//! policy (printing errors, exit codes, closed pipes).
#![deny(missing_docs)]

pub mod audit;
pub mod chunk;
pub mod cli;
pub mod clone;
pub mod dedup;
pub mod did;
pub mod diff;
pub mod error;
pub mod export;
pub mod index;
pub mod line;
pub mod progress;
pub mod repo;
pub mod seal;
pub mod serve;
pub mod sha;
pub mod source;
#[cfg(any(test, feature = "synth"))]
pub mod synth;
pub mod time;
pub mod verify;

pub use error::{Error, Result};
