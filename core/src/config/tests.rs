use super::*;
use std::io::Write;

fn server_level(server: &mut ServerConfig, dir: &mut DirConfig, line: &str) -> Result<(), ConfigError> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap();
    let args: Vec<&str> = words.collect();
    apply(Target::Server { server, dir }, name, &args, Path::new("/etc/apache2"))
}

fn parse(lines: &[&str]) -> Result<(ServerConfig, DirConfig), ConfigError> {
    let mut server = ServerConfig::default();
    let mut dir = DirConfig::default();
    for line in lines {
        server_level(&mut server, &mut dir, line)?;
    }
    Ok((server, dir))
}

fn error_of(line: &str) -> String {
    parse(&[line]).unwrap_err().to_string()
}

/// Every directive accepts a good value and refuses a bad one with a
/// message naming the directive, the value and what is allowed.
#[test]
fn good_and_bad_values() {
    let cases: &[(&str, &str, &str)] = &[
        ("TwoFactor On", "TwoFactor Maybe", "invalid value 'Maybe': must be On or Off"),
        ("TwoFactorUserHeader X-Remote-User", "TwoFactorUserHeader X:User", "must be an HTTP header name"),
        ("TwoFactorUsernamePattern ^[a-z]+$", "TwoFactorUsernamePattern [a-z", "must be a regular expression"),
        ("TwoFactorSessionBinding header", "TwoFactorSessionBinding ip", "must be cookie, header or none"),
        ("TwoFactorCookieName TF", "TwoFactorCookieName a=b", "must be a cookie name"),
        ("TwoFactorSessionHeader X-PCS-Session", "TwoFactorSessionHeader a,b", "must be an HTTP header name"),
        ("TwoFactorTrustedProxy 10.0.0.0/8 ::1", "TwoFactorTrustedProxy 10.0.0.0/40", "CIDR"),
        ("TwoFactorProxySecretHeader X-Gw-Secret", "TwoFactorProxySecretHeader X Gw", "takes exactly one argument"),
        ("TwoFactorProxySecretFile secret.txt", "TwoFactorProxySecretFile a b", "takes exactly one argument"),
        ("TwoFactorStrictPath Off", "TwoFactorStrictPath 0", "must be On or Off"),
        ("TwoFactorChallengeURL /mfa/", "TwoFactorChallengeURL mfa", "must be an absolute URL path"),
        ("TwoFactorSecretKeyFile new.key old.key", "TwoFactorSecretKeyFile", "takes at least one argument"),
        (
            "TwoFactorLDAPURL ldap://127.0.0.1/dc=example,dc=test",
            "TwoFactorLDAPURL ldap.example.org",
            "must be an LDAP URL",
        ),
        ("TwoFactorLDAPBindDN cn=svc,dc=example,dc=test", "TwoFactorLDAPBindDN svc", "must be a distinguished name"),
        ("TwoFactorLDAPBindPasswordFile bind.pw", "TwoFactorLDAPBindPasswordFile", "takes exactly one argument"),
        ("TwoFactorLDAPStartTLS On", "TwoFactorLDAPStartTLS yes", "must be On or Off"),
        ("TwoFactorLDAPCACertificate ca.pem", "TwoFactorLDAPCACertificate", "takes exactly one argument"),
        ("TwoFactorLDAPTimeout 3s", "TwoFactorLDAPTimeout 0", "must be a duration from 1s to 5m"),
        ("TwoFactorMaxAge 12h", "TwoFactorMaxAge 10x", "must be a duration such as 90s"),
        ("TwoFactorCacheTTL 0", "TwoFactorCacheTTL 2h", "must be a duration from 0 to 1h"),
        (
            "TwoFactorMethods totp recovery",
            "TwoFactorMethods sms",
            "invalid value 'sms': must be totp, email, recovery or webauthn",
        ),
        ("TwoFactorRequireMethod webauthn totp", "TwoFactorRequireMethod webauthn sms", "must be totp, email"),
        (
            "TwoFactorWebAuthnOrigin https://gateway.example.org",
            "TwoFactorWebAuthnOrigin https://10.0.0.1",
            "the host must be a domain name",
        ),
        ("TwoFactorWebAuthnRPID example.org", "TwoFactorWebAuthnRPID 10.0.0.1", "must be a domain name"),
        ("TwoFactorRecoveryCodes Off", "TwoFactorRecoveryCodes 0", "must be an integer from 1 to 50, or Off"),
        ("TwoFactorTOTPSkew 5m", "TwoFactorTOTPSkew 6m", "must be a duration from 0 to 5m"),
        (
            "TwoFactorTOTPDefaults algorithm=SHA256 digits=8 period=60",
            "TwoFactorTOTPDefaults digits=7",
            "digits must be 4, 6, 8 or 10",
        ),
        ("TwoFactorTOTPIssuer Example", "TwoFactorTOTPIssuer Ex:ample", "must not contain ':'"),
        ("TwoFactorMaxAttempts 20", "TwoFactorMaxAttempts 21", "invalid value '21': must be an integer from 1 to 20"),
        ("TwoFactorAutoUnlock 90d", "TwoFactorAutoUnlock 5m", "must be a duration from 10m to 90d, or Off"),
        ("TwoFactorEnrollment Off", "TwoFactorEnrollment never", "must be On or Off"),
        ("TwoFactorEnrollmentFrom 192.168.0.0/16", "TwoFactorEnrollmentFrom intranet", "CIDR"),
        ("TwoFactorEnrollmentProof none", "TwoFactorEnrollmentProof sms", "must be email or none"),
        ("TwoFactorRegistrationMessage Welcome", "TwoFactorRegistrationMessage", "takes exactly one argument"),
        ("TwoFactorSMTPServer smtp://127.0.0.1:2525", "TwoFactorSMTPServer mail.example.org", "must be smtp://host"),
        ("TwoFactorSMTPPasswordFile smtp.pw", "TwoFactorSMTPPasswordFile a b", "takes exactly one argument"),
        ("TwoFactorMailFrom 2fa@example.org", "TwoFactorMailFrom nobody", "must be an e-mail address"),
        ("TwoFactorMailAttribute mail", "TwoFactorMailAttribute 9mail", "must be an LDAP attribute name"),
        ("TwoFactorEmailCodeTTL 5m", "TwoFactorEmailCodeTTL 30s", "must be a duration from 1m to 24h"),
        ("TwoFactorEmailResendInterval 0", "TwoFactorEmailResendInterval 2h", "must be a duration from 0 to 1h"),
        ("TwoFactorNotify Off", "TwoFactorNotify maybe", "must be On or Off"),
        ("TwoFactorSMTPCACertificate relay-ca.pem", "TwoFactorSMTPCACertificate", "takes exactly one argument"),
        ("TwoFactorAttribute completion extensionAttribute1", "TwoFactorAttribute lastlogin x", "the role must be"),
        ("TwoFactorDirectory ad", "TwoFactorDirectory novell", "must be openldap or ad"),
        ("TwoFactorAcceptUnsignedState On", "TwoFactorAcceptUnsignedState yes", "must be On or Off"),
        (
            "TwoFactorLDAPReadURL ldap://dc2.example.org/dc=example,dc=org?uid",
            "TwoFactorLDAPReadURL http://dc2.example.org/",
            "ldap",
        ),
    ];
    let mut seen = Vec::new();
    for (good, bad, expected) in cases {
        parse(&[good]).unwrap_or_else(|e| panic!("{good:?} refused: {e}"));
        let err = error_of(bad);
        let name = bad.split_whitespace().next().unwrap();
        assert!(err.starts_with(&format!("{name}: ")), "{bad:?} -> {err}");
        assert!(err.contains(expected), "{bad:?} -> {err:?}, expected to contain {expected:?}");
        seen.push(name);
    }
    for (name, _) in directives::ALL {
        assert!(seen.contains(name), "{name} has no good/bad case here");
    }
}

