//! Every function Apache calls. Each one checks its pointers, runs its body
//! inside the panic boundary, and answers a fixed fail-closed value if the
//! body panics: 500 for a request, a config error for a directive, a failed
//! start for a configuration check.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::PathBuf;
use std::sync::Arc;

use twofactor_core::config::{self, DirConfig, ServerConfig, Settings, Target};

use super::boundary::{catch, export};
use crate::apache::conf::{self as conf, DirConf, Runtime, ServerConf};
use crate::apache::log::Level;
use crate::apache::server::Server;
use crate::apache::sys::{
    ap_server_root_relative, apr_pool_cleanup_null, apr_pool_cleanup_register, apr_pool_t, apr_pstrdup, apr_status_t,
    cmd_parms, request_rec, server_rec, APR_SUCCESS, HTTP_INTERNAL_SERVER_ERROR,
};
use crate::apache::{Request, OK};
use crate::outcome::{self, Outcome};
use crate::state::ServerState;

const INTERNAL_ERROR: c_int = HTTP_INTERNAL_SERVER_ERROR as c_int;

/// Frees a Rust value that a pool owned, when that pool is cleared.
unsafe extern "C" fn drop_boxed<T>(data: *mut c_void) -> apr_status_t {
    let _ = catch(|| {
        if !data.is_null() {
            // SAFETY: `data` came from `Box::into_raw` in `into_pool` and this
            // cleanup runs exactly once, when the pool is cleared.
            drop(unsafe { Box::from_raw(data as *mut T) });
        }
    });
    APR_SUCCESS as apr_status_t
}

/// Hands a Rust value to `pool`, which drops it when cleared.
fn into_pool<T>(pool: *mut apr_pool_t, value: T) -> *mut c_void {
    let raw = Box::into_raw(Box::new(value)) as *mut c_void;
    // SAFETY: `pool` is the live pool Apache passed to the create/merge
    // callback; the cleanup frees `raw` exactly once.
    unsafe { apr_pool_cleanup_register(pool, raw, Some(drop_boxed::<T>), Some(apr_pool_cleanup_null)) };
    raw
}

export! {
    fn twofactor_create_server_config(pool: *mut apr_pool_t, _s: *mut server_rec) -> *mut c_void {
        into_pool(pool, ServerConf::default())
    }
    on_panic(_) => std::ptr::null_mut()
}

export! {
    fn twofactor_merge_server_config(pool: *mut apr_pool_t, base: *mut c_void, add: *mut c_void) -> *mut c_void {
        // SAFETY: Apache passes two records made by create/merge_server_config (or null).
        let (base, add) = unsafe { ((base as *const ServerConf).as_ref(), (add as *const ServerConf).as_ref()) };
        let empty = ServerConfig::default();
        let base = base.map_or(&empty, |c| &c.parsed);
        let add = add.map_or(&empty, |c| &c.parsed);
        into_pool(pool, ServerConf::new(ServerConfig::merge(base, add)))
    }
    on_panic(_) => std::ptr::null_mut()
}

export! {
    fn twofactor_create_dir_config(pool: *mut apr_pool_t, _dir: *mut c_char) -> *mut c_void {
        conf::dir_conf_in_pool(pool, DirConf::default())
    }
    on_panic(_) => std::ptr::null_mut()
}

export! {
    fn twofactor_merge_dir_config(pool: *mut apr_pool_t, base: *mut c_void, add: *mut c_void) -> *mut c_void {
        // SAFETY: Apache passes two records made by create/merge_dir_config (or null).
        let (base, add) = unsafe { ((base as *const DirConf).as_ref(), (add as *const DirConf).as_ref()) };
        #[cfg(feature = "test-hooks")]
        if add.is_some_and(|c| c.drop_when_merged) {
            return std::ptr::null_mut();
        }
        let empty = DirConfig::default();
        let merged = DirConfig::merge(base.map_or(&empty, |c| &c.parsed), add.map_or(&empty, |c| &c.parsed));
        conf::dir_conf_in_pool(pool, DirConf::new(merged))
    }
    on_panic(_) => std::ptr::null_mut()
}

