//! A safe view of Apache's `request_rec` for the duration of one hook call.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::marker::PhantomData;
use std::net::IpAddr;
use std::ptr::NonNull;

use super::sys::{
    ap_custom_response, ap_get_client_block, ap_get_request_module_loglevel, ap_log_rerror_, ap_rwrite,
    ap_set_content_type, ap_setup_client_block, ap_should_client_block, apr_array_header_t, apr_pstrmemdup,
    apr_table_add, apr_table_entry_t, apr_table_get, apr_table_set, apr_table_setn, apr_table_t, apr_table_unset,
    request_rec, REQUEST_CHUNKED_DECHUNK,
};

use super::conf::{DirConf, ServerConf};
use super::level::Level;

/// A request being processed by one of our hooks. What it reads is its
/// `View` (through `Deref`); changes go through it alone.
pub struct Request<'r> {
    view: View<'r>,
    _life: PhantomData<&'r mut request_rec>,
}

/// A read-only view of a request: this one, or another of its chain (the
/// client's request behind a subrequest or internal redirect, `initial`),
/// which may be the same `request_rec` as a `Request` held elsewhere:
/// nothing here changes the request, so no two writers can alias.
#[derive(Clone, Copy)]
pub struct View<'r> {
    raw: NonNull<request_rec>,
    _life: PhantomData<&'r request_rec>,
}

/// Which header table of the request.
#[derive(Clone, Copy)]
pub enum Table {
    In,
    /// Kept on error responses and redirects, too.
    ErrOut,
    Notes,
}

impl<'r> Request<'r> {
    /// # Safety
    /// `r` must be null or a valid `request_rec` that stays valid, and is not
    /// used by anyone else, for `'r` (the duration of the hook call).
    pub unsafe fn from_raw(r: *mut request_rec) -> Option<Self> {
        NonNull::new(r).map(|raw| Request { view: View { raw, _life: PhantomData }, _life: PhantomData })
    }

    fn rec_mut(&mut self) -> &mut request_rec {
        // SAFETY: as in `rec`; we hold the only Rust reference.
        unsafe { self.view.raw.as_mut() }
    }

    /// Marks this request for a later hook of ours (see `marked_notes`).
    pub fn mark(&mut self) {
        // SAFETY: request_config of a valid request is its live config vector.
        unsafe { super::conf::mark_request(self.rec().request_config) }
    }

    pub fn set_handler(&mut self, handler: &'static CStr) {
        self.rec_mut().handler = handler.as_ptr();
    }

    /// Removes every entry named `name` (case-insensitive).
    pub fn unset(&mut self, which: Table, name: &CStr) {
        // SAFETY: valid table; apr copies nothing and keeps no pointer to `name`.
        unsafe { apr_table_unset(self.table(which), name.as_ptr()) }
    }

    /// Removes every entry whose name is exactly these bytes (any case).
    pub fn unset_bytes(&mut self, which: Table, name: &[u8]) {
        let name = self.pool_cstr(name);
        // SAFETY: valid table and a NUL-terminated name in the request pool.
        unsafe { apr_table_unset(self.table(which), name) }
    }

    /// Sets `name` to `value`, replacing earlier values (both are copied).
    pub fn set(&mut self, which: Table, name: &CStr, value: &str) {
        self.set_bytes(which, name, value.as_bytes());
    }

    /// As `set`, for a value given as bytes (up to a NUL, which no header holds).
    pub fn set_bytes(&mut self, which: Table, name: &CStr, value: &[u8]) {
        let value = self.pool_cstr(value);
        // SAFETY: valid table; `value` lives in the request pool; apr_table_set copies the key.
        unsafe { apr_table_set(self.table(which), name.as_ptr(), value) }
    }

    /// Adds a value (for headers that repeat, such as Set-Cookie).
    pub fn add(&mut self, which: Table, name: &CStr, value: &str) {
        self.add_bytes(which, name, value.as_bytes());
    }

    /// Adds a value given as bytes (up to a NUL, which no header holds).
    pub fn add_bytes(&mut self, which: Table, name: &CStr, value: &[u8]) {
        let value = self.pool_cstr(value);
        // SAFETY: valid table; `value` lives in the request pool; apr_table_add copies the key.
        unsafe { apr_table_add(self.table(which), name.as_ptr(), value) }
    }

