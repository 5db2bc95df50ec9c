//! Configuration: directives as parsed (`ServerConfig`, `DirConfig`), their
//! merge rules, and the resolved `Settings` every request reads.
//!
//! Create sets "unset", merge is "child if set, else parent", and defaults
//! are applied in exactly one place: `Settings::resolve`.

pub mod directives;
mod settings;
pub mod urls;
pub mod values;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use settings::{Keys, LdapSettings, Settings, SmtpSettings, TotpDefaults, WebAuthnSettings};
pub use urls::{LdapUrl, Scope, SmtpSecurity, SmtpUrl, WebAuthnOrigin};
pub use values::IpNet;

use directives as d;

/// A directive with a bad value, or a bad combination of directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub directive: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(directive: &'static str, message: impl Into<String>) -> Self {
        ConfigError { directive, message: message.into() }
    }

    fn bad_value(directive: &'static str, value: &str, allowed: String) -> Self {
        let shown: String = value.chars().take(200).map(|c| if c.is_control() { '?' } else { c }).collect();
        ConfigError::new(directive, format!("invalid value '{shown}': {allowed}"))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.directive, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// What a completion is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionBinding {
    Cookie,
    Header,
    None,
}

/// A second factor a user can be offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Totp,
    Email,
    Recovery,
    /// Passkeys and security keys.
    WebAuthn,
}

impl Method {
    pub const ALL: [Method; 4] = [Method::Totp, Method::Email, Method::Recovery, Method::WebAuthn];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Email => "email",
            Method::Recovery => "recovery",
            Method::WebAuthn => "webauthn",
        }
    }

    /// The method named `name` (as directives and completions name them, any case).
    pub fn parse(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str().eq_ignore_ascii_case(name))
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of methods (`TwoFactorRequireMethod`): plain bits, so that the
/// per-directory configuration stays `Copy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MethodSet(u8);

impl MethodSet {
    pub fn of(methods: &[Method]) -> MethodSet {
        MethodSet(methods.iter().fold(0, |bits, m| bits | m.bit()))
    }

    pub fn contains(self, method: Method) -> bool {
        self.0 & method.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn methods(self) -> impl Iterator<Item = Method> {
        Method::ALL.into_iter().filter(move |m| self.contains(*m))
    }

    /// The bits, for a signed token.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set of a signed token's bits (unknown bits dropped).
    pub fn from_bits(bits: u8) -> MethodSet {
        MethodSet(bits & MethodSet::of(&Method::ALL).0)
    }
}

/// What a user shows before (re-)enrolling a TOTP secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollmentProof {
    Email,
    None,
}

/// A state role, stored in one LDAP attribute each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Completion,
    Totp,
    TotpLast,
    Failures,
    EmailCode,
    Recovery,
    WebAuthn,
    WebAuthnPending,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Completion,
        Role::Totp,
        Role::TotpLast,
        Role::Failures,
        Role::EmailCode,
        Role::Recovery,
        Role::WebAuthn,
        Role::WebAuthnPending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Completion => "completion",
            Role::Totp => "totp",
            Role::TotpLast => "totp-last",
            Role::Failures => "failures",
            Role::EmailCode => "email-code",
            Role::Recovery => "recovery",
            Role::WebAuthn => "webauthn",
            Role::WebAuthnPending => "webauthn-pending",
        }
    }

    /// The attribute of the project's schema (apache-conf/twofactor.schema).
    pub fn default_attribute(self) -> &'static str {
        match self {
            Role::Completion => "twoFactorCompletion",
            Role::Totp => "twoFactorTOTP",
            Role::TotpLast => "twoFactorTOTPLastStep",
            Role::Failures => "twoFactorFailures",
            Role::EmailCode => "twoFactorEmailCode",
            Role::Recovery => "twoFactorRecovery",
            Role::WebAuthn => "twoFactorWebAuthn",
            Role::WebAuthnPending => "twoFactorWebAuthnPending",
        }
    }

    /// The attribute of Active Directory's own schema that stores it under
    /// `TwoFactorDirectory ad`: attributes no default access rule lets a
    /// user write on her own entry (none is in a property set that SELF
    /// may write, such as Personal-Information), that Windows leaves
    /// unused, multi-valued for the multi-valued roles and single-valued for
    /// the others, with room for the values (docs/operations.md).
    pub fn ad_attribute(self) -> &'static str {
        match self {
            Role::Completion => "carLicense",
            Role::Totp => "textEncodedORAddress",
            Role::TotpLast => "aCSPolicyName",
            Role::Failures => "desktopProfile",
            Role::EmailCode => "msIIS-FTPDir",
            Role::Recovery => "labeledURI",
            Role::WebAuthn => "x500uniqueIdentifier",
            Role::WebAuthnPending => "attributeCertificateAttribute",
        }
    }

    /// Whether a user holds several values of it at once.
    pub fn is_multi_valued(self) -> bool {
        matches!(self, Role::Completion | Role::Recovery | Role::WebAuthn | Role::WebAuthnPending)
    }

    fn parse(value: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(value))
    }
}

