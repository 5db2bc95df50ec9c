//! A safe view of a `server_rec` at configuration time.

use std::ffi::{c_int, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

use super::sys::{ap_find_linked_module, ap_log_error_, apr_pool_t, apr_pstrmemdup, server_rec};

use super::conf::ServerConf;
use super::log::Level;

#[derive(Clone, Copy)]
pub struct Server<'a> {
    raw: NonNull<server_rec>,
    _life: PhantomData<&'a server_rec>,
}

impl<'a> Server<'a> {
    /// # Safety
    /// `s` must be null or a valid `server_rec` for `'a`.
    pub unsafe fn from_raw(s: *mut server_rec) -> Option<Self> {
        NonNull::new(s).map(|raw| Server { raw, _life: PhantomData })
    }

    fn rec(&self) -> &'a server_rec {
        // SAFETY: `from_raw`'s contract.
        unsafe { &*self.raw.as_ptr() }
    }

    /// The main server and every virtual host after it.
    pub fn chain(self) -> impl Iterator<Item = Server<'a>> {
        std::iter::successors(Some(self), |s| {
            // SAFETY: `next` of a valid server_rec is null or valid for as long.
            unsafe { Server::from_raw(s.rec().next) }
        })
    }

    pub fn conf(&self) -> Option<&'a ServerConf> {
        // SAFETY: the vector holds our ServerConf (created by
        // create_server_config for every server) and lives as long as pconf.
        unsafe { super::conf::server_conf(self.rec().module_config) }
    }

    fn text(&self, p: *const std::ffi::c_char) -> Option<&'a str> {
        if p.is_null() {
            return None;
        }
        // SAFETY: Apache's configuration strings are NUL-terminated and live in pconf.
        unsafe { CStr::from_ptr(p) }.to_str().ok()
    }

    /// The pool of the whole Apache process, which outlives restarts.
    pub fn process_pool(&self) -> Option<*mut apr_pool_t> {
        let process = self.rec().process;
        // SAFETY: `process` of a valid server_rec is null or Apache's process_rec.
        let pool = unsafe { process.as_ref() }?.pool;
        (!pool.is_null()).then_some(pool)
    }

    pub fn hostname(&self) -> &'a str {
        self.text(self.rec().server_hostname).unwrap_or("localhost")
    }

    /// "the main server" or "<VirtualHost> at FILE:LINE", for messages.
    pub fn describe(&self) -> String {
        if self.rec().is_virtual == 0 {
            return "main server".to_string();
        }
        match self.text(self.rec().defn_name) {
            Some(file) => format!("<VirtualHost> at {file}:{} ({})", self.rec().defn_line_number, self.hostname()),
            None => format!("<VirtualHost> {}", self.hostname()),
        }
    }

    /// Logs one line for this server. `startup` lines carry no timestamp
    /// (they go to the console while Apache starts).
    pub fn log(&self, pool: *mut apr_pool_t, level: Level, startup: bool, message: &str) {
        let bytes = message.as_bytes();
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let flags = if startup { super::sys::APLOG_STARTUP as c_int } else { 0 };
        // SAFETY: `pool` is a live pool given to the hook; the copy is NUL-terminated.
        let text = unsafe { apr_pstrmemdup(pool, bytes.as_ptr() as *const std::ffi::c_char, len) };
        // SAFETY: valid server; static "%s" format with one C string argument.
        unsafe {
            ap_log_error_(
                c"mod_twofactor".as_ptr(),
                0,
                super::module_index(),
                level as c_int | flags,
                0,
                self.raw.as_ptr(),
                c"%s".as_ptr(),
                text,
            )
        }
    }
}

/// Whether the module built from `source` (`mod_remoteip.c`) is loaded.
/// Complete once every `LoadModule` was read: from check_config on.
pub fn module_loaded(source: &CStr) -> bool {
    // SAFETY: a NUL-terminated name; Apache only reads its module list.
    !unsafe { ap_find_linked_module(source.as_ptr()) }.is_null()
}
