//! Words shared by every child of this Apache: anonymous shared memory
//! segments (one per use: the metrics, the anchor table), made by the
//! parent before the fork and kept in the process pool. They live as long
//! as the parent, so what they hold survives graceful restarts, and every
//! child inherits the mappings.

use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::AtomicU64;

use super::server::Server;
use super::sys::{
    ap_mpm_query, apr_pool_userdata_get, apr_pool_userdata_set, apr_shm_baseaddr_get, apr_shm_create, apr_shm_size_get,
    apr_shm_t, APR_SUCCESS, AP_MPMQ_HARD_LIMIT_DAEMONS,
};

/// What a segment is for: its name in the process pool's userdata.
#[derive(Debug, Clone, Copy)]
pub enum Segment {
    Metrics,
    Anchor,
}

impl Segment {
    fn key(self) -> &'static CStr {
        match self {
            Segment::Metrics => c"mod_twofactor-counters",
            Segment::Anchor => c"mod_twofactor-anchor",
        }
    }
}

/// The most child processes the MPM may run at once (`ServerLimit`).
pub fn child_limit() -> Option<usize> {
    let mut limit: c_int = 0;
    // SAFETY: ap_mpm_query writes one int; called after the MPM registered
    // its hooks (post_config).
    let status = unsafe { ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS as c_int, &mut limit) };
    (status == APR_SUCCESS as c_int && limit > 0).then(|| usize::try_from(limit).unwrap_or(1))
}

/// `len` words of `segment` shared by the parent and every child, zero
/// when first made; the same segment on every later call (a restart) if it
/// is big enough. `None` if shared memory could not be made.
pub fn words(server: Server<'_>, segment: Segment, len: usize) -> Option<&'static [AtomicU64]> {
    let key = segment.key();
    let pool = server.process_pool()?;
    let bytes = len.checked_mul(std::mem::size_of::<AtomicU64>())?;
    let mut shm: *mut c_void = std::ptr::null_mut();
    // SAFETY: a lookup in the process pool's userdata; `shm` receives the
    // pointer stored under `key` by an earlier call, or null.
    unsafe { apr_pool_userdata_get(&mut shm, key.as_ptr(), pool) };
    // SAFETY: a non-null value under `key` is the apr_shm_t made below.
    let reusable = !shm.is_null() && unsafe { apr_shm_size_get(shm as *const apr_shm_t) } >= bytes;
    if !reusable {
        let mut made: *mut apr_shm_t = std::ptr::null_mut();
        // SAFETY: an anonymous segment (null file name) in the process pool,
        // which is destroyed only when the parent exits.
        if unsafe { apr_shm_create(&mut made, bytes, std::ptr::null(), pool) } != APR_SUCCESS as c_int {
            return None;
        }
        // SAFETY: `key` is a static string; the segment lives as long as the pool.
        unsafe { apr_pool_userdata_set(made as *const c_void, key.as_ptr(), None, pool) };
        shm = made as *mut c_void;
    }
    // SAFETY: `shm` is a live segment of at least `bytes` bytes.
    let base = unsafe { apr_shm_baseaddr_get(shm as *const apr_shm_t) };
    if base.is_null() || (base as usize) % std::mem::align_of::<AtomicU64>() != 0 {
        return None;
    }
    // SAFETY: the segment holds `len` u64s (zeroed by the kernel when made,
    // and only ever accessed atomically), is aligned for AtomicU64 (checked
    // above), and stays mapped for the rest of this process and of every
    // child forked from it.
    Some(unsafe { std::slice::from_raw_parts(base as *const AtomicU64, len) })
}
