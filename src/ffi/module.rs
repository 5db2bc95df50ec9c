//! The `module` struct Apache looks up after `LoadModule`.
//!
//! It is defined here rather than in the C shim because a cdylib exports
//! only the symbols Rust defines. The command table and the register-hooks
//! function it points to live in c-shim/mod_twofactor.c.

use std::os::raw::{c_int, c_ulong};
use std::ptr;

use super::exports;
use crate::apache::sys::{
    command_rec, module, twofactor_cmds, twofactor_register_hooks, MODULE_MAGIC_COOKIE, MODULE_MAGIC_NUMBER_MAJOR,
    MODULE_MAGIC_NUMBER_MINOR,
};

/// Apache's handle on this module; `module_index` is filled in by Apache.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut twofactor_module: module = module {
    version: MODULE_MAGIC_NUMBER_MAJOR as c_int,
    minor_version: MODULE_MAGIC_NUMBER_MINOR as c_int,
    module_index: -1,
    // Apache derives the LogLevel tag from this name: `LogLevel twofactor:debug`.
    name: c"mod_twofactor.c".as_ptr(),
    dynamic_load_handle: ptr::null_mut(),
    next: ptr::null_mut(),
    magic: MODULE_MAGIC_COOKIE as c_ulong,
    rewrite_args: None,
    create_dir_config: Some(exports::twofactor_create_dir_config),
    merge_dir_config: Some(exports::twofactor_merge_dir_config),
    create_server_config: Some(exports::twofactor_create_server_config),
    merge_server_config: Some(exports::twofactor_merge_server_config),
    cmds: &raw const twofactor_cmds as *const command_rec,
    register_hooks: Some(twofactor_register_hooks),
    flags: 0,
};
