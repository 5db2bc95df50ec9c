//! Safe wrappers over the parts of Apache's API the module uses.

pub mod conf;
pub mod log;
pub mod request;
pub mod server;

use std::ffi::c_int;

pub use request::{Request, Table};

use crate::ffi::bindings;

/// Hook results.
pub const OK: c_int = bindings::OK as c_int;
pub const DECLINED: c_int = bindings::DECLINED;
