//! Every directive through a real `apache2 -t`: good values pass, bad ones
//! fail with one line naming the directive, the value and what is allowed;
//! combinations that cannot work are refused by the configuration check.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::fs;
use std::path::Path;

use testkit::apache::{config_test, ApacheOptions};
use testkit::process::test_dir;
use testkit::stack::random_bytes;

/// A complete, valid enforcing configuration; `{root}` is the server root.
fn base(root: &Path) -> String {
    format!(
        "TwoFactorTrustedProxy 127.0.0.1\n\
         TwoFactorSecretKeyFile {root}/key\n\
         TwoFactorLDAPURL ldap://127.0.0.1:389/ou=people,dc=example,dc=test?uid?sub\n\
         TwoFactorSMTPServer smtp://127.0.0.1:25\n\
         TwoFactorMailFrom 2fa@example.test\n\
         <Location /app>\n  TwoFactor On\n</Location>\n",
        root = root.display()
    )
}

fn fixture_files(root: &Path) {
    fs::create_dir_all(root).unwrap();
    fs::write(root.join("key"), random_bytes(32)).unwrap();
    fs::write(root.join("old.key"), random_bytes(48)).unwrap();
    fs::write(root.join("short.key"), random_bytes(16)).unwrap();
    fs::write(root.join("secret.txt"), "gateway-shared-secret\n").unwrap();
    fs::write(root.join("bind.pw"), "service-password\n").unwrap();
    fs::write(root.join("smtp.pw"), "smtp-password\n").unwrap();
    fs::write(root.join("ca.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
}

/// (good configuration lines, bad line, text the error must contain)
const CASES: &[(&str, &str, &str)] = &[
    ("<Location /x>\nTwoFactor Off\n</Location>", "TwoFactor Maybe", "TwoFactor: invalid value 'Maybe': must be On or Off"),
    ("TwoFactorUserHeader X-Forwarded-User", "TwoFactorUserHeader X:User", "TwoFactorUserHeader: invalid value 'X:User': must be an HTTP header name"),
    ("TwoFactorUsernamePattern ^[a-z]{1,20}$", "TwoFactorUsernamePattern [a-z", "TwoFactorUsernamePattern: invalid value '[a-z': must be a regular expression"),
    ("TwoFactorSessionBinding header\nTwoFactorSessionHeader X-PCS-Session", "TwoFactorSessionBinding ip", "TwoFactorSessionBinding: invalid value 'ip': must be cookie, header or none"),
    ("TwoFactorCookieName TF_SESSION", "TwoFactorCookieName a=b", "TwoFactorCookieName: invalid value 'a=b': must be a cookie name"),
    ("TwoFactorSessionHeader X-PCS-Session", "TwoFactorSessionHeader \"X PCS\"", "TwoFactorSessionHeader: invalid value 'X PCS': must be an HTTP header name"),
    ("TwoFactorTrustedProxy 10.0.0.0/8 2001:db8::/32 192.0.2.7", "TwoFactorTrustedProxy 10.0.0.0/33", "TwoFactorTrustedProxy: invalid value '10.0.0.0/33': must be an IP address or a CIDR network"),
    ("TwoFactorProxySecretHeader X-Gateway-Secret\nTwoFactorProxySecretFile {root}/secret.txt", "TwoFactorProxySecretHeader X-A X-B", "TwoFactorProxySecretHeader: takes exactly one argument, got 2"),
    ("TwoFactorProxySecretHeader X-Gateway-Secret\nTwoFactorProxySecretFile secret.txt", "TwoFactorProxySecretFile", "TwoFactorProxySecretFile: takes exactly one argument, got 0"),
    ("<Location /legacy>\nTwoFactorStrictPath Off\n</Location>", "TwoFactorStrictPath maybe", "TwoFactorStrictPath: invalid value 'maybe': must be On or Off"),
    ("TwoFactorChallengeURL /auth/second-factor/", "TwoFactorChallengeURL /a/../b", "TwoFactorChallengeURL: invalid value '/a/../b': must be an absolute URL path"),
    ("TwoFactorSecretKeyFile {root}/key {root}/old.key", "TwoFactorSecretKeyFile", "TwoFactorSecretKeyFile: takes at least one argument"),
    ("TwoFactorLDAPURL ldap://127.0.0.1:1389/dc=x?uid ldap://127.0.0.1:2389/dc=x?uid", "TwoFactorLDAPURL ldap.example.org", "TwoFactorLDAPURL: invalid value 'ldap.example.org': must be an LDAP URL"),
    ("TwoFactorLDAPReadURL ldap://127.0.0.1:3389/ou=people,dc=example,dc=test?uid", "TwoFactorLDAPReadURL dc2.example.org", "TwoFactorLDAPReadURL: invalid value 'dc2.example.org': must be an LDAP URL"),
    ("TwoFactorDirectory ad", "TwoFactorDirectory edirectory", "TwoFactorDirectory: invalid value 'edirectory': must be openldap or ad"),
    ("TwoFactorAcceptUnsignedState On", "TwoFactorAcceptUnsignedState maybe", "TwoFactorAcceptUnsignedState: invalid value 'maybe': must be On or Off"),
    ("TwoFactorLDAPBindDN cn=svc,dc=example,dc=test\nTwoFactorLDAPBindPasswordFile {root}/bind.pw", "TwoFactorLDAPBindDN service", "TwoFactorLDAPBindDN: invalid value 'service': must be a distinguished name"),
    ("TwoFactorLDAPBindDN cn=svc,dc=example,dc=test\nTwoFactorLDAPBindPasswordFile bind.pw", "TwoFactorLDAPBindPasswordFile a b", "TwoFactorLDAPBindPasswordFile: takes exactly one argument, got 2"),
    ("TwoFactorLDAPStartTLS On", "TwoFactorLDAPStartTLS yes", "TwoFactorLDAPStartTLS: invalid value 'yes': must be On or Off"),
    ("TwoFactorLDAPCACertificate {root}/ca.pem", "TwoFactorLDAPCACertificate", "TwoFactorLDAPCACertificate: takes exactly one argument, got 0"),
    ("TwoFactorLDAPTimeout 2s", "TwoFactorLDAPTimeout 10m", "TwoFactorLDAPTimeout: invalid value '10m': must be a duration from 1s to 5m"),
    ("<Location /app>\nTwoFactorMaxAge 12h\n</Location>", "TwoFactorMaxAge forever", "TwoFactorMaxAge: invalid value 'forever': must be a duration such as 90s, 10m, 8h, 30d or plain seconds"),
    ("TwoFactorCacheTTL 0", "TwoFactorCacheTTL 2h", "TwoFactorCacheTTL: invalid value '2h': must be a duration from 0 to 1h"),
    ("TwoFactorMethods totp recovery\nTwoFactorEnrollmentProof none", "TwoFactorMethods totp sms", "TwoFactorMethods: invalid value 'sms': must be totp, email, recovery or webauthn"),
    ("<Location /admin>\nTwoFactorRequireMethod webauthn\n</Location>", "TwoFactorRequireMethod sms", "TwoFactorRequireMethod: invalid value 'sms': must be totp, email, recovery or webauthn"),
    ("TwoFactorWebAuthnOrigin https://vpn.example.org", "TwoFactorWebAuthnOrigin https://10.1.2.3", "TwoFactorWebAuthnOrigin: invalid value 'https://10.1.2.3': must be an origin such as https://gateway.example.org[:port]"),
    ("TwoFactorWebAuthnOrigin https://vpn.example.org\nTwoFactorWebAuthnRPID example.org", "TwoFactorWebAuthnRPID 10.1.2.3", "TwoFactorWebAuthnRPID: invalid value '10.1.2.3': must be a domain name"),
    ("TwoFactorRecoveryCodes Off", "TwoFactorRecoveryCodes 0", "TwoFactorRecoveryCodes: invalid value '0': must be an integer from 1 to 50, or Off"),
    ("TwoFactorTOTPSkew 90s", "TwoFactorTOTPSkew 6m", "TwoFactorTOTPSkew: invalid value '6m': must be a duration from 0 to 5m"),
    ("TwoFactorTOTPDefaults algorithm=SHA256 digits=8 period=60", "TwoFactorTOTPDefaults digits=7", "TwoFactorTOTPDefaults: invalid value 'digits=7': digits must be 4, 6, 8 or 10"),
    ("TwoFactorTOTPIssuer \"Example Lab\"", "TwoFactorTOTPIssuer Lab:VPN", "TwoFactorTOTPIssuer: invalid value 'Lab:VPN': must not contain ':'"),
    ("TwoFactorMaxAttempts 3", "TwoFactorMaxAttempts 21", "TwoFactorMaxAttempts: invalid value '21': must be an integer from 1 to 20"),
    ("TwoFactorAutoUnlock Off", "TwoFactorAutoUnlock 5m", "TwoFactorAutoUnlock: invalid value '5m': must be a duration from 10m to 90d, or Off"),
    ("TwoFactorEnrollment Off", "TwoFactorEnrollment sometimes", "TwoFactorEnrollment: invalid value 'sometimes': must be On or Off"),
    ("LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so\nTwoFactorEnrollmentFrom 192.168.0.0/16 10.0.0.0/8", "TwoFactorEnrollmentFrom intranet", "TwoFactorEnrollmentFrom: invalid value 'intranet': must be an IP address or a CIDR network"),
    ("TwoFactorEnrollmentProof none", "TwoFactorEnrollmentProof sms", "TwoFactorEnrollmentProof: invalid value 'sms': must be email or none"),
    ("TwoFactorRegistrationMessage \"Use the token from the IT desk.\"", "TwoFactorRegistrationMessage", "TwoFactorRegistrationMessage: takes exactly one argument, got 0"),
    ("TwoFactorSMTPServer smtp://relay.example.test:587?tls=starttls", "TwoFactorSMTPServer mail.example.org", "TwoFactorSMTPServer: invalid value 'mail.example.org': must be smtp://host"),
    ("TwoFactorSMTPServer smtps://2fa@relay.example.test\nTwoFactorSMTPPasswordFile {root}/smtp.pw", "TwoFactorSMTPPasswordFile a b", "TwoFactorSMTPPasswordFile: takes exactly one argument, got 2"),
    ("TwoFactorMailFrom \"Sign-in <2fa@example.test>\"", "TwoFactorMailFrom nobody", "TwoFactorMailFrom: invalid value 'nobody': must be an e-mail address"),
    ("TwoFactorMailAttribute userPrincipalName", "TwoFactorMailAttribute 9mail", "TwoFactorMailAttribute: invalid value '9mail': must be an LDAP attribute name"),
    ("TwoFactorEmailCodeTTL 5m", "TwoFactorEmailCodeTTL 30s", "TwoFactorEmailCodeTTL: invalid value '30s': must be a duration from 1m to 24h"),
    ("TwoFactorEmailResendInterval 30s", "TwoFactorEmailResendInterval 2h", "TwoFactorEmailResendInterval: invalid value '2h': must be a duration from 0 to 1h"),
    ("TwoFactorSMTPServer smtps://relay.example.test\nTwoFactorSMTPCACertificate {root}/ca.pem", "TwoFactorSMTPCACertificate", "TwoFactorSMTPCACertificate: takes exactly one argument, got 0"),
    ("TwoFactorNotify Off", "TwoFactorNotify sometimes", "TwoFactorNotify: invalid value 'sometimes': must be On or Off"),
    ("TwoFactorAttribute completion extensionAttribute1", "TwoFactorAttribute lastlogon x", "TwoFactorAttribute: invalid value 'lastlogon': the role must be completion, totp, totp-last, failures, email-code, recovery, webauthn or webauthn-pending"),
];

#[test]
fn every_directive_accepts_good_values_and_names_bad_ones() {
    let dir = test_dir("twofactor-config");
    let root = dir.path();
    fixture_files(root);
    let options = ApacheOptions::default();
    let mut covered = Vec::new();
    for (good, bad, expected) in CASES {
        let good = good.replace("{root}", &root.display().to_string());
        let (ok, out) = config_test(root, &options, &format!("{}{good}\n", base(root)));
        assert!(ok, "good value refused:\n{good}\n---\n{out}");

        let (ok, out) = config_test(root, &options, &format!("{}{bad}\n", base(root)));
        assert!(!ok, "bad value accepted: {bad}");
        assert!(out.contains(expected), "{bad}: expected {expected:?} in:\n{out}");
        // One line names the directive: Apache's "Syntax error on line N" line precedes it.
        assert!(out.contains("Syntax error on line"), "{bad}: not reported as a syntax error:\n{out}");
        covered.push(bad.split_whitespace().next().unwrap().to_string());
    }
    for name in twofactor_core::config::directives::ALL.iter().map(|(n, _)| n) {
        assert!(covered.iter().any(|c| c == name), "{name} is not exercised by this test");
    }
}

#[test]
fn server_only_directives_are_refused_inside_sections() {
    let dir = test_dir("twofactor-config-scope");
    let root = dir.path();
    fixture_files(root);
    let (ok, out) = config_test(
        root,
        &ApacheOptions::default(),
        &format!("{}<Location /x>\nTwoFactorUserHeader X-User\n</Location>\n", base(root)),
    );
    assert!(!ok);
    assert!(out.contains("TwoFactorUserHeader not allowed in <Location> context"), "{out}");
}

/// Combinations caught by the configuration check, with `apachectl -t` too.
#[test]
fn cross_directive_problems_fail_the_configuration_check() {
    let dir = test_dir("twofactor-config-cross");
    let root = dir.path();
    fixture_files(root);
    let r = root.display().to_string();
    let on = "<Location /app>\nTwoFactor On\n</Location>\n";
    let cases: Vec<(String, &str)> = vec![
        (on.to_string(), "mod_twofactor: main server: TwoFactorSecretKeyFile: is required when TwoFactor On is used"),
        (
            format!("{on}TwoFactorSecretKeyFile {r}/missing.key\n"),
            "TwoFactorSecretKeyFile: cannot read '",
        ),
        (
            format!("{on}TwoFactorSecretKeyFile {r}/short.key\n"),
            "holds 16 bytes; at least 32 random bytes are needed",
        ),
        (
            format!("{on}TwoFactorSecretKeyFile {r}/key\n"),
            "TwoFactorLDAPURL: is required when TwoFactor On is used",
        ),
        (
            format!("{}TwoFactorLDAPBindDN cn=svc,dc=example,dc=test\nTwoFactorLDAPBindPasswordFile {r}/nope.pw\n", base(root)),
            "TwoFactorLDAPBindPasswordFile: cannot read '",
        ),
        (
            format!("{}TwoFactorLDAPBindDN cn=svc,dc=example,dc=test\n", base(root)),
            "TwoFactorLDAPBindPasswordFile: is required with TwoFactorLDAPBindDN",
        ),
        (
            format!("{}TwoFactorLDAPReadURL ldap://127.0.0.1:3389/dc=elsewhere\n", base(root)),
            "TwoFactorLDAPReadURL: must name the same base, attribute, scope and filter as TwoFactorLDAPURL",
        ),
        (
            format!("{}TwoFactorMethods totp webauthn\n", base(root)),
            "TwoFactorWebAuthnOrigin: is required: TwoFactorMethods includes webauthn",
        ),
        (
            format!("{}TwoFactorWebAuthnOrigin https://vpn.example.org\nTwoFactorWebAuthnRPID example.com\n", base(root)),
            "TwoFactorWebAuthnRPID: 'example.com' is not the host of TwoFactorWebAuthnOrigin 'https://vpn.example.org'",
        ),
        (
            format!("{}TwoFactorSessionBinding header\n", base(root)),
            "TwoFactorSessionHeader: is required with TwoFactorSessionBinding header",
        ),
        (
            format!("{}TwoFactorProxySecretHeader X-Gateway-Secret\n", base(root)),
            "TwoFactorProxySecretFile: is required with TwoFactorProxySecretHeader",
        ),
        (
            format!("{}TwoFactorLDAPCACertificate {r}/key\n", base(root)),
            "holds no PEM certificate",
        ),
        (
            format!(
                "{on}TwoFactorSecretKeyFile {r}/key\nTwoFactorLDAPURL ldap://127.0.0.1/dc=x\nTwoFactorTrustedProxy 127.0.0.1\n"
            ),
            "TwoFactorSMTPServer: is required: emailed passcodes are offered",
        ),
        (
            format!("Listen 127.0.0.1:1\n<VirtualHost 127.0.0.1:1>\nServerName vhost.example.test\n{on}</VirtualHost>\n"),
            "mod_twofactor: <VirtualHost> at ",
        ),
        (
            format!("{}TwoFactorEnrollmentFrom 10.0.0.0/8\n", base(root)),
            "TwoFactorEnrollmentFrom: needs mod_remoteip (a2enmod remoteip), with RemoteIPHeader X-Forwarded-For",
        ),
    ];
    for (body, expected) in cases {
        let (ok, out) = config_test(root, &ApacheOptions::default(), &body);
        assert!(!ok, "accepted:\n{body}");
        assert!(out.contains(expected), "expected {expected:?} for:\n{body}\n---\n{out}");
        assert!(out.contains("Configuration check failed"), "{out}");
    }
}

#[test]
fn missing_trusted_proxy_is_a_warning_not_an_error() {
    let dir = test_dir("twofactor-config-warn");
    let root = dir.path();
    fixture_files(root);
    let body = base(root).replace("TwoFactorTrustedProxy 127.0.0.1\n", "");
    let (ok, out) = config_test(root, &ApacheOptions::default(), &body);
    assert!(ok, "{out}");
    assert!(
        out.contains("TwoFactorTrustedProxy: not set, so every request where TwoFactor is On will be refused"),
        "{out}"
    );
}

#[test]
fn secrets_never_appear_in_configuration_messages() {
    let dir = test_dir("twofactor-config-secrets");
    let root = dir.path();
    fixture_files(root);
    let body = format!(
        "{}TwoFactorProxySecretHeader X-Gateway-Secret\nTwoFactorProxySecretFile {}/secret.txt\nTwoFactorMaxAttempts 99\n",
        base(root),
        root.display()
    );
    let (ok, out) = config_test(root, &ApacheOptions::default(), &body);
    assert!(!ok);
    assert!(!out.contains("gateway-shared-secret"), "{out}");
}

/// Inside `<Limit>` a directive would silently apply to every method.
#[test]
fn directives_are_refused_inside_limit_sections() {
    let dir = test_dir("twofactor-config-limit");
    let root = dir.path();
    fixture_files(root);
    for (section, line) in [
        ("Limit GET", "TwoFactor On"),
        ("LimitExcept POST", "TwoFactor On"),
        ("Limit POST", "TwoFactorMaxAge 5m"),
        ("Limit GET", "TwoFactorStrictPath Off"),
    ] {
        let tag = section.split_whitespace().next().unwrap();
        let body = format!("{}<Location /admin>\n<{section}>\n{line}\n</{tag}>\n</Location>\n", base(root));
        let (ok, out) = config_test(root, &ApacheOptions::default(), &body);
        assert!(!ok, "accepted:\n{body}");
        let name = line.split_whitespace().next().unwrap();
        assert!(out.contains(&format!("{name}: not allowed inside <Limit> or <LimitExcept>")), "{out}");
    }
}

/// With mod_cache loaded, the operator is told what the module does about it.
#[test]
fn mod_cache_gets_a_start_up_warning() {
    let dir = test_dir("twofactor-config-cache");
    let root = dir.path();
    fixture_files(root);
    let body = format!("LoadModule cache_module /usr/lib/apache2/modules/mod_cache.so\n{}", base(root));
    let (ok, out) = config_test(root, &ApacheOptions::default(), &body);
    assert!(ok, "{out}");
    assert!(out.contains("mod_cache is loaded: responses where TwoFactor is On are never stored"), "{out}");
    let (ok, out) = config_test(root, &ApacheOptions::default(), &base(root));
    assert!(ok && !out.contains("mod_cache"), "{out}");
}
