/* What bindgen reads: the Apache and APR API used by the Rust side, and the
 * two symbols the C shim provides to the Rust `module` struct. */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_mpm.h"
#include "apr_pools.h"
#include "apr_shm.h"
#include "apr_strings.h"
#include "apr_tables.h"
#include "twofactor.h"
