/* mod_twofactor: the directive table and the hook registration.
 *
 * Nothing else lives here: every callback is a Rust function (twofactor.h).
 * The `module` struct itself is defined in Rust, because a cdylib exports
 * only the symbols Rust defines. */

#include "httpd.h"
#include "http_config.h"
#include "http_request.h"
#include "http_protocol.h"
#include "mod_status.h"
#include "twofactor.h"

/* Every directive goes through one setter, which dispatches on the
 * directive's name and validates its arguments (src/config/). */
#define TF_SERVER(name, help) \
    AP_INIT_TAKE_ARGV(name, twofactor_set_directive, NULL, RSRC_CONF, help)
#define TF_SCOPED(name, help) \
    AP_INIT_TAKE_ARGV(name, twofactor_set_directive, NULL, RSRC_CONF | ACCESS_CONF, help)

const command_rec twofactor_cmds[] = {
    TF_SCOPED("TwoFactor", "On|Off: enforce the second factor in this scope"),
    TF_SERVER("TwoFactorUserHeader", "request header carrying the username from the gateway"),
    TF_SERVER("TwoFactorUsernamePattern", "regular expression every username must match"),
    TF_SERVER("TwoFactorSessionBinding", "cookie|header|none: what a completion is bound to"),
    TF_SERVER("TwoFactorCookieName", "name of the module's session cookie"),
    TF_SERVER("TwoFactorSessionHeader", "request header carrying the gateway session id"),
    TF_SERVER("TwoFactorTrustedProxy", "CIDR...: gateway addresses allowed to assert identity"),
    TF_SERVER("TwoFactorProxySecretHeader", "request header carrying the gateway's shared secret"),
    TF_SERVER("TwoFactorProxySecretFile", "file holding the gateway's shared secret"),
    TF_SCOPED("TwoFactorStrictPath", "On|Off: refuse ambiguous request paths"),
    TF_SERVER("TwoFactorChallengeURL", "path where the challenge handler lives"),
    TF_SERVER("TwoFactorSecretKeyFile", "PATH [OLD-PATH...]: the key file, then older keys"),
    TF_SERVER("TwoFactorLDAPURL", "URL...: directory server(s), in failover order; the first that answers takes every write"),
    TF_SERVER("TwoFactorLDAPReadURL", "URL...: where the access check reads (a site's own replicas) [the TwoFactorLDAPURL servers]"),
    TF_SERVER("TwoFactorDirectory", "openldap|ad: which attributes hold the state by default"),
    TF_SERVER("TwoFactorAcceptUnsignedState", "On|Off: read state values written before values were signed (upgrades)"),
    TF_SERVER("TwoFactorLDAPBindDN", "DN of the service account"),
    TF_SERVER("TwoFactorLDAPBindPasswordFile", "file holding the service account's password"),
    TF_SERVER("TwoFactorLDAPStartTLS", "On|Off: upgrade ldap:// connections with StartTLS"),
    TF_SERVER("TwoFactorLDAPCACertificate", "PEM file of the CA that signed the directory's certificate"),
    TF_SERVER("TwoFactorLDAPTimeout", "duration: limit of each directory operation"),
    TF_SCOPED("TwoFactorMaxAge", "duration: how long a completion stays valid"),
    TF_SERVER("TwoFactorCacheTTL", "duration: in-process cache of positive lookups (0 disables)"),
    TF_SERVER("TwoFactorMethods", "totp|email|recovery|webauthn...: offered second factors"),
    TF_SCOPED("TwoFactorRequireMethod", "totp|email|recovery|webauthn...: step-up: the methods whose completion lets a request in here"),
    TF_SERVER("TwoFactorWebAuthnOrigin", "URL: the gateway's public origin, as the browser sees it (for passkeys)"),
    TF_SERVER("TwoFactorWebAuthnRPID", "domain: the WebAuthn relying party id [host of the origin]"),
    TF_SERVER("TwoFactorRecoveryCodes", "N|Off: recovery codes issued at enrollment"),
    TF_SERVER("TwoFactorTOTPSkew", "duration (0-5m): accepted clock difference"),
    TF_SERVER("TwoFactorTOTPDefaults", "algorithm= digits= period=: parameters of self-enrolled secrets"),
    TF_SERVER("TwoFactorTOTPIssuer", "issuer shown by authenticator apps"),
    TF_SERVER("TwoFactorMaxAttempts", "1-20: consecutive wrong codes before the account locks"),
    TF_SERVER("TwoFactorAutoUnlock", "duration (10m-90d)|Off: locked accounts unlock after this"),
    TF_SERVER("TwoFactorEnrollment", "On|Off: allow self-enrollment"),
    TF_SERVER("TwoFactorEnrollmentFrom", "CIDR...: end-user networks allowed to self-enroll"),
    TF_SERVER("TwoFactorEnrollmentProof", "email|none: what a user shows before (re-)enrolling"),
    TF_SERVER("TwoFactorRegistrationMessage", "message shown on the enrollment page"),
    TF_SERVER("TwoFactorSMTPServer", "smtp://, smtps:// or smtp://...?tls=starttls URL of the mail relay"),
    TF_SERVER("TwoFactorSMTPPasswordFile", "file holding the SMTP password"),
    TF_SERVER("TwoFactorSMTPCACertificate", "PEM file of the CA that signed the mail relay's certificate"),
    TF_SERVER("TwoFactorMailFrom", "sender address of passcode mails"),
    TF_SERVER("TwoFactorMailAttribute", "directory attribute holding the user's mail address"),
    TF_SERVER("TwoFactorEmailCodeTTL", "duration: life of an emailed passcode"),
    TF_SERVER("TwoFactorEmailResendInterval", "duration: minimum time between two passcode mails"),
    TF_SERVER("TwoFactorNotify", "On|Off: mail the user about enrollments, recovery codes and locks"),
    TF_SERVER("TwoFactorAttribute", "ROLE NAME: store a state role in an existing attribute"),
#ifdef TWOFACTOR_TEST_HOOKS
    TF_SERVER("TwoFactorTestPanic", "test builds only: panic inside the directive setter"),
    TF_SCOPED("TwoFactorTestNoDirConfig", "test builds only: requests here get no per-directory record"),
#endif
    {NULL}
};

