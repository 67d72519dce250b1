//! Integration tests: the emulator over real HTTP on loopback.

mod admin;
mod binary;
mod common;
mod dbs;
mod rds;
mod signing;
mod sts;
mod transport;
