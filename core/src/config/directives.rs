//! Directive names, as constants so that a misspelling is a compile error.
//! `ALL` is the one list the documentation check and the C table are
//! compared against (tests/config_docs.rs).

pub const TWOFACTOR: &str = "TwoFactor";
pub const USER_HEADER: &str = "TwoFactorUserHeader";
pub const USERNAME_PATTERN: &str = "TwoFactorUsernamePattern";
pub const SESSION_BINDING: &str = "TwoFactorSessionBinding";
pub const COOKIE_NAME: &str = "TwoFactorCookieName";
pub const SESSION_HEADER: &str = "TwoFactorSessionHeader";
pub const TRUSTED_PROXY: &str = "TwoFactorTrustedProxy";
pub const PROXY_SECRET_HEADER: &str = "TwoFactorProxySecretHeader";
pub const PROXY_SECRET_FILE: &str = "TwoFactorProxySecretFile";
pub const STRICT_PATH: &str = "TwoFactorStrictPath";
pub const CHALLENGE_URL: &str = "TwoFactorChallengeURL";
pub const SECRET_KEY_FILE: &str = "TwoFactorSecretKeyFile";
pub const LDAP_URL: &str = "TwoFactorLDAPURL";
pub const LDAP_READ_URL: &str = "TwoFactorLDAPReadURL";
pub const DIRECTORY: &str = "TwoFactorDirectory";
pub const ACCEPT_UNSIGNED_STATE: &str = "TwoFactorAcceptUnsignedState";
pub const LDAP_BIND_DN: &str = "TwoFactorLDAPBindDN";
pub const LDAP_BIND_PASSWORD_FILE: &str = "TwoFactorLDAPBindPasswordFile";
pub const LDAP_STARTTLS: &str = "TwoFactorLDAPStartTLS";
pub const LDAP_CA_CERTIFICATE: &str = "TwoFactorLDAPCACertificate";
pub const LDAP_TIMEOUT: &str = "TwoFactorLDAPTimeout";
pub const MAX_AGE: &str = "TwoFactorMaxAge";
pub const CACHE_TTL: &str = "TwoFactorCacheTTL";
pub const METHODS: &str = "TwoFactorMethods";
pub const REQUIRE_METHOD: &str = "TwoFactorRequireMethod";
pub const WEBAUTHN_ORIGIN: &str = "TwoFactorWebAuthnOrigin";
pub const WEBAUTHN_RPID: &str = "TwoFactorWebAuthnRPID";
pub const RECOVERY_CODES: &str = "TwoFactorRecoveryCodes";
pub const TOTP_SKEW: &str = "TwoFactorTOTPSkew";
pub const TOTP_DEFAULTS: &str = "TwoFactorTOTPDefaults";
pub const TOTP_ISSUER: &str = "TwoFactorTOTPIssuer";
pub const MAX_ATTEMPTS: &str = "TwoFactorMaxAttempts";
pub const AUTO_UNLOCK: &str = "TwoFactorAutoUnlock";
pub const ENROLLMENT: &str = "TwoFactorEnrollment";
pub const ENROLLMENT_FROM: &str = "TwoFactorEnrollmentFrom";
pub const ENROLLMENT_PROOF: &str = "TwoFactorEnrollmentProof";
pub const REGISTRATION_MESSAGE: &str = "TwoFactorRegistrationMessage";
pub const SMTP_SERVER: &str = "TwoFactorSMTPServer";
pub const SMTP_PASSWORD_FILE: &str = "TwoFactorSMTPPasswordFile";
pub const SMTP_CA_CERTIFICATE: &str = "TwoFactorSMTPCACertificate";
pub const MAIL_FROM: &str = "TwoFactorMailFrom";
pub const MAIL_ATTRIBUTE: &str = "TwoFactorMailAttribute";
pub const EMAIL_CODE_TTL: &str = "TwoFactorEmailCodeTTL";
pub const EMAIL_RESEND_INTERVAL: &str = "TwoFactorEmailResendInterval";
pub const NOTIFY: &str = "TwoFactorNotify";
pub const ATTRIBUTE: &str = "TwoFactorAttribute";

/// Where a directive may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Main server or `<VirtualHost>`.
    Server,
    /// Also `<Location>`, `<Directory>`, `<Files>` (never .htaccess).
    Scoped,
}

/// Every directive, with where it may appear.
pub const ALL: &[(&str, Context)] = &[
    (TWOFACTOR, Context::Scoped),
    (USER_HEADER, Context::Server),
    (USERNAME_PATTERN, Context::Server),
    (SESSION_BINDING, Context::Server),
    (COOKIE_NAME, Context::Server),
    (SESSION_HEADER, Context::Server),
    (TRUSTED_PROXY, Context::Server),
    (PROXY_SECRET_HEADER, Context::Server),
    (PROXY_SECRET_FILE, Context::Server),
    (STRICT_PATH, Context::Scoped),
    (CHALLENGE_URL, Context::Server),
    (SECRET_KEY_FILE, Context::Server),
    (LDAP_URL, Context::Server),
    (LDAP_READ_URL, Context::Server),
    (DIRECTORY, Context::Server),
    (ACCEPT_UNSIGNED_STATE, Context::Server),
    (LDAP_BIND_DN, Context::Server),
    (LDAP_BIND_PASSWORD_FILE, Context::Server),
    (LDAP_STARTTLS, Context::Server),
    (LDAP_CA_CERTIFICATE, Context::Server),
    (LDAP_TIMEOUT, Context::Server),
    (MAX_AGE, Context::Scoped),
    (CACHE_TTL, Context::Server),
    (METHODS, Context::Server),
    (REQUIRE_METHOD, Context::Scoped),
    (WEBAUTHN_ORIGIN, Context::Server),
    (WEBAUTHN_RPID, Context::Server),
    (RECOVERY_CODES, Context::Server),
    (TOTP_SKEW, Context::Server),
    (TOTP_DEFAULTS, Context::Server),
    (TOTP_ISSUER, Context::Server),
    (MAX_ATTEMPTS, Context::Server),
    (AUTO_UNLOCK, Context::Server),
    (ENROLLMENT, Context::Server),
    (ENROLLMENT_FROM, Context::Server),
    (ENROLLMENT_PROOF, Context::Server),
    (REGISTRATION_MESSAGE, Context::Server),
    (SMTP_SERVER, Context::Server),
    (SMTP_PASSWORD_FILE, Context::Server),
    (SMTP_CA_CERTIFICATE, Context::Server),
    (MAIL_FROM, Context::Server),
    (MAIL_ATTRIBUTE, Context::Server),
    (EMAIL_CODE_TTL, Context::Server),
    (EMAIL_RESEND_INTERVAL, Context::Server),
    (NOTIFY, Context::Server),
    (ATTRIBUTE, Context::Server),
];
