//! The bottom layer: bindgen's declarations of the Apache and APR API
//! (c-shim/wrapper.h) and of the C shim's symbols. Everything above reads
//! Apache through the safe wrappers of `crate::apache`.

#![allow(warnings, unsafe_op_in_unsafe_fn)]
#![allow(clippy::all, clippy::pedantic, clippy::undocumented_unsafe_blocks)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