export! {
    /// The one setter of every directive (c-shim/mod_twofactor.c).
    fn twofactor_set_directive(
        cmd: *mut cmd_parms,
        dir_config: *mut c_void,
        argc: c_int,
        argv: *const *mut c_char,
    ) -> *const c_char {
        if cmd.is_null() {
            return c"mod_twofactor: internal error (no directive context)".as_ptr();
        }
        // SAFETY: Apache passes a valid cmd_parms, and argv holding argc
        // NUL-terminated strings, for the duration of the call.
        match unsafe { set_directive(cmd, dir_config, argc, argv) } {
            Ok(()) => std::ptr::null(),
            Err(message) => {
                let c = std::ffi::CString::new(message.replace('\0', "?")).unwrap_or_default();
                // SAFETY: cmd->pool is the configuration pool; apr_pstrdup copies the message.
                unsafe { apr_pstrdup((*cmd).pool, c.as_ptr()) }
            }
        }
    }
    on_panic(_) => c"mod_twofactor: internal error while reading this directive (a bug; the error log may say more)".as_ptr()
}

/// # Safety
/// `cmd` valid, `argv` holding `argc` NUL-terminated strings, `dir_config`
/// this module's record for the current context.
unsafe fn set_directive(
    cmd: *mut cmd_parms,
    dir_config: *mut c_void,
    argc: c_int,
    argv: *const *mut c_char,
) -> Result<(), String> {
    // SAFETY: the caller's contract.
    let cmd = unsafe { &*cmd };
    // SAFETY: cmd->cmd is the command_rec of this directive, with a static name.
    let name = unsafe { CStr::from_ptr((*cmd.cmd).name) };
    let name = name.to_str().map_err(|_| "mod_twofactor: directive name is not UTF-8".to_string())?;
    let mut args = Vec::with_capacity(usize::try_from(argc).unwrap_or(0));
    for i in 0..usize::try_from(argc).unwrap_or(0) {
        // SAFETY: argv has argc entries, each a NUL-terminated string.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
        args.push(arg.to_str().map_err(|_| format!("{name}: arguments must be UTF-8 text"))?);
    }

    #[cfg(feature = "test-hooks")]
    if name == "TwoFactorTestPanic" {
        panic!("deliberate panic in a directive (test builds only)");
    }
    #[cfg(feature = "test-hooks")]
    if name == "TwoFactorTestNoDirConfig" {
        // SAFETY: `dir_config` is our DirConf for this context.
        if let Some(dir) = unsafe { (dir_config as *mut DirConf).as_mut() } {
            dir.drop_when_merged = true;
        }
        return Ok(());
    }

    // Inside <Limit> a directive of ours would silently apply to every method.
    if cmd.limited != -1 {
        return Err(format!(
            "{name}: not allowed inside <Limit> or <LimitExcept> (it would apply to every method, not only \
             those listed); put it directly in the enclosing section"
        ));
    }

    // SAFETY: cmd->server is the server being configured; its vector holds
    // our ServerConf; configuration runs on one thread.
    let server = unsafe { conf::server_conf_mut((*cmd.server).module_config) }
        .ok_or_else(|| format!("{name}: mod_twofactor has no configuration record (out of memory?)"))?;
    // SAFETY: `dir_config` is our DirConf for this context (server defaults or a section).
    let dir = unsafe { (dir_config as *mut DirConf).as_mut() }
        .ok_or_else(|| format!("{name}: mod_twofactor has no directory record (out of memory?)"))?;
    // SAFETY: temp_pool is live during configuration; the result is a path string in it.
    let root = unsafe { ap_server_root_relative(cmd.temp_pool, c"".as_ptr()) };
    let root = if root.is_null() {
        PathBuf::from("/")
    } else {
        // SAFETY: a NUL-terminated string in temp_pool.
        PathBuf::from(unsafe { CStr::from_ptr(root) }.to_string_lossy().into_owned())
    };
    let target = if cmd.path.is_null() {
        Target::Server { server: &mut server.parsed, dir: &mut dir.parsed }
    } else {
        Target::Section { server: &mut server.parsed, dir: &mut dir.parsed }
    };
    config::apply(target, name, &args, &root).map_err(|e| e.to_string())
}

