//! Support code shared by the integration tests.

pub mod did_model;
pub mod did_synth;
pub mod fake_directory;
pub mod other_impls;
pub mod run;
pub mod signed_ops;
pub mod test_mirror;
