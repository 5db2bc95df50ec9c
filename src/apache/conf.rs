//! This module's configuration records inside Apache's config vectors.

use std::ffi::c_void;
use std::sync::{Arc, OnceLock};

use twofactor_core::config::{DirConfig, ServerConfig};

use crate::ffi::bindings::ap_conf_vector_t;
use crate::ffi::module;
use crate::state::ServerState;

/// Per-server record: the directives as written, and what `check_config`
/// made of them.
#[derive(Default)]
pub struct ServerConf {
    pub parsed: ServerConfig,
    runtime: OnceLock<Runtime>,
}

/// What requests of a server see.
pub enum Runtime {
    /// No directive of ours in this server: requests are left alone.
    Unconfigured,
    Configured(Arc<ServerState>),
}

impl ServerConf {
    pub fn new(parsed: ServerConfig) -> Self {
        ServerConf { parsed, runtime: OnceLock::new() }
    }

    /// Set once by `check_config`; false if it was set already.
    pub fn set_runtime(&self, runtime: Runtime) -> bool {
        self.runtime.set(runtime).is_ok()
    }

    pub fn runtime(&self) -> Option<&Runtime> {
        self.runtime.get()
    }
}

/// Per-directory record.
#[derive(Default, Clone)]
pub struct DirConf {
    pub parsed: DirConfig,
}

fn slot(vector: *mut ap_conf_vector_t) -> *mut c_void {
    let index = module::index();
    if vector.is_null() || index < 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: a config vector is an array of `void *`, one per loaded
    // module, indexed by module_index (the `ap_get_module_config` macro).
    unsafe { *(vector as *mut *mut c_void).add(index as usize) }
}

/// # Safety
/// `vector` must be null or a server config vector whose slot for this
/// module is null or a `ServerConf` made by `create_server_config`, alive for `'a`.
pub unsafe fn server_conf<'a>(vector: *mut ap_conf_vector_t) -> Option<&'a ServerConf> {
    // SAFETY: by the contract above.
    unsafe { (slot(vector) as *const ServerConf).as_ref() }
}

/// # Safety
/// As `server_conf`, and no other reference to that record may be alive
/// (configuration is read by one thread, before any request).
pub unsafe fn server_conf_mut<'a>(vector: *mut ap_conf_vector_t) -> Option<&'a mut ServerConf> {
    // SAFETY: by the contract above.
    unsafe { (slot(vector) as *mut ServerConf).as_mut() }
}

/// # Safety
/// `vector` must be null or a per-directory config vector whose slot for
/// this module is null or a `DirConf`, alive for `'a`.
pub unsafe fn dir_conf<'a>(vector: *mut ap_conf_vector_t) -> Option<&'a DirConf> {
    // SAFETY: by the contract above.
    unsafe { (slot(vector) as *const DirConf).as_ref() }
}