/// What the directory is (`TwoFactorDirectory`): which attributes hold the
/// state unless `TwoFactorAttribute` says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectoryKind {
    /// The project's schema (`twofactor.schema`).
    #[default]
    OpenLdap,
    /// Active Directory (or Samba AD): attributes of its own schema.
    ActiveDirectory,
}

impl DirectoryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DirectoryKind::OpenLdap => "openldap",
            DirectoryKind::ActiveDirectory => "ad",
        }
    }

    /// The attribute that stores `role` unless it is mapped.
    pub fn default_attribute(self, role: Role) -> &'static str {
        match self {
            DirectoryKind::OpenLdap => role.default_attribute(),
            DirectoryKind::ActiveDirectory => role.ad_attribute(),
        }
    }
}

/// TOTP HMAC algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    pub fn parse(value: &str) -> Option<Algorithm> {
        match value.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            "SHA512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// Per-directory settings (`<Location>`, `<Directory>`, and the server's defaults).
/// Plain data (`Copy`, nothing to drop): Apache merges these on every request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirConfig {
    pub enabled: Option<bool>,
    pub strict_path: Option<bool>,
    pub max_age: Option<Duration>,
    /// `TwoFactorRequireMethod`: unset, any offered method will do.
    pub require_methods: Option<MethodSet>,
}

impl DirConfig {
    pub fn merge(parent: &DirConfig, child: &DirConfig) -> DirConfig {
        DirConfig {
            enabled: child.enabled.or(parent.enabled),
            strict_path: child.strict_path.or(parent.strict_path),
            max_age: child.max_age.or(parent.max_age),
            require_methods: child.require_methods.or(parent.require_methods),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled.unwrap_or(false)
    }

    pub fn strict_path(&self) -> bool {
        self.strict_path.unwrap_or(true)
    }

    pub fn max_age(&self) -> Duration {
        self.max_age.unwrap_or(settings::DEFAULT_MAX_AGE)
    }
}

/// A compiled `TwoFactorUsernamePattern`, matched against the whole value.
#[derive(Debug, Clone)]
pub struct UsernamePattern {
    source: String,
    regex: regex::Regex,
    /// The default pattern, checked byte by byte (every request runs it).
    is_default: bool,
}

/// Longest `TwoFactorUsernamePattern` accepted.
const MAX_PATTERN_BYTES: usize = 512;
/// How deeply a `TwoFactorUsernamePattern` may nest groups and repetitions.
const PATTERN_NEST_LIMIT: u32 = 24;

/// `TwoFactorUsernamePattern`'s default.
pub const DEFAULT_USERNAME_PATTERN: &str = "^[A-Za-z0-9._@-]{1,64}$";

fn default_username_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-')
}

impl UsernamePattern {
    pub fn new(source: &str) -> Result<Self, String> {
        // Anchored here so that a pattern written without ^...$ cannot
        // accept "alice,bob" because it contains "alice".
        if source.len() > MAX_PATTERN_BYTES {
            return Err(format!("must be a regular expression of at most {MAX_PATTERN_BYTES} bytes"));
        }
        // A shallow nesting limit: deeply nested groups or stacked
        // repetitions (`a++++...`) make the regex compiler recurse until
        // the stack of the thread reading the configuration overflows.
        let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(1 << 20)
            .nest_limit(PATTERN_NEST_LIMIT)
            .build()
            .map_err(|e| format!("must be a regular expression ({})", first_line(&e.to_string())))?;
        Ok(UsernamePattern { source: source.to_string(), regex, is_default: source == DEFAULT_USERNAME_PATTERN })
    }

