/* The contract between the C shim and the Rust side of mod_twofactor.
 *
 * The shim defines the directive table and the hook registration; every
 * function named here is defined in Rust (src/ffi/exports.rs), runs inside
 * the panic boundary, and fails closed. */
#ifndef TWOFACTOR_H
#define TWOFACTOR_H

#include "httpd.h"
#include "http_config.h"

/* Defined in mod_twofactor.c, referenced by the Rust `module` struct. */
extern const command_rec twofactor_cmds[];
void twofactor_register_hooks(apr_pool_t *p);
/* The index Apache gave the module: the Rust wrappers read it here rather
 * than import the `module` struct that the exports' layer defines. */
int twofactor_module_index(void);

/* Defined in Rust. */
const char *twofactor_set_directive(cmd_parms *cmd, void *dir_config,
                                    int argc, char *const argv[]);
int twofactor_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s);
int twofactor_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s);
void twofactor_child_init(apr_pool_t *pchild, server_rec *s);
int twofactor_post_read_request(request_rec *r);
int twofactor_header_parser(request_rec *r);
int twofactor_access_checker(request_rec *r);
int twofactor_fixups(request_rec *r);
int twofactor_handler(request_rec *r);
int twofactor_log_transaction(request_rec *r);
int twofactor_status_section(request_rec *r, int flags);

#endif