#[test]
fn server_only_directives_are_refused_in_sections() {
    let mut server = ServerConfig::default();
    let mut dir = DirConfig::default();
    let err = apply(
        Target::Section { server: &mut server, dir: &mut dir },
        "TwoFactorUserHeader",
        &["X-User"],
        Path::new("/"),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "TwoFactorUserHeader: is only allowed at server or virtual host level");
    apply(Target::Section { server: &mut server, dir: &mut dir }, "twofactor", &["on"], Path::new("/")).unwrap();
    assert_eq!(dir.enabled, Some(true));
    assert!(server.enforcement_used, "a section's TwoFactor On marks its server");
}

#[test]
fn relative_files_resolve_against_the_server_root() {
    let (server, _) = parse(&["TwoFactorSecretKeyFile conf/2fa.key /abs/old.key"]).unwrap();
    assert_eq!(
        server.secret_key_files.unwrap(),
        vec![PathBuf::from("/etc/apache2/conf/2fa.key"), PathBuf::from("/abs/old.key")]
    );
}

#[test]
fn repeated_lists_accumulate_and_scalars_take_the_last() {
    let (server, _) = parse(&[
        "TwoFactorTrustedProxy 10.0.0.1",
        "TwoFactorTrustedProxy 10.0.0.2",
        "TwoFactorMaxAttempts 3",
        "TwoFactorMaxAttempts 4",
    ])
    .unwrap();
    assert_eq!(server.trusted_proxies.unwrap().len(), 2);
    assert_eq!(server.max_attempts, Some(4));
}

