//! Safe wrappers over the parts of Apache's API the module uses.

pub mod conf;
pub mod level;
pub mod log;
pub mod request;
pub mod server;
pub mod shm;
pub(crate) mod sys;

use std::ffi::c_int;

pub use request::{Request, Table};

use self::sys as bindings;

/// The index Apache gave this module when loading it (config vectors, log
/// levels). Read through the C shim, so that this layer does not import
/// the `module` struct the top layer defines.
pub fn module_index() -> c_int {
    // SAFETY: a plain read of an int that Apache writes once, while loading
    // the module and before any hook or directive of ours runs.
    unsafe { bindings::twofactor_module_index() }
}

/// Hook results.
pub const OK: c_int = bindings::OK as c_int;
pub const DECLINED: c_int = bindings::DECLINED;

/// The HTTP statuses the module answers with.
pub mod status {
    use std::ffi::c_int;

    pub const OK: c_int = 200;
    pub const SEE_OTHER: c_int = 303;
    pub const BAD_REQUEST: c_int = 400;
    pub const UNAUTHORIZED: c_int = 401;
    pub const FORBIDDEN: c_int = 403;
    pub const NOT_FOUND: c_int = 404;
    pub const METHOD_NOT_ALLOWED: c_int = 405;
    pub const INTERNAL_SERVER_ERROR: c_int = 500;
    pub const SERVICE_UNAVAILABLE: c_int = 503;
}