void twofactor_register_hooks(apr_pool_t *p)
{
    ap_hook_check_config(twofactor_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(twofactor_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(twofactor_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* Scrub spoofed gateway headers before any other module reads them. */
    ap_hook_post_read_request(twofactor_post_read_request, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_header_parser(twofactor_header_parser, NULL, NULL, APR_HOOK_FIRST);
    /* PER_URI: Apache re-runs access checks for every subrequest and
     * internal redirect instead of reusing an earlier request's verdict. */
    ap_hook_check_access(twofactor_access_checker, NULL, NULL, APR_HOOK_FIRST,
                         AP_AUTH_INTERNAL_PER_URI);
    /* Last, after mod_rewrite and mod_proxy have had their say: the backstop
     * verdict and the claim on the challenge path. */
    ap_hook_fixups(twofactor_fixups, NULL, NULL, APR_HOOK_REALLY_LAST);
    /* First, so that no proxy or other handler ever serves the challenge path. */
    ap_hook_handler(twofactor_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    /* After the response went out, and after the access log: security
     * notices by mail. */
    ap_hook_log_transaction(twofactor_log_transaction, NULL, NULL, APR_HOOK_LAST);
    /* A short section on mod_status's server-status page, when it is loaded. */
    APR_OPTIONAL_HOOK(ap, status_hook, twofactor_status_section, NULL, NULL, APR_HOOK_MIDDLE);
}

/* Defined in Rust (src/ffi/module.rs). */
extern module AP_MODULE_DECLARE_DATA twofactor_module;

int twofactor_module_index(void)
{
    return twofactor_module.module_index;
}