    pub fn is_match(&self, value: &str) -> bool {
        if self.is_default {
            return (1..=64).contains(&value.len()) && value.bytes().all(default_username_byte);
        }
        self.regex.is_match(value)
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

impl PartialEq for UsernamePattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for UsernamePattern {}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| s.lines().next().unwrap_or(s)).trim()
}

/// Server-wide settings as written in the configuration (`None` = unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerConfig {
    /// `TwoFactor On` appears somewhere in this server's scope.
    pub enforcement_used: bool,
    pub user_header: Option<String>,
    pub username_pattern: Option<UsernamePattern>,
    pub session_binding: Option<SessionBinding>,
    pub cookie_name: Option<String>,
    pub session_header: Option<String>,
    pub trusted_proxies: Option<Vec<IpNet>>,
    pub proxy_secret_header: Option<String>,
    pub proxy_secret_file: Option<PathBuf>,
    pub challenge_url: Option<String>,
    pub secret_key_files: Option<Vec<PathBuf>>,
    pub ldap_urls: Option<Vec<LdapUrl>>,
    pub ldap_read_urls: Option<Vec<LdapUrl>>,
    pub directory: Option<DirectoryKind>,
    pub accept_unsigned_state: Option<bool>,
    pub ldap_bind_dn: Option<String>,
    pub ldap_bind_password_file: Option<PathBuf>,
    pub ldap_starttls: Option<bool>,
    pub ldap_ca_certificate: Option<PathBuf>,
    pub ldap_timeout: Option<Duration>,
    pub cache_ttl: Option<Duration>,
    pub methods: Option<Vec<Method>>,
    pub webauthn_origin: Option<WebAuthnOrigin>,
    pub webauthn_rp_id: Option<String>,
    pub recovery_codes: Option<Option<u32>>,
    pub totp_skew: Option<Duration>,
    pub totp_defaults: Option<TotpDefaults>,
    pub totp_issuer: Option<String>,
    pub max_attempts: Option<u32>,
    pub auto_unlock: Option<Option<Duration>>,
    pub enrollment: Option<bool>,
    pub enrollment_from: Option<Vec<IpNet>>,
    pub enrollment_proof: Option<EnrollmentProof>,
    pub registration_message: Option<String>,
    pub smtp_server: Option<SmtpUrl>,
    pub smtp_password_file: Option<PathBuf>,
    pub smtp_ca_certificate: Option<PathBuf>,
    pub mail_from: Option<String>,
    pub mail_attribute: Option<String>,
    pub email_code_ttl: Option<Duration>,
    pub email_resend_interval: Option<Duration>,
    pub notify: Option<bool>,
    /// `TwoFactorAttribute ROLE NAME`, in order of appearance.
    pub attributes: Vec<(Role, String)>,
}

macro_rules! merge_fields {
    ($parent:expr, $child:expr, [$($field:ident),* $(,)?]) => {
        ServerConfig {
            enforcement_used: $parent.enforcement_used || $child.enforcement_used,
            attributes: {
                // Child mappings win role by role.
                let mut merged: Vec<(Role, String)> = $parent
                    .attributes
                    .iter()
                    .filter(|(role, _)| !$child.attributes.iter().any(|(r, _)| r == role))
                    .cloned()
                    .collect();
                merged.extend($child.attributes.iter().cloned());
                merged
            },
            $($field: $child.$field.clone().or_else(|| $parent.$field.clone()),)*
        }
    };
}

impl ServerConfig {
    /// A virtual host's settings: each of its own, else the main server's.
    pub fn merge(parent: &ServerConfig, child: &ServerConfig) -> ServerConfig {
        merge_fields!(
            parent,
            child,
            [
                user_header,
                username_pattern,
                session_binding,
                cookie_name,
                session_header,
                trusted_proxies,
                proxy_secret_header,
                proxy_secret_file,
                challenge_url,
                secret_key_files,
                ldap_urls,
                ldap_read_urls,
                directory,
                accept_unsigned_state,
                ldap_bind_dn,
                ldap_bind_password_file,
                ldap_starttls,
                ldap_ca_certificate,
                ldap_timeout,
                cache_ttl,
                methods,
                webauthn_origin,
                webauthn_rp_id,
                recovery_codes,
                totp_skew,
                totp_defaults,
                totp_issuer,
                max_attempts,
                auto_unlock,
                enrollment,
                enrollment_from,
                enrollment_proof,
                registration_message,
                smtp_server,
                smtp_password_file,
                smtp_ca_certificate,
                mail_from,
                mail_attribute,
                email_code_ttl,
                email_resend_interval,
                notify,
            ]
        )
    }

