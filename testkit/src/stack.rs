//! The whole picture of SPEC §4 for one test: the directory (slapd, or a
//! Samba AD domain controller), smtp-sink, an echo backend, the protected
//! Apache with the module, and the stand-in gateway in front of it.

use std::fs;
use std::path::PathBuf;

use crate::apache::{gateway_body, write_htpasswd, Apache, ApacheOptions};
use crate::backend::EchoBackend;
use crate::directory::{Kind, TestDirectory};
use crate::process::test_dir;
use crate::slapd::Slapd;
use crate::smtp::SmtpSink;

/// First-factor passwords of the gateway's users.
pub const USERS: &[(&str, &str)] = &[("alice", "alice-pw"), ("bob", "bob-pw"), ("carol", "carol-pw")];

pub struct StackOptions {
    /// Directives appended to the protected server's configuration;
    /// `{ldap_url}` stands for the directory's `ldap[s]://127.0.0.1:PORT`,
    /// `{user_url}` for the whole URL of TwoFactorLDAPURL, `{gateway_port}`
    /// for the port the gateway will listen on.
    pub extra: String,
    /// Start the stand-in gateway in front of the protected server.
    pub gateway: bool,
    pub apache: ApacheOptions,
    /// `None`: as the environment says (`directory::Kind::from_environment`).
    pub directory: Option<Kind>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions { extra: String::new(), gateway: true, apache: ApacheOptions::default(), directory: None }
    }
}

pub struct Stack {
    // Field order is drop order: front to back, the directory last.
    pub gateway: Option<Apache>,
    pub protected: Apache,
    pub backend: EchoBackend,
    pub smtp: SmtpSink,
    pub directory: TestDirectory,
    pub key_file: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Stack {
    pub fn start(options: StackOptions) -> Stack {
        let dir = test_dir("twofactor-stack");
        let directory = TestDirectory::start(options.directory.unwrap_or_else(Kind::from_environment), dir.path());
        let smtp = SmtpSink::start(dir.path());
        let backend = EchoBackend::start();
        let root = dir.path().join("protected");
        fs::create_dir_all(&root).expect("protected dir");
        let key_file = root.join("twofactor.key");
        fs::write(&key_file, random_bytes(32)).expect("key file");
        fs::write(root.join("bind.pw"), format!("{}\n", directory.service_password())).expect("bind password");
        // The protected server may name the gateway's origin (passkeys are
        // bound to it): the gateway's port is chosen first.
        let gateway_port = crate::process::free_port();
        let extra = options.extra.replace("{gateway_port}", &gateway_port.to_string());
        let body = protected_body(&root, &directory, &smtp, &backend, &extra);
        let protected = Apache::start(&root, options.apache.clone(), &body);
        let gateway = options.gateway.then(|| {
            let groot = dir.path().join("gateway");
            fs::create_dir_all(&groot).expect("gateway dir");
            write_htpasswd(&groot.join("htpasswd"), USERS);
            let body = gateway_body(&groot, protected.port);
            let gateway_options = ApacheOptions { with_module: false, ..ApacheOptions::default() };
            Apache::start_on(&groot, gateway_options, &body, gateway_port)
        });
        Stack { gateway, protected, backend, smtp, directory, key_file, dir }
    }

    pub fn gateway_port(&self) -> u16 {
        self.gateway.as_ref().expect("stack started without a gateway").port
    }
}

/// The protected server: /app proxied to the backend under `TwoFactor On`,
/// /public proxied without it, the challenge at /2fa/.
pub fn protected_body(
    root: &std::path::Path,
    directory: &TestDirectory,
    smtp: &SmtpSink,
    backend: &EchoBackend,
    extra: &str,
) -> String {
    let directives = directory.directives(&root.join("bind.pw"));
    body(root, &directives, (directory.url(), &directory.user_url()), smtp, backend, extra)
}

/// `protected_body` for a slapd of the test's own (replication tests).
pub fn slapd_protected_body(
    root: &std::path::Path,
    slapd: &Slapd,
    smtp: &SmtpSink,
    backend: &EchoBackend,
    extra: &str,
) -> String {
    body(root, &slapd.directives(&root.join("bind.pw")), (&slapd.url, &slapd.user_url()), smtp, backend, extra)
}

fn body(
    root: &std::path::Path,
    directives: &str,
    (ldap_url, user_url): (&str, &str),
    smtp: &SmtpSink,
    backend: &EchoBackend,
    extra: &str,
) -> String {
    // Tests name the directory's URL before it has a port.
    let extra = extra.replace("{ldap_url}", ldap_url).replace("{user_url}", user_url);
    let root = root.display();
    let b = backend.port;
    format!(
        r#"TwoFactorTrustedProxy 127.0.0.1
TwoFactorSecretKeyFile {root}/twofactor.key
{directives}TwoFactorSMTPServer smtp://127.0.0.1:{smtp}
TwoFactorMailFrom 2fa@example.test
ProxyPass /app http://127.0.0.1:{b}/app
ProxyPass /public http://127.0.0.1:{b}/public
<Location /app>
  TwoFactor On
</Location>
<Location /2fa>
  SetHandler twofactor-challenge
</Location>
{extra}
"#,
        smtp = smtp.port,
    )
}

/// Random bytes from the kernel, for key files.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let mut f = fs::File::open("/dev/urandom").expect("/dev/urandom");
    std::io::Read::read_exact(&mut f, &mut buf).expect("read /dev/urandom");
    buf
}
