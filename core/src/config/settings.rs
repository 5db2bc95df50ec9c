//! Resolved settings: defaults applied, files read, cross-directive rules
//! checked. Built once per server at start-up (as root), read by every request.

use std::path::Path;
use std::time::Duration;

use super::directives as d;
use super::{
    Algorithm, ConfigError, DirectoryKind, EnrollmentProof, IpNet, LdapUrl, Method, Role, ServerConfig, SessionBinding,
    SmtpSecurity, SmtpUrl, UsernamePattern, DEFAULT_USERNAME_PATTERN,
};
pub use crate::keys::Keys;
use crate::secret::Secret;
use crate::store::signed::Signer;

pub(super) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(8 * 3600);
const DEFAULT_USER_HEADER: &str = "X-Remote-User";
const DEFAULT_COOKIE_NAME: &str = "TwoFactorSession";
const DEFAULT_CHALLENGE_URL: &str = "/2fa";

/// Parameters of self-enrolled TOTP secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpDefaults {
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u32,
}

impl Default for TotpDefaults {
    fn default() -> Self {
        TotpDefaults { algorithm: Algorithm::Sha1, digits: 6, period: 30 }
    }
}

impl TotpDefaults {
    /// Applies one `key=value` word of `TwoFactorTOTPDefaults`.
    pub(super) fn set(&mut self, word: &str) -> Result<(), String> {
        let (key, value) = word.split_once('=').ok_or("must be algorithm=..., digits=... or period=...")?;
        match key.to_ascii_lowercase().as_str() {
            "algorithm" => {
                self.algorithm = Algorithm::parse(value).ok_or("algorithm must be SHA1, SHA256 or SHA512")?;
            }
            "digits" => {
                self.digits = match value {
                    "4" | "6" | "8" | "10" => value.parse().map_err(|_| "digits must be 4, 6, 8 or 10")?,
                    _ => return Err("digits must be 4, 6, 8 or 10".into()),
                };
            }
            "period" => {
                self.period = match value {
                    "30" | "60" => value.parse().map_err(|_| "period must be 30 or 60")?,
                    _ => return Err("period must be 30 or 60".into()),
                };
            }
            _ => return Err("must be algorithm=..., digits=... or period=...".into()),
        }
        Ok(())
    }
}

/// How the module reaches the directory.
#[derive(Debug, Clone)]
pub struct LdapSettings {
    /// In order of preference: the first reachable takes every write and
    /// the read behind each compare-and-swap.
    pub urls: Vec<LdapUrl>,
    /// `TwoFactorLDAPReadURL`: where the access check reads (a site's own
    /// domain controller); empty: the servers of `urls`.
    pub read_urls: Vec<LdapUrl>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
    pub starttls: bool,
    /// PEM, read at start-up.
    pub ca_certificate: Option<Vec<u8>>,
    pub timeout: Duration,
}

/// How the module sends passcode mails.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub url: SmtpUrl,
    pub password: Option<Secret>,
    pub from: String,
    /// PEM of the CA that signed the relay's certificate, read at start-up;
    /// `None`: the system's roots.
    pub ca_certificate: Option<Vec<u8>>,
}

/// Everything a request needs, with defaults applied.
#[derive(Debug)]
pub struct Settings {
    pub enforcement_used: bool,
    pub user_header: String,
    pub username_pattern: UsernamePattern,
    pub session_binding: SessionBinding,
    pub cookie_name: String,
    pub session_header: Option<String>,
    pub trusted_proxies: Vec<IpNet>,
    /// Header name and its expected value.
    pub proxy_secret: Option<(String, Secret)>,
    /// Without its trailing slash: `/2fa`.
    pub challenge_url: String,
    pub keys: Option<Keys>,
    pub ldap: Option<LdapSettings>,
    pub cache_ttl: Duration,
    pub methods: Vec<Method>,
    /// Set when `webauthn` is offered.
    pub webauthn: Option<WebAuthnSettings>,
    pub recovery_codes: Option<u32>,
    pub totp_skew: Duration,
    pub totp_defaults: TotpDefaults,
    pub totp_issuer: String,
    pub max_attempts: u32,
    pub auto_unlock: Option<Duration>,
    pub enrollment: bool,
    pub enrollment_from: Vec<IpNet>,
    pub enrollment_proof: EnrollmentProof,
    pub registration_message: Option<String>,
    pub smtp: Option<SmtpSettings>,
    pub mail_attribute: String,
    pub email_code_ttl: Duration,
    pub email_resend_interval: Duration,
    /// Mail the user about enrollments, recovery codes and locks.
    pub notify: bool,
    pub directory: DirectoryKind,
    /// `TwoFactorAcceptUnsignedState`: read values written before values were signed.
    pub accept_unsigned_state: bool,
    attributes: [String; 8],
}