    /// Whether any directive of the module is in effect here: only then does
    /// the module touch requests of this server.
    pub fn is_configured(&self) -> bool {
        *self != ServerConfig::default()
    }
}

/// Where a directive line is being applied.
pub enum Target<'a> {
    /// Server level: server-wide settings, and the server's directory defaults.
    Server { server: &'a mut ServerConfig, dir: &'a mut DirConfig },
    /// Inside `<Location>` and friends; `server` is the enclosing server.
    Section { server: &'a mut ServerConfig, dir: &'a mut DirConfig },
}

/// Applies one directive line. `server_root` resolves relative file paths,
/// as Apache does for its own directives.
pub fn apply(target: Target<'_>, name: &str, args: &[&str], server_root: &Path) -> Result<(), ConfigError> {
    let Some(&(directive, context)) = d::ALL.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
        return Err(ConfigError::new("TwoFactor", format!("unknown directive '{name}'")));
    };
    let (server, dir, in_section) = match target {
        Target::Server { server, dir } => (server, dir, false),
        Target::Section { server, dir } => (server, dir, true),
    };
    if in_section && context == d::Context::Server {
        return Err(ConfigError::new(directive, "is only allowed at server or virtual host level"));
    }
    apply_known(directive, server, dir, args, server_root)
}

