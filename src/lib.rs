//! mod_twofactor: a second authentication factor for Apache HTTPD 2.4,
//! in front of applications published through an SSL-VPN gateway.
//!
//! `ffi` and `apache` are the only modules that touch raw pointers; the
//! rules themselves live in the `twofactor-core` crate.

mod apache;
mod challenge;
mod enforce;
mod ffi;
mod state;
