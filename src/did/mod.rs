//! DID resolution from the archive: what the official directory answers
//! on `/{did}`, `/{did}/data`, `/{did}/log`, `/{did}/log/audit` and
//! `/{did}/log/last`, computed from the sealed bundles through a DID index
//! kept inside the repository.
//!
//! - [`answer`]: the answers, pure functions of a DID's operations.
//! - [`json`], [`op`]: the bytes those answers are made of.
//! - [`store`]: the index files (DID to operation locations, bundle frame
//!   tables), their crash-safe updates and lookups.
//! - [`build`]: `plc-index`, bringing the index up to date.
//! - [`resolve`]: `plc-did`, reading operations through the index.
//!
//! Only sealed and indexed operations are answered: a mirror is as fresh
//! as its last bundle.

pub mod answer;
pub mod build;
pub mod json;
pub mod op;
pub mod resolve;
pub mod store;