#[test]
fn merge_takes_child_if_set_else_parent() {
    let (parent, parent_dir) =
        parse(&["TwoFactorUserHeader X-Main", "TwoFactorMaxAttempts 3", "TwoFactorAttribute totp a1", "TwoFactor On"])
            .unwrap();
    let (child, child_dir) =
        parse(&["TwoFactorMaxAttempts 7", "TwoFactorAttribute failures a2", "TwoFactorStrictPath Off"]).unwrap();
    let merged = ServerConfig::merge(&parent, &child);
    assert_eq!(merged.user_header.as_deref(), Some("X-Main"));
    assert_eq!(merged.max_attempts, Some(7));
    assert!(merged.enforcement_used);
    assert_eq!(merged.attributes, vec![(Role::Totp, "a1".into()), (Role::Failures, "a2".into())]);
    let dir = DirConfig::merge(&parent_dir, &child_dir);
    assert!(dir.enabled());
    assert!(!dir.strict_path());
    assert_eq!(dir.max_age(), Duration::from_secs(8 * 3600));
    let unset = DirConfig::default();
    assert!(!unset.enabled() && unset.strict_path());
    assert!(!ServerConfig::default().is_configured());
    assert!(child.is_configured());
}

#[test]
fn ldap_urls_must_be_replicas() {
    let err = error_of("TwoFactorLDAPURL ldap://a/dc=x ldap://b/dc=y");
    assert!(err.contains("same base"), "{err}");
    parse(&["TwoFactorLDAPURL ldap://a/dc=x?uid ldaps://b/dc=x?uid"]).unwrap();
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files { dir: tempfile::tempdir().unwrap() }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::File::create(&path).unwrap().write_all(bytes).unwrap();
        path.display().to_string()
    }
}

fn enforced(files: &Files, extra: &[&str]) -> Result<(Settings, Vec<String>), ConfigError> {
    let key = files.write("k", &[9; 32]);
    let mut lines = vec![
        "TwoFactor On".to_string(),
        format!("TwoFactorSecretKeyFile {key}"),
        "TwoFactorLDAPURL ldap://127.0.0.1/dc=example,dc=test".to_string(),
        "TwoFactorTrustedProxy 127.0.0.1".to_string(),
        "TwoFactorSMTPServer smtp://127.0.0.1:25".to_string(),
        "TwoFactorMailFrom 2fa@example.test".to_string(),
    ];
    lines.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (server, _) = parse(&refs)?;
    Settings::resolve(&server, "www.example.test")
}