export! {
    /// Resolves every server's settings (reading key and password files as
    /// root), so that `apachectl -t` and start-up refuse a bad combination.
    fn twofactor_check_config(
        _pconf: *mut apr_pool_t,
        _plog: *mut apr_pool_t,
        ptemp: *mut apr_pool_t,
        s: *mut server_rec,
    ) -> c_int {
        // SAFETY: Apache passes the main server_rec, valid during configuration.
        match unsafe { Server::from_raw(s) } {
            Some(main) => check_config(main, ptemp),
            None => INTERNAL_ERROR,
        }
    }
    on_panic(location) => {
        // SAFETY: as above; the panic left the server_rec as it was.
        if let Some(main) = unsafe { Server::from_raw(s) } {
            main.log(ptemp, Level::Error, true, &format!("mod_twofactor: internal error (panic at {location})"));
        }
        INTERNAL_ERROR
    }
}

fn check_config(main: Server<'_>, ptemp: *mut apr_pool_t) -> c_int {
    for server in main.chain() {
        let Some(conf) = server.conf() else {
            server.log(ptemp, Level::Error, true, "mod_twofactor: no configuration record for this server");
            return INTERNAL_ERROR;
        };
        let runtime = if conf.parsed.is_configured() {
            let resolved = Settings::resolve(&conf.parsed, server.hostname()).and_then(|(settings, mut warnings)| {
                let loaded = |source: &str| {
                    std::ffi::CString::new(source).is_ok_and(|name| crate::apache::server::module_loaded(&name))
                };
                warnings.extend(settings.check_companion_modules(&loaded)?);
                Ok((settings, warnings))
            });
            match resolved {
                Ok((settings, warnings)) => {
                    for w in warnings {
                        server.log(ptemp, Level::Warn, true, &format!("mod_twofactor: {}: {w}", server.describe()));
                    }
                    match ServerState::new(settings) {
                        Ok(state) => {
                            for directory in state.directory.iter().chain(&state.reader) {
                                directory.observe_with(crate::metrics::ldap_operation);
                            }
                            Runtime::Configured(Arc::new(state))
                        }
                        Err(e) => {
                            server.log(
                                ptemp,
                                Level::Error,
                                true,
                                &format!("mod_twofactor: {}: {e}", server.describe()),
                            );
                            return INTERNAL_ERROR;
                        }
                    }
                }
                Err(e) => {
                    server.log(ptemp, Level::Error, true, &format!("mod_twofactor: {}: {e}", server.describe()));
                    return INTERNAL_ERROR;
                }
            }
        } else {
            Runtime::Unconfigured
        };
        conf.set_runtime(runtime);
    }
    OK
}

export! {
    fn twofactor_post_config(
        _pconf: *mut apr_pool_t,
        _plog: *mut apr_pool_t,
        ptemp: *mut apr_pool_t,
        s: *mut server_rec,
    ) -> c_int {
        // Shared memory for the metrics and the anchor table, and nothing
        // else: threads, runtimes and connections would not survive the
        // fork. Children connect on first use.
        // SAFETY: Apache passes the main server_rec, valid during configuration.
        if let Some(main) = unsafe { Server::from_raw(s) } {
            if let Err(why) = crate::metrics::set_up(main) {
                main.log(ptemp, Level::Warn, true, &format!("mod_twofactor: {why}"));
            }
            if let Err(why) = crate::anchor::set_up(main) {
                main.log(ptemp, Level::Warn, true, &format!("mod_twofactor: {why}"));
            }
        }
        OK
    }
    on_panic(_) => INTERNAL_ERROR
}

