//! Integration tests: the emulator over real HTTP on loopback.

mod admin;
mod binary;
mod common;
mod dbs;
mod dbs_precheck;
mod dbs_rules;
mod rds;
mod signing;
mod sts;
mod transport;
