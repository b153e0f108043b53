//! Support code shared by the integration tests.
// Each integration test binary compiles this module separately and uses only
// part of it, so unused items are expected there.
#![allow(
    dead_code,
    reason = "each test binary uses only part of the support code"
)]

pub mod fake_directory;
pub mod other_impls;
pub mod run;