/// Where passkeys are registered and used: the gateway's public origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAuthnSettings {
    /// `https://gateway.example.org[:port]`
    pub origin: String,
    /// The relying party id: the origin's host or a parent domain of it.
    pub rp_id: String,
}

/// Reads a whole file named by a directive; the message names the directive.
fn read_file(directive: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::new(directive, format!("cannot read '{}': {e}", path.display())))
}

/// A one-line secret (password, shared secret): a trailing newline is not part of it.
fn read_secret_line(directive: &'static str, path: &Path) -> Result<Secret, ConfigError> {
    let mut bytes = read_file(directive, path)?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(ConfigError::new(directive, format!("'{}' is empty", path.display())));
    }
    Ok(Secret::new(bytes))
}

/// A file that must hold at least one PEM certificate.
fn read_pem(directive: &'static str, file: &Path) -> Result<Vec<u8>, ConfigError> {
    let pem = read_file(directive, file)?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(ConfigError::new(directive, format!("'{}' holds no PEM certificate", file.display())));
    }
    Ok(pem)
}

fn require<T>(value: Option<T>, directive: &'static str, why: &str) -> Result<T, ConfigError> {
    value.ok_or_else(|| ConfigError::new(directive, format!("is required {why}")))
}

impl Settings {
    /// Applies defaults, reads the files the directives name, and checks the
    /// rules that span several directives. Returns warnings worth a log line.
    pub fn resolve(cfg: &ServerConfig, server_name: &str) -> Result<(Settings, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let enforced = cfg.enforcement_used;
        let why = "when TwoFactor On is used";

        let username_pattern = match &cfg.username_pattern {
            Some(p) => p.clone(),
            None => {
                UsernamePattern::new(DEFAULT_USERNAME_PATTERN).map_err(|e| ConfigError::new(d::USERNAME_PATTERN, e))?
            }
        };

        let session_binding = cfg.session_binding.unwrap_or(SessionBinding::Cookie);
        if session_binding == SessionBinding::Header && cfg.session_header.is_none() {
            return Err(ConfigError::new(d::SESSION_HEADER, "is required with TwoFactorSessionBinding header"));
        }

        let trusted_proxies = cfg.trusted_proxies.clone().unwrap_or_default();
        if enforced && trusted_proxies.is_empty() {
            warnings.push(format!(
                "{}: not set, so every request where TwoFactor is On will be refused (403): name the gateway's address",
                d::TRUSTED_PROXY
            ));
        }

        let proxy_secret = match (&cfg.proxy_secret_header, &cfg.proxy_secret_file) {
            (Some(header), Some(file)) => Some((header.clone(), read_secret_line(d::PROXY_SECRET_FILE, file)?)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(d::PROXY_SECRET_FILE, "is required with TwoFactorProxySecretHeader"))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(d::PROXY_SECRET_HEADER, "is required with TwoFactorProxySecretFile"))
            }
        };

        let keys = match &cfg.secret_key_files {
            Some(files) => {
                let mut contents = Vec::with_capacity(files.len());
                for file in files {
                    contents.push(Secret::new(read_file(d::SECRET_KEY_FILE, file)?));
                }
                Some(Keys::from_files(&contents).map_err(|e| ConfigError::new(d::SECRET_KEY_FILE, e))?)
            }
            None if enforced => return Err(ConfigError::new(d::SECRET_KEY_FILE, format!("is required {why}"))),
            None => None,
        };

        let ldap = match &cfg.ldap_urls {
            Some(urls) => {
                let bind_password = match (&cfg.ldap_bind_dn, &cfg.ldap_bind_password_file) {
                    (Some(_), Some(file)) => Some(read_secret_line(d::LDAP_BIND_PASSWORD_FILE, file)?),
                    (None, None) => None,
                    (Some(_), None) => {
                        return Err(ConfigError::new(
                            d::LDAP_BIND_PASSWORD_FILE,
                            "is required with TwoFactorLDAPBindDN",
                        ))
                    }
                    (None, Some(_)) => {
                        return Err(ConfigError::new(d::LDAP_BIND_DN, "is required with TwoFactorLDAPBindPasswordFile"))
                    }
                };
                let starttls = cfg.ldap_starttls.unwrap_or(false);
                if starttls && urls.iter().any(|u| u.tls) {
                    return Err(ConfigError::new(
                        d::LDAP_STARTTLS,
                        "cannot be On with ldaps:// URLs (they are TLS already)",
                    ));
                }
                let ca_certificate = match &cfg.ldap_ca_certificate {
                    Some(file) => Some(read_pem(d::LDAP_CA_CERTIFICATE, file)?),
                    None => None,
                };
                let read_urls = cfg.ldap_read_urls.clone().unwrap_or_default();
                if read_urls.first().is_some_and(|r| !r.same_search(&urls[0])) {
                    return Err(ConfigError::new(
                        d::LDAP_READ_URL,
                        "must name the same base, attribute, scope and filter as TwoFactorLDAPURL (replicas of \
                         one directory)",
                    ));
                }
                let tls_writes = urls.iter().any(|u| u.tls);
                if let Some(plain) = read_urls.iter().find(|u| tls_writes && !starttls && !u.tls) {
                    return Err(ConfigError::new(
                        d::LDAP_READ_URL,
                        format!("'{}' is plain LDAP while TwoFactorLDAPURL uses ldaps://", plain.server()),
                    ));
                }
                Some(LdapSettings {
                    urls: urls.clone(),
                    read_urls,
                    bind_dn: cfg.ldap_bind_dn.clone(),
                    bind_password,
                    starttls,
                    ca_certificate,
                    timeout: cfg.ldap_timeout.unwrap_or(Duration::from_secs(5)),
                })
            }
            None if enforced => return Err(ConfigError::new(d::LDAP_URL, format!("is required {why}"))),
            None if cfg.ldap_read_urls.is_some() => {
                return Err(ConfigError::new(d::LDAP_READ_URL, "needs TwoFactorLDAPURL (where writes go)"))
            }
            None => None,
        };

        let methods = cfg.methods.clone().unwrap_or_else(|| vec![Method::Totp, Method::Email, Method::Recovery]);
        let enrollment_proof = cfg.enrollment_proof.unwrap_or(EnrollmentProof::Email);
        let enrollment = cfg.enrollment.unwrap_or(true);
        let needs_mail = methods.contains(&Method::Email) || (enrollment && enrollment_proof == EnrollmentProof::Email);

        let smtp = match &cfg.smtp_server {
            Some(url) => {
                let password = match (&url.user, &cfg.smtp_password_file) {
                    (_, Some(file)) => Some(read_secret_line(d::SMTP_PASSWORD_FILE, file)?),
                    (Some(_), None) => {
                        return Err(ConfigError::new(
                            d::SMTP_PASSWORD_FILE,
                            "is required when TwoFactorSMTPServer names a user",
                        ))
                    }
                    (None, None) => None,
                };
                let from = require(cfg.mail_from.clone(), d::MAIL_FROM, "with TwoFactorSMTPServer")?;
                let ca_certificate = match &cfg.smtp_ca_certificate {
                    Some(_) if url.security == SmtpSecurity::Plain => {
                        return Err(ConfigError::new(
                            d::SMTP_CA_CERTIFICATE,
                            "needs TLS to the relay: smtps://, or smtp://...?tls=starttls",
                        ))
                    }
                    Some(file) => Some(read_pem(d::SMTP_CA_CERTIFICATE, file)?),
                    None => None,
                };
                Some(SmtpSettings { url: url.clone(), password, from, ca_certificate })
            }
            None if enforced && needs_mail => {
                return Err(ConfigError::new(
                    d::SMTP_SERVER,
                    "is required: emailed passcodes are offered (TwoFactorMethods includes email, or \
                     TwoFactorEnrollmentProof is email); set it, or remove email from both",
                ))
            }
            None => None,
        };

        let webauthn = match (&cfg.webauthn_origin, &cfg.webauthn_rp_id) {
            (Some(origin), rp_id) => {
                let rp_id = rp_id.clone().unwrap_or_else(|| origin.host.clone());
                if !origin.accepts_rp_id(&rp_id) {
                    return Err(ConfigError::new(
                        d::WEBAUTHN_RPID,
                        format!(
                            "'{rp_id}' is not the host of TwoFactorWebAuthnOrigin '{}' or a parent domain of it",
                            origin.origin
                        ),
                    ));
                }
                Some(WebAuthnSettings { origin: origin.origin.clone(), rp_id })
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(d::WEBAUTHN_RPID, "needs TwoFactorWebAuthnOrigin (the gateway's origin)"))
            }
            (None, None) if enforced && methods.contains(&Method::WebAuthn) => {
                return Err(ConfigError::new(
                    d::WEBAUTHN_ORIGIN,
                    "is required: TwoFactorMethods includes webauthn; set it to the gateway's public origin \
                     as the browser shows it (https://gateway.example.org)",
                ))
            }
            (None, None) => None,
        };

        let notify = match cfg.notify {
            Some(true) if smtp.is_none() => {
                return Err(ConfigError::new(d::NOTIFY, "On needs TwoFactorSMTPServer (notices are sent by mail)"))
            }
            Some(on) => on,
            None => smtp.is_some(),
        };

        let directory = cfg.directory.unwrap_or_default();
        let mut attributes = Role::ALL.map(|r| directory.default_attribute(r).to_string());
        for (role, name) in &cfg.attributes {
            if let Some(i) = Role::ALL.iter().position(|r| r == role) {
                attributes[i] = name.clone();
            }
        }

        let settings = Settings {
            enforcement_used: enforced,
            user_header: cfg.user_header.clone().unwrap_or_else(|| DEFAULT_USER_HEADER.into()),
            username_pattern,
            session_binding,
            cookie_name: cfg.cookie_name.clone().unwrap_or_else(|| DEFAULT_COOKIE_NAME.into()),
            session_header: cfg.session_header.clone(),
            trusted_proxies,
            proxy_secret,
            challenge_url: cfg.challenge_url.clone().unwrap_or_else(|| DEFAULT_CHALLENGE_URL.into()),
            keys,
            ldap,
            cache_ttl: cfg.cache_ttl.unwrap_or(Duration::from_secs(30)),
            methods,
            webauthn,
            recovery_codes: cfg.recovery_codes.unwrap_or(Some(10)),
            totp_skew: cfg.totp_skew.unwrap_or(Duration::from_secs(60)),
            totp_defaults: cfg.totp_defaults.unwrap_or_default(),
            totp_issuer: cfg.totp_issuer.clone().unwrap_or_else(|| server_name.to_string()),
            max_attempts: cfg.max_attempts.unwrap_or(5),
            auto_unlock: cfg.auto_unlock.unwrap_or(Some(Duration::from_secs(1800))),
            enrollment,
            enrollment_from: cfg.enrollment_from.clone().unwrap_or_default(),
            enrollment_proof,
            registration_message: cfg.registration_message.clone(),
            smtp,
            mail_attribute: cfg.mail_attribute.clone().unwrap_or_else(|| "mail".into()),
            email_code_ttl: cfg.email_code_ttl.unwrap_or(Duration::from_secs(600)),
            email_resend_interval: cfg.email_resend_interval.unwrap_or(Duration::from_secs(60)),
            notify,
            directory,
            accept_unsigned_state: cfg.accept_unsigned_state.unwrap_or(false),
            attributes,
        };
        Ok((settings, warnings))
    }

    /// What this configuration needs of the other modules loaded with it
    /// (`is_loaded("mod_remoteip.c")`); `Ok` carries warnings worth a line.
    pub fn check_companion_modules(&self, is_loaded: &dyn Fn(&str) -> bool) -> Result<Vec<String>, ConfigError> {
        if !self.enrollment_from.is_empty() && !is_loaded("mod_remoteip.c") {
            return Err(ConfigError::new(
                d::ENROLLMENT_FROM,
                "needs mod_remoteip (a2enmod remoteip), with RemoteIPHeader X-Forwarded-For and the gateway as \
                 RemoteIPInternalProxy: the end user's address is never read from a raw X-Forwarded-For",
            ));
        }
        let mut warnings = Vec::new();
        if self.enforcement_used && is_loaded("mod_cache.c") {
            warnings.push(
                "mod_cache is loaded: responses where TwoFactor is On are never stored in its cache (its quick \
                 handler would serve them without any access check); cache them at the backend if needed"
                    .to_string(),
            );
        }
        Ok(warnings)
    }

    /// The attribute that stores `role`.
    pub fn attribute(&self, role: Role) -> &str {
        let i = Role::ALL.iter().position(|r| *r == role).unwrap_or(0);
        &self.attributes[i]
    }

    /// Signs and opens `user`'s stored values; `None` without a key.
    pub fn signer(&self, user: &str) -> Option<Signer<'_>> {
        Some(Signer::new(self.keys.as_ref()?, user, self.accept_unsigned_state))
    }

    /// Whether `uri` (the decoded, normalised request path) is the challenge
    /// handler's: the prefix itself or anything below it.
    pub fn is_challenge_path(&self, uri: &str) -> bool {
        self.is_challenge_path_bytes(uri.as_bytes())
    }

    /// As `is_challenge_path`, for Apache's raw bytes.
    pub fn is_challenge_path_bytes(&self, uri: &[u8]) -> bool {
        match uri.strip_prefix(self.challenge_url.as_bytes()) {
            Some(rest) => rest.is_empty() || rest.first() == Some(&b'/'),
            None => false,
        }
    }

    /// Whether `ip`, the TCP peer, is a trusted gateway.
    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }
}