#[test]
fn resolved_defaults() {
    let files = Files::new();
    let (s, warnings) = enforced(&files, &[]).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(s.user_header, "X-Remote-User");
    assert_eq!(s.cookie_name, "TwoFactorSession");
    assert_eq!(s.challenge_url, "/2fa");
    assert_eq!(s.session_binding, SessionBinding::Cookie);
    assert_eq!(s.cache_ttl, Duration::from_secs(30));
    assert_eq!(s.methods, vec![Method::Totp, Method::Email, Method::Recovery]);
    assert_eq!(s.recovery_codes, Some(10));
    assert_eq!(s.totp_skew, Duration::from_secs(60));
    assert_eq!(s.totp_defaults, TotpDefaults::default());
    assert_eq!(s.totp_issuer, "www.example.test");
    assert_eq!(s.max_attempts, 5);
    assert_eq!(s.auto_unlock, Some(Duration::from_secs(1800)));
    assert_eq!(s.email_code_ttl, Duration::from_secs(600));
    assert_eq!(s.email_resend_interval, Duration::from_secs(60));
    assert!(s.notify, "notices are on where mail can be sent");
    assert_eq!(s.attribute(Role::Completion), "twoFactorCompletion");
    assert_eq!(s.ldap.as_ref().unwrap().timeout, Duration::from_secs(5));
    assert!(s.is_challenge_path("/2fa") && s.is_challenge_path("/2fa/") && s.is_challenge_path("/2fa/x"));
    assert!(!s.is_challenge_path("/2faX") && !s.is_challenge_path("/app/2fa"));
    assert!(s.is_trusted_proxy("127.0.0.1".parse().unwrap()));
    assert!(!s.is_trusted_proxy("127.0.0.2".parse().unwrap()));
}

#[test]
fn cross_directive_rules() {
    let files = Files::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["TwoFactorSessionBinding header"],
            "TwoFactorSessionHeader: is required with TwoFactorSessionBinding header",
        ),
        (&["TwoFactorProxySecretHeader X-S"], "TwoFactorProxySecretFile: is required"),
        (&["TwoFactorLDAPBindDN cn=a,dc=b"], "TwoFactorLDAPBindPasswordFile: is required"),
        (&["TwoFactorLDAPBindPasswordFile /nonexistent/pw"], "TwoFactorLDAPBindDN: is required"),
        (
            &["TwoFactorProxySecretHeader X-S", "TwoFactorProxySecretFile /nonexistent/s"],
            "TwoFactorProxySecretFile: cannot read '/nonexistent/s'",
        ),
        (&["TwoFactorLDAPCACertificate /nonexistent/ca.pem"], "TwoFactorLDAPCACertificate: cannot read"),
        (
            &["TwoFactorLDAPURL ldaps://127.0.0.1/dc=x", "TwoFactorLDAPStartTLS On"],
            "TwoFactorLDAPStartTLS: cannot be On with ldaps://",
        ),
        (&["TwoFactorSMTPServer smtp://user@127.0.0.1"], "TwoFactorSMTPPasswordFile: is required"),
        (&["TwoFactorSMTPCACertificate /nonexistent/ca.pem"], "TwoFactorSMTPCACertificate: needs TLS to the relay"),
        (
            &["TwoFactorSMTPServer smtps://127.0.0.1", "TwoFactorSMTPCACertificate /nonexistent/ca.pem"],
            "TwoFactorSMTPCACertificate: cannot read",
        ),
    ];
    for (extra, expected) in cases {
        let err = enforced(&files, extra).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{extra:?} -> {err}");
    }
}

#[test]
fn enforcement_needs_key_ldap_and_mail() {
    let (server, _) = parse(&["TwoFactor On"]).unwrap();
    let err = Settings::resolve(&server, "h").unwrap_err().to_string();
    assert!(err.starts_with("TwoFactorSecretKeyFile: is required when TwoFactor On is used"), "{err}");

    let files = Files::new();
    let short = files.write("short", &[1; 16]);
    let (server, _) = parse(&["TwoFactor On", &format!("TwoFactorSecretKeyFile {short}")]).unwrap();
    let err = Settings::resolve(&server, "h").unwrap_err().to_string();
    assert!(err.contains("holds 16 bytes; at least 32"), "{err}");

    let key = files.write("k", &[1; 32]);
    let (server, _) = parse(&["TwoFactor On", &format!("TwoFactorSecretKeyFile {key}")]).unwrap();
    let err = Settings::resolve(&server, "h").unwrap_err().to_string();
    assert!(err.starts_with("TwoFactorLDAPURL: is required"), "{err}");

    let (server, _) =
        parse(&["TwoFactor On", &format!("TwoFactorSecretKeyFile {key}"), "TwoFactorLDAPURL ldap://h/dc=x"]).unwrap();
    let err = Settings::resolve(&server, "h").unwrap_err().to_string();
    assert!(err.starts_with("TwoFactorSMTPServer: is required"), "{err}");

    let (server, _) = parse(&[
        "TwoFactor On",
        &format!("TwoFactorSecretKeyFile {key}"),
        "TwoFactorLDAPURL ldap://h/dc=x",
        "TwoFactorMethods totp recovery",
        "TwoFactorEnrollmentProof none",
    ])
    .unwrap();
    let (_, warnings) = Settings::resolve(&server, "h").unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].starts_with("TwoFactorTrustedProxy: not set"), "{warnings:?}");
}