    /// Sets a note whose value is a static string (no copy).
    pub fn set_note(&mut self, name: &'static CStr, value: &'static CStr) {
        // SAFETY: valid table; both strings are static.
        unsafe { apr_table_setn(self.table(Table::Notes), name.as_ptr(), value.as_ptr()) }
    }

    /// Tells mod_cache not to store this response (`r->no_cache`): its quick
    /// handler would serve it later without any access check.
    pub fn set_no_cache(&mut self) {
        self.rec_mut().no_cache = 1;
    }

    /// Sets `r->user` (shown as `%u` in the access log).
    pub fn set_user(&mut self, user: &str) {
        let copy = self.pool_cstr(user.as_bytes());
        self.rec_mut().user = copy;
    }

    /// The body Apache sends with an error status set by a hook.
    /// `html` is a complete document: Apache sends it as text/html.
    pub fn custom_response(&mut self, status: c_int, html: &str) {
        // Apache reads a text that looks like "word:..." as a URL to redirect
        // to; a document starting with '<' is always taken as the body.
        debug_assert!(html.starts_with('<'));
        let text = self.pool_cstr(html.as_bytes());
        // SAFETY: valid request; the text lives in the request pool.
        unsafe { ap_custom_response(self.view.raw.as_ptr(), status, text) }
    }

    pub fn set_content_type(&mut self, content_type: &'static CStr) {
        // SAFETY: valid request; the string is static.
        unsafe { ap_set_content_type(self.view.raw.as_ptr(), content_type.as_ptr()) }
    }

    /// The status of the response a handler is about to write.
    pub fn set_status(&mut self, status: c_int) {
        self.rec_mut().status = status;
    }

    /// Writes body bytes; false when the client went away.
    pub fn write(&mut self, body: &[u8]) -> bool {
        body.chunks(1 << 20).all(|chunk| {
            // SAFETY: valid request; `chunk` is readable for its length.
            let n = unsafe { ap_rwrite(chunk.as_ptr() as *const c_void, chunk.len() as c_int, self.view.raw.as_ptr()) };
            n >= 0
        })
    }

    /// Reads the request body, at most `limit` bytes. `Err` carries the
    /// status to answer: 413 when it is larger, 400 when it cannot be read.
    pub fn read_body(&mut self, limit: usize) -> Result<Vec<u8>, c_int> {
        let r = self.view.raw.as_ptr();
        // SAFETY: valid request; the body is read once, by this handler.
        let status = unsafe { ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK as c_int) };
        if status != 0 {
            return Err(status);
        }
        // SAFETY: as above.
        if unsafe { ap_should_client_block(r) } == 0 {
            return Ok(Vec::new());
        }
        let mut body = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: `buf` is writable for its length; Apache writes at most that.
            let n = unsafe { ap_get_client_block(r, buf.as_mut_ptr() as *mut c_char, buf.len() as _) };
            match n {
                0 => return Ok(body),
                n if n < 0 => return Err(400),
                n => {
                    body.extend_from_slice(&buf[..n as usize]);
                    if body.len() > limit {
                        return Err(413);
                    }
                }
            }
        }
    }
}

impl<'r> std::ops::Deref for Request<'r> {
    type Target = View<'r>;

    fn deref(&self) -> &View<'r> {
        &self.view
    }
}

impl<'r> View<'r> {
    fn rec(&self) -> &request_rec {
        // SAFETY: `from_raw`'s contract: valid for 'r, not used concurrently.
        unsafe { self.raw.as_ref() }
    }