export! {
    fn twofactor_child_init(pool: *mut apr_pool_t, s: *mut server_rec) {
        if let Err(why) = crate::metrics::claim_row() {
            // SAFETY: Apache passes the main server_rec, valid for the child's life.
            if let Some(main) = unsafe { Server::from_raw(s) } {
                main.log(pool, Level::Warn, false, &format!("mod_twofactor: {why}"));
            }
        }
    }
    on_panic(_) => ()
}

/// Runs a request hook's body on the request Apache passed, and carries
/// out its outcome: the one place where an outcome becomes Apache's int.
fn request_hook(r: *mut request_rec, body: fn(&mut Request<'_>) -> Outcome) -> c_int {
    // SAFETY: Apache passes the request being processed, valid and ours
    // for the duration of the hook call.
    match unsafe { Request::from_raw(r) } {
        Some(mut req) => {
            let outcome = body(&mut req);
            outcome::respond(&mut req, outcome)
        }
        None => INTERNAL_ERROR,
    }
}

/// A request hook panicked: the log line, and `answer`.
fn request_panic(r: *mut request_rec, hook: &str, location: &str, answer: c_int) -> c_int {
    // SAFETY: as in `request_hook`; the request outlives the unwound body.
    if let Some(req) = unsafe { Request::from_raw(r) } {
        crate::apache::log::event!(req, Level::Error, "internal-error", "hook" = hook, "panic" = location);
    }
    answer
}

export! {
    fn twofactor_post_read_request(r: *mut request_rec) -> c_int {
        request_hook(r, crate::enforce::post_read_request)
    }
    on_panic(at) => request_panic(r, "post-read-request", &at, INTERNAL_ERROR)
}

export! {
    fn twofactor_header_parser(r: *mut request_rec) -> c_int {
        request_hook(r, crate::enforce::header_parser)
    }
    on_panic(at) => request_panic(r, "header-parser", &at, INTERNAL_ERROR)
}

export! {
    fn twofactor_access_checker(r: *mut request_rec) -> c_int {
        request_hook(r, crate::enforce::access_checker)
    }
    on_panic(at) => request_panic(r, "access-checker", &at, INTERNAL_ERROR)
}

export! {
    fn twofactor_fixups(r: *mut request_rec) -> c_int {
        request_hook(r, crate::enforce::fixups)
    }
    on_panic(at) => request_panic(r, "fixups", &at, INTERNAL_ERROR)
}

export! {
    fn twofactor_handler(r: *mut request_rec) -> c_int {
        request_hook(r, |req| match crate::status::handler(req) {
            crate::outcome::Outcome::Declined => crate::challenge::handler(req),
            answer => answer,
        })
    }
    on_panic(at) => request_panic(r, "handler", &at, INTERNAL_ERROR)
}

export! {
    /// mod_status's page: the module's section. A panic adds nothing and
    /// leaves the page to the other modules.
    fn twofactor_status_section(r: *mut request_rec, flags: c_int) -> c_int {
        // AP_STATUS_SHORT: `?auto`, for scripts.
        if flags & 1 != 0 {
            request_hook(r, crate::status::section_short)
        } else {
            request_hook(r, crate::status::section)
        }
    }
    on_panic(at) => request_panic(r, "status-section", &at, crate::apache::DECLINED)
}

export! {
    /// After the response: a failure here must never stop the other logging
    /// hooks (a status other than OK/DECLINED would), so a panic declines.
    fn twofactor_log_transaction(r: *mut request_rec) -> c_int {
        match request_hook(r, crate::challenge::notify::deliver) {
            INTERNAL_ERROR => crate::apache::DECLINED,
            status => status,
        }
    }
    on_panic(at) => request_panic(r, "log-transaction", &at, crate::apache::DECLINED)
}
