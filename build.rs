//! Generates the Apache/APR bindings and compiles the C shim.
//!
//! Include paths come from Apache's and APR's own tools (`apxs`,
//! `apr-1-config`), never hard-coded; `APXS`, `APR_CONFIG`,
//! `TWOFACTOR_APACHE_INCLUDE` and `TWOFACTOR_APR_INCLUDE` override them.

// A build that cannot find Apache's headers stops with a message.
#![allow(clippy::expect_used)]

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn tool_output(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{tool}` (install apache2-dev / libapr1-dev): {e}"));
    assert!(out.status.success(), "`{tool} {}` failed", args.join(" "));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn env_or(var: &str, default: impl FnOnce() -> String) -> String {
    println!("cargo:rerun-if-env-changed={var}");
    env::var(var).unwrap_or_else(|_| default())
}

fn main() {
    let apxs = env_or("APXS", || "apxs".into());
    let apr_config = env_or("APR_CONFIG", || "apr-1-config".into());
    let apache_include = env_or("TWOFACTOR_APACHE_INCLUDE", || tool_output(&apxs, &["-q", "INCLUDEDIR"]));
    let apr_include = env_or("TWOFACTOR_APR_INCLUDE", || tool_output(&apr_config, &["--includedir"]));
    // -DLINUX -D_REENTRANT -D_GNU_SOURCE: both compilers must see what APR was built with.
    let cppflags: Vec<String> =
        tool_output(&apr_config, &["--cppflags"]).split_whitespace().map(str::to_string).collect();

    for f in ["c-shim/mod_twofactor.c", "c-shim/twofactor.h", "c-shim/wrapper.h"] {
        println!("cargo:rerun-if-changed={f}");
    }

    let mut shim = cc::Build::new();
    shim.file("c-shim/mod_twofactor.c")
        .include(&apache_include)
        .include(&apr_include)
        .include("c-shim")
        .warnings(true)
        .extra_warnings(true)
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-missing-field-initializers");
    for flag in &cppflags {
        shim.flag(flag);
    }
    if env::var_os("CARGO_FEATURE_TEST_HOOKS").is_some() {
        shim.define("TWOFACTOR_TEST_HOOKS", None);
    }
    // Linked whole so that the linker keeps the command table and the
    // register-hooks function that only the Rust module struct refers to.
    shim.link_lib_modifier("+whole-archive");
    shim.compile("twofactor_shim");

    let bindings = bindgen::Builder::default()
        .header("c-shim/wrapper.h")
        .clang_arg(format!("-I{apache_include}"))
        .clang_arg(format!("-I{apr_include}"))
        .clang_args(&cppflags)
        .allowlist_type("request_rec|conn_rec|server_rec|module|module_struct|command_rec|cmd_parms|process_rec")
        .allowlist_type("apr_pool_t|apr_table_t|apr_table_entry_t|apr_array_header_t|apr_status_t|apr_uri_t")
        .allowlist_function("ap_log_rerror_|ap_log_error_|ap_get_request_module_loglevel|ap_get_server_module_loglevel")
        .allowlist_function("ap_rwrite|ap_rflush|ap_set_content_type|ap_custom_response|ap_server_root_relative")
        .allowlist_function("ap_find_linked_module|ap_mpm_query")
        .allowlist_function("apr_shm_create|apr_shm_baseaddr_get|apr_shm_size_get|apr_pool_userdata_get|apr_pool_userdata_set")
        .allowlist_function("ap_setup_client_block|ap_should_client_block|ap_get_client_block|ap_discard_request_body")
        .allowlist_function("apr_palloc|apr_pstrdup|apr_pstrmemdup|apr_pool_cleanup_register|apr_pool_cleanup_null")
        .allowlist_function("apr_table_get|apr_table_set|apr_table_setn|apr_table_unset|apr_table_add|apr_table_make")
        .allowlist_var("OK|DECLINED|DONE|HTTP_.*|APLOG_.*|MODULE_MAGIC_.*|M_.*|AP_MODULE_FLAG_NONE|REQUEST_CHUNKED_DECHUNK|APR_SUCCESS|AP_MPMQ_HARD_LIMIT_DAEMONS")
        .allowlist_var("twofactor_cmds")
        .allowlist_function("twofactor_register_hooks|twofactor_module_index")
        .derive_debug(false)
        .derive_default(false)
        .layout_tests(true)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen could not read the Apache headers");

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings.write_to_file(out.join("bindings.rs")).expect("cannot write bindings.rs");
}