fn one<'a>(directive: &'static str, args: &[&'a str]) -> Result<&'a str, ConfigError> {
    match args {
        [value] => Ok(value),
        _ => Err(ConfigError::new(directive, format!("takes exactly one argument, got {}", args.len()))),
    }
}

fn at_least_one(directive: &'static str, args: &[&str]) -> Result<(), ConfigError> {
    if args.is_empty() {
        return Err(ConfigError::new(directive, "takes at least one argument"));
    }
    Ok(())
}

/// Runs `parse` on a single argument, wrapping its message with the directive and value.
fn single<T>(
    directive: &'static str,
    args: &[&str],
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let value = one(directive, args)?;
    parse(value).map_err(|allowed| ConfigError::bad_value(directive, value, allowed))
}

fn networks(directive: &'static str, args: &[&str]) -> Result<Vec<IpNet>, ConfigError> {
    at_least_one(directive, args)?;
    args.iter().map(|a| values::ip_net(a).map_err(|allowed| ConfigError::bad_value(directive, a, allowed))).collect()
}

/// `totp email ...`: at least one known method, none twice.
fn method_list(directive: &'static str, args: &[&str]) -> Result<Vec<Method>, ConfigError> {
    at_least_one(directive, args)?;
    let mut methods = Vec::new();
    for a in args {
        let Some(m) = Method::parse(a) else {
            return Err(ConfigError::bad_value(directive, a, "must be totp, email, recovery or webauthn".into()));
        };
        if methods.contains(&m) {
            return Err(ConfigError::bad_value(directive, a, "is listed twice".into()));
        }
        methods.push(m);
    }
    Ok(methods)
}

/// Replicas of one directory: every URL names the same base, attribute, scope and filter.
fn ldap_urls(directive: &'static str, args: &[&str]) -> Result<Vec<LdapUrl>, ConfigError> {
    at_least_one(directive, args)?;
    let urls = args
        .iter()
        .map(|a| urls::ldap_url(a).map_err(|allowed| ConfigError::bad_value(directive, a, allowed)))
        .collect::<Result<Vec<_>, _>>()?;
    if urls.iter().any(|u| !u.same_search(&urls[0])) {
        return Err(ConfigError::new(
            directive,
            "all URLs must name the same base, attribute, scope and filter (they are replicas of one directory)",
        ));
    }
    Ok(urls)
}

fn file_path(server_root: &Path, value: &str) -> Result<PathBuf, String> {
    if value.is_empty() || value.contains('\0') {
        return Err("must be a file path".into());
    }
    Ok(server_root.join(value))
}

fn apply_known(
    directive: &'static str,
    server: &mut ServerConfig,
    dir: &mut DirConfig,
    args: &[&str],
    root: &Path,
) -> Result<(), ConfigError> {
    let path = |v: &str| file_path(root, v);
    match directive {
        d::TWOFACTOR => {
            let on = single(directive, args, values::on_off)?;
            server.enforcement_used |= on;
            dir.enabled = Some(on);
        }
        d::STRICT_PATH => dir.strict_path = Some(single(directive, args, values::on_off)?),
        d::MAX_AGE => {
            dir.max_age = Some(single(directive, args, |v| {
                values::duration_in(v, Duration::from_secs(60), Duration::from_secs(365 * 86400), "1m to 365d")
            })?)
        }
        d::USER_HEADER => server.user_header = Some(single(directive, args, values::header_name)?),
        d::USERNAME_PATTERN => server.username_pattern = Some(single(directive, args, UsernamePattern::new)?),
        d::SESSION_BINDING => {
            server.session_binding = Some(single(directive, args, |v| match v.to_ascii_lowercase().as_str() {
                "cookie" => Ok(SessionBinding::Cookie),
                "header" => Ok(SessionBinding::Header),
                "none" => Ok(SessionBinding::None),
                _ => Err("must be cookie, header or none".into()),
            })?)
        }
        d::COOKIE_NAME => server.cookie_name = Some(single(directive, args, values::cookie_name)?),
        d::SESSION_HEADER => server.session_header = Some(single(directive, args, values::header_name)?),
        d::TRUSTED_PROXY => {
            // Repeated lines add networks, like `Require ip`.
            let nets = networks(directive, args)?;
            server.trusted_proxies.get_or_insert_with(Vec::new).extend(nets);
        }
        d::PROXY_SECRET_HEADER => server.proxy_secret_header = Some(single(directive, args, values::header_name)?),
        d::PROXY_SECRET_FILE => server.proxy_secret_file = Some(single(directive, args, path)?),
        d::CHALLENGE_URL => server.challenge_url = Some(single(directive, args, values::url_path_prefix)?),
        d::SECRET_KEY_FILE => {
            at_least_one(directive, args)?;
            let files = args
                .iter()
                .map(|a| path(a).map_err(|allowed| ConfigError::bad_value(directive, a, allowed)))
                .collect::<Result<Vec<_>, _>>()?;
            server.secret_key_files = Some(files);
        }
        d::LDAP_URL => server.ldap_urls = Some(ldap_urls(directive, args)?),
        d::LDAP_READ_URL => server.ldap_read_urls = Some(ldap_urls(directive, args)?),
        d::DIRECTORY => {
            server.directory = Some(single(directive, args, |v| match v.to_ascii_lowercase().as_str() {
                "openldap" => Ok(DirectoryKind::OpenLdap),
                "ad" => Ok(DirectoryKind::ActiveDirectory),
                _ => Err("must be openldap or ad".into()),
            })?)
        }
        d::ACCEPT_UNSIGNED_STATE => server.accept_unsigned_state = Some(single(directive, args, values::on_off)?),
        d::LDAP_BIND_DN => server.ldap_bind_dn = Some(single(directive, args, values::distinguished_name)?),
        d::LDAP_BIND_PASSWORD_FILE => server.ldap_bind_password_file = Some(single(directive, args, path)?),
        d::LDAP_STARTTLS => server.ldap_starttls = Some(single(directive, args, values::on_off)?),
        d::LDAP_CA_CERTIFICATE => server.ldap_ca_certificate = Some(single(directive, args, path)?),
        d::LDAP_TIMEOUT => {
            server.ldap_timeout = Some(single(directive, args, |v| {
                values::duration_in(v, Duration::from_secs(1), Duration::from_secs(300), "1s to 5m")
            })?)
        }
        d::CACHE_TTL => {
            server.cache_ttl = Some(single(directive, args, |v| {
                values::duration_in(v, Duration::ZERO, Duration::from_secs(3600), "0 to 1h")
            })?)
        }
        d::METHODS => server.methods = Some(method_list(directive, args)?),
        d::REQUIRE_METHOD => dir.require_methods = Some(MethodSet::of(&method_list(directive, args)?)),
        d::WEBAUTHN_ORIGIN => server.webauthn_origin = Some(single(directive, args, WebAuthnOrigin::parse)?),
        d::WEBAUTHN_RPID => server.webauthn_rp_id = Some(single(directive, args, urls::rp_id)?),
        d::RECOVERY_CODES => {
            server.recovery_codes = Some(single(directive, args, |v| {
                if v.eq_ignore_ascii_case("off") {
                    Ok(None)
                } else {
                    values::integer_in(v, 1, 50).map(Some).map_err(|e| format!("{e}, or Off"))
                }
            })?)
        }
        d::TOTP_SKEW => {
            server.totp_skew = Some(single(directive, args, |v| {
                values::duration_in(v, Duration::ZERO, Duration::from_secs(300), "0 to 5m")
            })?)
        }
        d::TOTP_DEFAULTS => {
            at_least_one(directive, args)?;
            let mut defaults = TotpDefaults::default();
            for a in args {
                defaults.set(a).map_err(|allowed| ConfigError::bad_value(directive, a, allowed))?;
            }
            server.totp_defaults = Some(defaults);
        }
        d::TOTP_ISSUER => {
            server.totp_issuer = Some(single(directive, args, |v| {
                if v.contains(':') {
                    return Err("must not contain ':' (it separates issuer and account in otpauth URIs)".into());
                }
                values::text(v, 64)
            })?)
        }
        d::MAX_ATTEMPTS => server.max_attempts = Some(single(directive, args, |v| values::integer_in(v, 1, 20))?),
        d::AUTO_UNLOCK => {
            server.auto_unlock = Some(single(directive, args, |v| {
                if v.eq_ignore_ascii_case("off") {
                    return Ok(None);
                }
                values::duration_in(v, Duration::from_secs(600), Duration::from_secs(90 * 86400), "10m to 90d, or Off")
                    .map(Some)
            })?)
        }
        d::ENROLLMENT => server.enrollment = Some(single(directive, args, values::on_off)?),
        d::ENROLLMENT_FROM => {
            let nets = networks(directive, args)?;
            server.enrollment_from.get_or_insert_with(Vec::new).extend(nets);
        }
        d::ENROLLMENT_PROOF => {
            server.enrollment_proof = Some(single(directive, args, |v| match v.to_ascii_lowercase().as_str() {
                "email" => Ok(EnrollmentProof::Email),
                "none" => Ok(EnrollmentProof::None),
                _ => Err("must be email or none".into()),
            })?)
        }
        d::REGISTRATION_MESSAGE => {
            server.registration_message = Some(single(directive, args, |v| values::text(v, 2000))?)
        }
        d::SMTP_SERVER => server.smtp_server = Some(single(directive, args, urls::smtp_url)?),
        d::SMTP_PASSWORD_FILE => server.smtp_password_file = Some(single(directive, args, path)?),
        d::SMTP_CA_CERTIFICATE => server.smtp_ca_certificate = Some(single(directive, args, path)?),
        d::MAIL_FROM => server.mail_from = Some(single(directive, args, values::mail_address)?),
        d::MAIL_ATTRIBUTE => server.mail_attribute = Some(single(directive, args, values::attribute_name)?),
        d::EMAIL_CODE_TTL => {
            server.email_code_ttl = Some(single(directive, args, |v| {
                values::duration_in(v, Duration::from_secs(60), Duration::from_secs(86400), "1m to 24h")
            })?)
        }
        d::EMAIL_RESEND_INTERVAL => {
            server.email_resend_interval = Some(single(directive, args, |v| {
                values::duration_in(v, Duration::ZERO, Duration::from_secs(3600), "0 to 1h")
            })?)
        }
        d::NOTIFY => server.notify = Some(single(directive, args, values::on_off)?),
        d::ATTRIBUTE => {
            let [role, name] = args else {
                return Err(ConfigError::new(
                    directive,
                    format!("takes two arguments, ROLE and NAME, got {}", args.len()),
                ));
            };
            let role = Role::parse(role).ok_or_else(|| {
                ConfigError::bad_value(
                    directive,
                    role,
                    "the role must be completion, totp, totp-last, failures, email-code, recovery, webauthn or \
                     webauthn-pending"
                        .into(),
                )
            })?;
            let name =
                values::attribute_name(name).map_err(|allowed| ConfigError::bad_value(directive, name, allowed))?;
            server.attributes.retain(|(r, _)| *r != role);
            server.attributes.push((role, name));
        }
        _ => return Err(ConfigError::new(directive, "is not handled (a bug: please report it)")),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
