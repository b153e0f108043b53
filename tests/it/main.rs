//! The integration tests: one binary, one module per tool or concern, so
//! that the suite links once instead of once per file.

mod common;

mod bad_input;
mod chunk;
mod cookbook;
mod crash;
mod dedup;
mod demo;
mod did;
mod did_serve;
mod docs;
mod export;
mod fake_directory_selftest;
mod hostile_clients;
mod make;
mod pipeline;
mod progress;
mod seal;
mod serve;
mod verify;