    /// The request this one is a subrequest of, or an internal redirect
    /// from, recursively: the request the client actually sent.
    pub fn initial(&self) -> View<'r> {
        let mut r = self.raw.as_ptr();
        // SAFETY: `main` and `prev` of a valid request are null or valid
        // requests that outlive it.
        unsafe {
            loop {
                if !(*r).main.is_null() {
                    r = (*r).main;
                } else if !(*r).prev.is_null() {
                    r = (*r).prev;
                } else {
                    break;
                }
            }
        }
        View { raw: NonNull::new(r).unwrap_or(self.raw), _life: PhantomData }
    }

    /// Whether this request, or an internal redirect that followed it, was
    /// marked with `mark`: next to nothing to find out.
    pub fn marked_along_redirects(&self) -> bool {
        let mut r = self.raw.as_ptr();
        while !r.is_null() {
            // SAFETY: `r` is this valid request or a `next` of it: null or a
            // valid request of the same connection that lives as long.
            let (config, next) = unsafe { ((*r).request_config, (*r).next) };
            if super::conf::request_marked(config) {
                return true;
            }
            r = next;
        }
        false
    }

    /// Every value of note `name` on the requests of this one's chain of
    /// internal redirects (`r->next`) that were marked with `mark`, in
    /// order. Checking the mark costs next to nothing on requests without.
    pub fn marked_notes(&self, name: &str) -> Vec<&'r [u8]> {
        let mut found = Vec::new();
        let mut r = self.raw.as_ptr();
        while let Some(raw) = NonNull::new(r) {
            let view = View { raw, _life: PhantomData::<&'r request_rec> };
            if super::conf::request_marked(view.rec().request_config) {
                found.extend(view.values(Table::Notes, name));
            }
            // SAFETY: `next` of a valid request is null or a valid request
            // of the same connection that lives as long.
            r = unsafe { (*r).next };
        }
        found
    }

    /// The `request_rec` itself, only to tell two views apart.
    pub fn as_ptr(&self) -> *const request_rec {
        self.raw.as_ptr()
    }

    pub fn is_internal_redirect(&self) -> bool {
        !self.rec().prev.is_null()
    }

    /// The server's configuration of this module.
    pub fn server_conf(&self) -> Option<&'r ServerConf> {
        // SAFETY: `server` of a valid request is a valid server_rec.
        let vector = unsafe { (*self.rec().server).module_config };
        // SAFETY: the vector holds our ServerConf (or null), and lives as
        // long as the configuration pool, longer than any request.
        unsafe { super::conf::server_conf(vector) }
    }

    /// The merged per-directory configuration of this module for this request.
    pub fn dir_conf(&self) -> Option<&'r DirConf> {
        // SAFETY: the per-dir vector holds our DirConf (or null) and lives at
        // least as long as the request.
        unsafe { super::conf::dir_conf(self.rec().per_dir_config) }
    }

    fn string(&self, p: *const c_char) -> Option<&'r str> {
        self.bytes(p).and_then(|b| std::str::from_utf8(b).ok())
    }

    fn bytes(&self, p: *const c_char) -> Option<&'r [u8]> {
        if p.is_null() {
            return None;
        }
        // SAFETY: Apache's strings in a request are NUL-terminated and live
        // in the request or connection pool, which outlive the hook call.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes())
    }

    pub fn method(&self) -> &'r str {
        self.string(self.rec().method).unwrap_or("")
    }

    /// The request-target as received: `/a/b?x`, `http://h/a`, `*`.
    pub fn unparsed_uri(&self) -> Option<&'r str> {
        self.string(self.rec().unparsed_uri)
    }

    /// The decoded, normalised path Apache matches `<Location>` against.
    pub fn uri(&self) -> &'r [u8] {
        self.bytes(self.rec().uri).unwrap_or_default()
    }

    /// The raw query string.
    pub fn args(&self) -> Option<&'r str> {
        self.string(self.rec().args)
    }

    pub fn handler(&self) -> Option<&'r [u8]> {
        self.bytes(self.rec().handler)
    }

    /// The TCP peer: the gateway, never what a header claims.
    pub fn peer_ip(&self) -> Option<IpAddr> {
        // SAFETY: `connection` of a valid request is a valid conn_rec; its
        // client_addr is null or a valid apr_sockaddr_t whose ipaddr_ptr
        // points at ipaddr_len bytes of address (4 or 16).
        unsafe {
            let addr = (*self.rec().connection).client_addr;
            if addr.is_null() || (*addr).ipaddr_ptr.is_null() {
                return None;
            }
            let bytes = (*addr).ipaddr_ptr as *const u8;
            match (*addr).ipaddr_len {
                4 => Some(IpAddr::from(*(bytes as *const [u8; 4]))),
                16 => Some(IpAddr::from(*(bytes as *const [u8; 16])).to_canonical()),
                _ => None,
            }
        }
    }

    /// The end user's address as Apache knows it (the peer, unless
    /// mod_remoteip replaced it with a trusted forwarded address).
    pub fn client_ip(&self) -> &'r str {
        self.string(self.rec().useragent_ip).unwrap_or("-")
    }

    fn table(&self, which: Table) -> *mut apr_table_t {
        let rec = self.rec();
        match which {
            Table::In => rec.headers_in,
            Table::ErrOut => rec.err_headers_out,
            Table::Notes => rec.notes,
        }
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, which: Table, name: &CStr) -> Option<&'r [u8]> {
        // SAFETY: the table is a valid apr table of this request; the
        // returned value lives in the request pool.
        let v = unsafe { apr_table_get(self.table(which), name.as_ptr()) };
        self.bytes(v)
    }

    fn raw_entries(&self, which: Table) -> &'r [apr_table_entry_t] {
        let t = self.table(which);
        if t.is_null() {
            return &[];
        }
        // SAFETY: an apr_table_t begins with its apr_array_header_t of
        // apr_table_entry_t (the documented `apr_table_elts` macro); the
        // array lives in the request pool.
        unsafe {
            let arr = &*(t as *const apr_array_header_t);
            if arr.elts.is_null() || arr.nelts <= 0 {
                &[]
            } else {
                std::slice::from_raw_parts(arr.elts as *const apr_table_entry_t, arr.nelts as usize)
            }
        }
    }

    /// The name of every entry of a table, in order.
    pub fn names(&self, which: Table) -> impl Iterator<Item = &'r [u8]> + '_ {
        self.raw_entries(which).iter().filter_map(move |e| self.bytes(e.key))
    }

    /// Every value of the entries named `name` (case-insensitive), in order;
    /// unlike `get`, it sees repeated entries.
    pub fn values<'n>(&self, which: Table, name: &'n str) -> impl Iterator<Item = &'r [u8]> + use<'_, 'n, 'r> {
        self.raw_entries(which).iter().filter_map(move |e| {
            let key = self.bytes(e.key)?;
            key.eq_ignore_ascii_case(name.as_bytes()).then(|| self.bytes(e.val).unwrap_or_default())
        })
    }

    /// Copies bytes into the request pool as a C string; interior NULs end it.
    fn pool_cstr(&self, bytes: &[u8]) -> *mut c_char {
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        // SAFETY: the pool is the request's; apr_pstrmemdup copies `len`
        // bytes and adds a NUL.
        unsafe { apr_pstrmemdup(self.rec().pool, bytes.as_ptr() as *const c_char, len) }
    }

    pub fn user(&self) -> Option<&'r str> {
        self.string(self.rec().user)
    }

    /// The mod_unique_id request id, when that module is loaded.
    pub fn unique_id(&self) -> Option<&'r str> {
        // SAFETY: subprocess_env is a valid table of this request.
        let v = unsafe { apr_table_get(self.rec().subprocess_env, c"UNIQUE_ID".as_ptr()) };
        self.string(v)
    }

    pub fn header_only(&self) -> bool {
        self.rec().header_only != 0
    }

    /// Whether a message at `level` would be logged for this request:
    /// check before formatting one.
    pub fn log_enabled(&self, level: Level) -> bool {
        // SAFETY: valid request; the function only reads its log config.
        let configured = unsafe { ap_get_request_module_loglevel(self.raw.as_ptr(), super::module_index()) };
        configured >= level as c_int
    }

    /// Logs one line through Apache with this module's index.
    pub fn log(&self, level: Level, message: &str) {
        let text = self.pool_cstr(message.as_bytes());
        // SAFETY: valid request; the format is a static "%s" and the one
        // argument is a NUL-terminated string in the request pool.
        unsafe {
            ap_log_rerror_(
                c"mod_twofactor".as_ptr(),
                0,
                super::module_index(),
                level as c_int,
                0,
                self.raw.as_ptr(),
                c"%s".as_ptr(),
                text,
            )
        }
    }
}