#[test]
fn passkeys_need_the_gateways_origin_and_a_matching_relying_party() {
    let files = Files::new();
    let err = enforced(&files, &["TwoFactorMethods totp webauthn"]).unwrap_err().to_string();
    assert!(err.starts_with("TwoFactorWebAuthnOrigin: is required"), "{err}");
    let (s, _) =
        enforced(&files, &["TwoFactorMethods webauthn", "TwoFactorWebAuthnOrigin HTTPS://Gate.Example.org:8443/"])
            .unwrap();
    let webauthn = s.webauthn.unwrap();
    assert_eq!(
        (webauthn.origin.as_str(), webauthn.rp_id.as_str()),
        ("https://gate.example.org:8443", "gate.example.org")
    );
    let (s, _) =
        enforced(&files, &["TwoFactorWebAuthnOrigin https://gate.example.org", "TwoFactorWebAuthnRPID example.org"])
            .unwrap();
    assert_eq!(s.webauthn.unwrap().rp_id, "example.org");
    for (origin, rp_id) in [("https://gate.example.org", "other.org"), ("https://gate.example.org", "ample.org")] {
        let lines = [format!("TwoFactorWebAuthnOrigin {origin}"), format!("TwoFactorWebAuthnRPID {rp_id}")];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let err = enforced(&files, &refs).unwrap_err().to_string();
        assert!(err.starts_with("TwoFactorWebAuthnRPID: '"), "{err}");
    }
    let err = enforced(&files, &["TwoFactorWebAuthnRPID example.org"]).unwrap_err().to_string();
    assert!(err.starts_with("TwoFactorWebAuthnRPID: needs TwoFactorWebAuthnOrigin"), "{err}");
    // http:// only for localhost, which browsers treat as secure; no paths.
    for bad in
        ["http://gate.example.org", "https://gate.example.org/2fa", "https://user@gate.example.org", "ftp://x.org"]
    {
        assert!(parse(&[&format!("TwoFactorWebAuthnOrigin {bad}")]).is_err(), "{bad}");
    }
    assert!(parse(&["TwoFactorWebAuthnOrigin http://localhost:8080"]).is_ok());
}

#[test]
fn require_method_is_per_location_and_merges_child_first() {
    use crate::config::{Method, MethodSet};
    let mut server = ServerConfig::default();
    let mut parent = DirConfig::default();
    apply(
        Target::Section { server: &mut server, dir: &mut parent },
        "TwoFactorRequireMethod",
        &["webauthn"],
        Path::new("/"),
    )
    .unwrap();
    assert_eq!(parent.require_methods, Some(MethodSet::of(&[Method::WebAuthn])));
    let child = DirConfig { max_age: Some(std::time::Duration::from_secs(300)), ..DirConfig::default() };
    let merged = DirConfig::merge(&parent, &child);
    assert_eq!(merged.require_methods, parent.require_methods, "inherited");
    assert_eq!(merged.max_age(), std::time::Duration::from_secs(300));
    let mut own = DirConfig::default();
    apply(
        Target::Section { server: &mut server, dir: &mut own },
        "TwoFactorRequireMethod",
        &["TOTP", "webauthn"],
        Path::new("/"),
    )
    .unwrap();
    let merged = DirConfig::merge(&parent, &own);
    assert_eq!(merged.require_methods, Some(MethodSet::of(&[Method::Totp, Method::WebAuthn])));
}

