//! mod_twofactor: a second authentication factor for Apache HTTPD 2.4,
//! in front of applications published through an SSL-VPN gateway.
//!
//! Layers, bottom to top (docs/architecture.md): `apache::sys` (bindings),
//! the safe wrappers of `apache`, the product's hooks (`enforce`,
//! `challenge`, over `state`), and `ffi` (the exports, the `module` struct
//! and the panic boundary). `apache` and `ffi` are the only modules that
//! may hold `unsafe`; the rules themselves live in the `twofactor-core` crate.

#![deny(unsafe_code)]

mod anchor;
#[allow(unsafe_code)]
mod apache;
mod challenge;
mod enforce;
#[allow(unsafe_code)]
mod ffi;
mod metrics;
mod outcome;
mod state;
mod status;
