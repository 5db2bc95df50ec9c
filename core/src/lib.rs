//! The pure logic of mod_twofactor. Nothing here links against Apache, so
//! every rule is unit-tested with `cargo test -p twofactor-core`.
#![deny(unsafe_code)]