#[test]
fn notices_follow_the_mail_relay_unless_set() {
    let files = Files::new();
    assert!(!enforced(&files, &["TwoFactorNotify Off"]).unwrap().0.notify);
    let key = files.write("k2", &[9; 32]);
    let without_mail = |extra: &[&str]| {
        let mut lines = vec![
            "TwoFactor On".to_string(),
            format!("TwoFactorSecretKeyFile {key}"),
            "TwoFactorLDAPURL ldap://127.0.0.1/dc=example,dc=test".to_string(),
            "TwoFactorMethods totp recovery".to_string(),
            "TwoFactorEnrollmentProof none".to_string(),
        ];
        lines.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        Settings::resolve(&parse(&refs).unwrap().0, "h")
    };
    assert!(!without_mail(&[]).unwrap().0.notify, "no relay: no notices, and no error");
    let err = without_mail(&["TwoFactorNotify On"]).unwrap_err().to_string();
    assert!(err.starts_with("TwoFactorNotify: On needs TwoFactorSMTPServer"), "{err}");
}

#[test]
fn companion_modules() {
    let files = Files::new();
    let (s, _) = enforced(&files, &["TwoFactorEnrollmentFrom 10.0.0.0/8"]).unwrap();
    let err = s.check_companion_modules(&|_| false).unwrap_err().to_string();
    assert!(err.starts_with("TwoFactorEnrollmentFrom: needs mod_remoteip"), "{err}");
    assert_eq!(s.check_companion_modules(&|m| m == "mod_remoteip.c").unwrap(), Vec::<String>::new());
    let (s, _) = enforced(&files, &[]).unwrap();
    assert!(s.check_companion_modules(&|_| false).unwrap().is_empty(), "no EnrollmentFrom: mod_remoteip not needed");
    let warnings = s.check_companion_modules(&|m| m == "mod_cache.c").unwrap();
    assert!(warnings[0].starts_with("mod_cache is loaded"), "{warnings:?}");
}

#[test]
fn secrets_are_read_without_their_newline_and_never_shown() {
    let files = Files::new();
    let secret = files.write("gw", b"s3cret-value\n");
    let pw = files.write("pw", b"bind-pw\r\n");
    let (s, _) = enforced(
        &files,
        &[
            "TwoFactorProxySecretHeader X-Gateway-Secret",
            &format!("TwoFactorProxySecretFile {secret}"),
            "TwoFactorLDAPBindDN cn=svc,dc=example,dc=test",
            &format!("TwoFactorLDAPBindPasswordFile {pw}"),
        ],
    )
    .unwrap();
    let (header, value) = s.proxy_secret.as_ref().unwrap();
    assert_eq!((header.as_str(), value.expose()), ("X-Gateway-Secret", &b"s3cret-value"[..]));
    assert_eq!(s.ldap.as_ref().unwrap().bind_password.as_ref().unwrap().expose(), b"bind-pw");
    let debug = format!("{s:?}");
    for needle in ["s3cret-value", "bind-pw"] {
        assert!(!debug.contains(needle), "Debug output shows {needle}");
    }
}

#[test]
fn attribute_mapping() {
    let files = Files::new();
    let (s, _) = enforced(
        &files,
        &["TwoFactorAttribute completion extensionAttribute1", "TwoFactorAttribute TOTP extensionAttribute2"],
    )
    .unwrap();
    assert_eq!(s.attribute(Role::Completion), "extensionAttribute1");
    assert_eq!(s.attribute(Role::Totp), "extensionAttribute2");
    assert_eq!(s.attribute(Role::Recovery), "twoFactorRecovery");
}

#[test]
fn the_ad_profile_maps_every_role_and_a_mapping_still_wins() {
    let files = Files::new();
    let (s, _) = enforced(&files, &["TwoFactorDirectory AD", "TwoFactorAttribute failures employeeNumber"]).unwrap();
    assert_eq!(s.directory, DirectoryKind::ActiveDirectory);
    assert_eq!(s.attribute(Role::Completion), "carLicense");
    assert_eq!(s.attribute(Role::WebAuthnPending), "attributeCertificateAttribute");
    assert_eq!(s.attribute(Role::Failures), "employeeNumber");
    let (s, _) = enforced(&files, &[]).unwrap();
    assert_eq!((s.directory, s.attribute(Role::Failures)), (DirectoryKind::OpenLdap, "twoFactorFailures"));
    assert!(!s.accept_unsigned_state);
    // Multi-valued roles on multi-valued attributes, and no attribute twice.
    let mut seen: Vec<&str> = Role::ALL.iter().map(|r| r.ad_attribute()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), Role::ALL.len());
}

