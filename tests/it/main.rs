//! The integration tests: one binary, one module per tool or concern, so
//! that the suite links once instead of once per file.

mod common;

mod audit;
mod bad_input;
mod chunk;
mod clone;
mod cookbook;
mod crash;
mod dedup;
mod demo;
mod did;
mod did_serve;
mod diff;
mod docs;
mod export;
mod fake_directory_selftest;
mod hostile_clients;
mod hostile_directory;
mod hostile_files;
mod make;
mod pipeline;
mod progress;
mod seal;
mod serve;
mod verify;
