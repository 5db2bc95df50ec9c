//! This module's configuration records inside Apache's config vectors.

use std::ffi::c_void;
use std::sync::{Arc, OnceLock};

use twofactor_core::config::{DirConfig, ServerConfig};

use super::sys::{ap_conf_vector_t, apr_palloc, apr_pool_t};
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

/// Per-directory record: plain data, allocated in Apache's pool with no
/// cleanup (Apache creates and merges these on every request).
#[derive(Default, Clone, Copy)]
pub struct DirConf {
    pub parsed: DirConfig,
    /// Test builds only (`TwoFactorTestNoDirConfig`): a merge with this
    /// record gives no record at all, as an allocation failure would.
    #[cfg(feature = "test-hooks")]
    pub drop_when_merged: bool,
}

impl DirConf {
    /// A record holding `parsed` (and no test flag).
    #[allow(clippy::needless_update)] // not needless in test builds
    pub fn new(parsed: DirConfig) -> DirConf {
        DirConf { parsed, ..DirConf::default() }
    }
}

// apr_palloc aligns to 8 bytes.
const _: () = assert!(std::mem::align_of::<DirConf>() <= 8);

/// Copies `conf` into `pool`; it lives as long as the pool and needs no drop.
pub fn dir_conf_in_pool(pool: *mut apr_pool_t, conf: DirConf) -> *mut c_void {
    // SAFETY: `pool` is a live pool given to a create/merge callback;
    // apr_palloc returns memory of the requested size, aligned to 8 bytes
    // (checked above), or null.
    unsafe {
        let slot = apr_palloc(pool, std::mem::size_of::<DirConf>()) as *mut DirConf;
        if !slot.is_null() {
            slot.write(conf);
        }
        slot as *mut c_void
    }
}

fn slot(vector: *mut ap_conf_vector_t) -> *mut c_void {
    let index = super::module_index();
    if vector.is_null() || index < 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: a config vector is an array of `void *`, one per loaded
    // module, indexed by module_index (the `ap_get_module_config` macro).
    unsafe { *(vector as *mut *mut c_void).add(index as usize) }
}

/// What the module's slot of a request's `request_config` holds when set:
/// a mark, not a pointer to data (nothing to free).
static REQUEST_MARK: u8 = 1;

/// Whether the module's slot of `r->request_config` is marked.
pub fn request_marked(vector: *mut ap_conf_vector_t) -> bool {
    !slot(vector).is_null()
}

/// Marks the module's slot of `r->request_config` (Apache makes a fresh,
/// zeroed vector for every request, internal redirects included).
///
/// # Safety
/// `vector` must be null or a live request config vector.
pub unsafe fn mark_request(vector: *mut ap_conf_vector_t) {
    let index = super::module_index();
    if vector.is_null() || index < 0 {
        return;
    }
    // SAFETY: as in `slot`: one `void *` per loaded module; the mark is a
    // static, never dereferenced as data by anyone.
    unsafe { *(vector as *mut *mut c_void).add(index as usize) = (&raw const REQUEST_MARK) as *mut c_void }
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