#[test]
fn read_urls_are_replicas_of_the_writers_and_keep_their_security() {
    let files = Files::new();
    let (s, _) =
        enforced(&files, &["TwoFactorLDAPReadURL ldap://dc-b/dc=example,dc=test ldap://dc-c/dc=example,dc=test"])
            .unwrap();
    let ldap = s.ldap.unwrap();
    assert_eq!(ldap.read_urls.iter().map(|u| u.host.as_str()).collect::<Vec<_>>(), ["dc-b", "dc-c"]);
    let (s, _) = enforced(&files, &[]).unwrap();
    assert!(s.ldap.unwrap().read_urls.is_empty(), "reads go to the writers by default");
    let other_base = enforced(&files, &["TwoFactorLDAPReadURL ldap://dc-b/dc=other"]).unwrap_err().to_string();
    assert!(other_base.starts_with("TwoFactorLDAPReadURL: must name the same base"), "{other_base}");
    let key = files.write("k2", &[9; 32]);
    let tls = [
        "TwoFactor On".to_string(),
        format!("TwoFactorSecretKeyFile {key}"),
        "TwoFactorLDAPURL ldaps://dc-a/dc=example,dc=test".into(),
        "TwoFactorLDAPReadURL ldap://dc-b/dc=example,dc=test".into(),
    ];
    let refs: Vec<&str> = tls.iter().map(String::as_str).collect();
    let (server, _) = parse(&refs).unwrap();
    let plain = Settings::resolve(&server, "h").unwrap_err().to_string();
    assert!(plain.contains("'ldap://dc-b:389' is plain LDAP while TwoFactorLDAPURL uses ldaps://"), "{plain}");
    let (server, _) = parse(&["TwoFactorLDAPReadURL ldap://dc-b/dc=x"]).unwrap();
    let alone = Settings::resolve(&server, "h").unwrap_err().to_string();
    assert!(alone.contains("needs TwoFactorLDAPURL"), "{alone}");
}

#[test]
fn username_patterns_that_would_exhaust_the_stack_are_refused() {
    // Found by the directive_values fuzz target: stacked repetitions made
    // the regex compiler recurse until the stack overflowed.
    let stacked = format!("a{}", "+".repeat(300));
    let err = UsernamePattern::new(&stacked).unwrap_err();
    assert!(err.starts_with("must be a regular expression"), "{err}");
    let nested = format!("{}a{}", "(".repeat(100), ")".repeat(100));
    assert!(UsernamePattern::new(&nested).is_err());
    assert!(UsernamePattern::new(&"a".repeat(600)).unwrap_err().contains("at most 512 bytes"));
    assert!(UsernamePattern::new("^(?:[a-z]+\\.)?[a-z0-9._-]{1,40}$").is_ok());
}

#[test]
fn the_default_username_pattern_fast_path_agrees_with_its_regex() {
    let fast = UsernamePattern::new(DEFAULT_USERNAME_PATTERN).unwrap();
    let slow = regex::Regex::new(DEFAULT_USERNAME_PATTERN).unwrap();
    let long = "a".repeat(64);
    let too_long = "a".repeat(65);
    let samples = [
        "alice",
        "a",
        "",
        " alice",
        "alice\n",
        "al ice",
        "al,ice",
        "bob@example.org",
        "x.y_z-1",
        "é",
        "a*",
        long.as_str(),
        too_long.as_str(),
    ];
    for s in samples {
        assert_eq!(fast.is_match(s), slow.is_match(s), "{s:?}");
    }
    for b in 0u8..=255 {
        let s = String::from_utf8_lossy(&[b]).into_owned();
        assert_eq!(fast.is_match(&s), slow.is_match(&s), "byte {b}");
    }
}
