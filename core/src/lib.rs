//! The pure logic of mod_twofactor. Nothing here links against Apache, so
//! every rule is unit-tested with `cargo test -p twofactor-core`.
#![deny(unsafe_code)]

pub mod access;
pub mod admin;
pub mod anchor;
pub mod apacheconf;
pub mod cache;
pub mod clock;
pub mod completion;
pub mod config;
pub mod csrf;
pub mod directory_check;
pub mod factors;
pub mod form;
pub mod identity;
pub mod import;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod notify;
pub mod outage;
pub mod pages;
pub mod path;
pub mod policy;
pub mod random;
pub mod secret;
pub mod store;
pub mod success;
pub mod tamper;
#[cfg(test)]
mod testing;
pub mod text;
pub mod token;
pub mod totp;
