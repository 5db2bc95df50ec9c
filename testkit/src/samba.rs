//! A real Active Directory domain controller per test: Samba's AD DC
//! (Debian's `samba`), in a network namespace of its own (its LDAP ports
//! cannot be chosen), reached over LDAPS with a throwaway CA through a
//! relay on 127.0.0.1 at a port chosen at run time (see `netns`).
//!
//! ```text
//! DC=twofactor,DC=test (realm TWOFACTOR.TEST)
//!   CN=Users   alice, bob, carol (mail UID@example.test)
//!              svc-twofactor (the module's service account)
//!              Administrator
//! ```
//!
//! AD's default access rules apply, as on Windows: each user may write the
//! attributes of the property sets SELF may write (Personal-Information:
//! `msDS-cloudExtensionAttribute1`, `telephoneNumber`, ...) on her own
//! entry. The service account may read and write the attributes of
//! `TwoFactorDirectory ad` (`AD_ATTRIBUTES`) and those an earlier guide
//! recommended (`SELF_WRITABLE`), on user objects under CN=Users.
//!
//! Provisioning a domain takes seconds, so it is done once (`samba-tool
//! domain provision`, then `ad/prepare.py` for the users and the rights)
//! into `target/ad-template/KEY`, and every DC starts from a copy of it:
//! well under a second each.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::netns::{Namespace, Relay};
use crate::process::{ServerProcess, POLL_INTERVAL};
use crate::slapd::{expect_success, run_ldap_tool, values_of};
use crate::tls::{self, ServerCert};

pub const REALM: &str = "TWOFACTOR.TEST";
pub const BASE_DN: &str = "DC=twofactor,DC=test";
pub const USERS_DN: &str = "CN=Users,DC=twofactor,DC=test";
const ADMIN_PASSWORD: &str = "Adm1n-Passw0rd!";
const SERVICE_PASSWORD: &str = "Svc-2fa-Passw0rd!";
/// The users of the domain (besides the service account and Administrator).
pub const USERS: [&str; 3] = ["alice", "bob", "carol"];

/// The attributes of `TwoFactorDirectory ad`, role by role (as
/// `twofactor_core::config::Role::ad_attribute` names them; a test in
/// tests/ad_directory.rs keeps the two lists equal).
pub const AD_ATTRIBUTES: [(&str, &str); 8] = [
    ("completion", "carLicense"),
    ("totp", "textEncodedORAddress"),
    ("totp-last", "aCSPolicyName"),
    ("failures", "desktopProfile"),
    ("email-code", "msIIS-FTPDir"),
    ("recovery", "labeledURI"),
    ("webauthn", "x500uniqueIdentifier"),
    ("webauthn-pending", "attributeCertificateAttribute"),
];

/// Attributes that a user may write on her own entry by AD's default
/// rules (Personal-Information, Web-Information): those an earlier version
/// of the operations guide recommended for the single-valued roles, and
/// two multi-valued ones of the same kind. The service account may write
/// them too, for the tests that show what signed values do where the
/// mapping is unsafe.
pub const SELF_WRITABLE: [&str; 6] = [
    "msDS-cloudExtensionAttribute1",
    "msDS-cloudExtensionAttribute2",
    "msDS-cloudExtensionAttribute3",
    "msDS-cloudExtensionAttribute4",
    "url",
    "userSharedFolderOther",
];

const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Bumped when what the template holds changes.
const TEMPLATE_VERSION: u32 = 1;

pub struct SambaDc {
    /// `ldaps://127.0.0.1:PORT` (the relay).
    pub url: String,
    pub port: u16,
    pub base_dn: String,
    /// `CN=Users,DC=twofactor,DC=test`: where the users are.
    pub people_dn: String,
    pub admin_dn: String,
    pub admin_password: String,
    /// `CN=svc-twofactor,CN=Users,DC=twofactor,DC=test`
    pub service_dn: String,
    pub service_password: String,
    /// The CA that signed the DC's certificate (for 127.0.0.1).
    pub ca_cert: PathBuf,
    /// The DC's files (a copy of the template) and its log.
    pub dir: PathBuf,
    process: Option<ServerProcess>,
    // Drop order: the relay before the namespace it connects into.
    _relay: Relay,
    namespace: Namespace,
}

impl SambaDc {
    /// A DC of its own in `dir/ad`, started and answering LDAPS. Panics on failure.
    pub fn start(dir: &Path) -> SambaDc {
        let template = template();
        let root = dir.join("ad");
        fs::create_dir_all(&root).expect("create the DC's directory");
        let copied = Command::new("cp").arg("-a").arg(template.join("dc")).arg(&root).status();
        assert!(copied.is_ok_and(|s| s.success()), "cannot copy the AD template {}", template.display());
        let data = root.join("dc");
        let cert = tls::ca_and_server_cert(&root.join("tls"));
        // Samba refuses a private key that others may read.
        fs::set_permissions(&cert.key, fs::Permissions::from_mode(0o600)).expect("chmod the DC's key");
        fs::write(data.join("etc/smb.conf"), smb_conf(&data, &cert)).expect("write smb.conf");
        for sub in ["run", "ncalrpc", "winbindd", "ntp_signd"] {
            fs::create_dir_all(data.join(sub)).expect("create a Samba directory");
        }
        let namespace = Namespace::new();
        let relay = Relay::start(&namespace, SocketAddr::from(([127, 0, 0, 1], 636)));
        let port = relay.port;
        let mut dc = SambaDc {
            url: format!("ldaps://127.0.0.1:{port}"),
            port,
            base_dn: BASE_DN.into(),
            people_dn: USERS_DN.into(),
            admin_dn: format!("CN=Administrator,{USERS_DN}"),
            admin_password: ADMIN_PASSWORD.into(),
            service_dn: format!("CN=svc-twofactor,{USERS_DN}"),
            service_password: SERVICE_PASSWORD.into(),
            ca_cert: cert.ca_cert.clone(),
            dir: data,
            process: None,
            _relay: relay,
            namespace,
        };
        dc.start_again();
        dc
    }

    /// Starts the DC again (same data, same relay port) after `stop` or `kill`.
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "samba is still running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("samba.log"))
            .expect("open the samba log");
        let mut command = self.namespace.command("samba");
        command
            .arg("-s")
            .arg(self.dir.join("etc/smb.conf"))
            .args(["--foreground", "--no-process-group", "-M", "single", "--debug-stdout"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the samba log"))
            .stderr(log);
        let mut process = ServerProcess::spawn("samba", command).expect("start samba (apt-get install samba)");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = process.exit_status() {
                panic!(
                    "samba exited ({status}):\n{}",
                    fs::read_to_string(self.dir.join("samba.log")).unwrap_or_default()
                );
            }
            let probe = self.tool(
                "ldapsearch",
                &self.admin_dn,
                ADMIN_PASSWORD,
                &["-s", "base", "-b", "", "(objectClass=*)", "dnsHostName"],
                "",
            );
            if probe.status.success() {
                break;
            }
            if Instant::now() >= deadline {
                process.stop();
                panic!(
                    "samba did not answer LDAPS within {START_TIMEOUT:?}: {}",
                    String::from_utf8_lossy(&probe.stderr)
                );
            }
            std::thread::sleep(POLL_INTERVAL * 5);
        }
        self.process = Some(process);
    }

    /// SIGTERM and wait. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// SIGKILL and wait.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGSTOP: the DC keeps its connections but answers nothing.
    pub fn pause(&self) {
        self.process.as_ref().expect("samba is not running").signal(libc::SIGSTOP);
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        self.process.as_ref().expect("samba is not running").signal(libc::SIGCONT);
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(ServerProcess::is_running)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// `CN=UID,CN=Users,DC=twofactor,DC=test`
    pub fn user_dn(&self, uid: &str) -> String {
        format!("CN={uid},{USERS_DN}")
    }

    /// A user's AD password (the domain's complexity rules hold).
    pub fn user_password(&self, uid: &str) -> String {
        user_password(uid)
    }

    /// The attribute that holds `role` under `TwoFactorDirectory ad`.
    pub fn attribute(role: &str) -> &'static str {
        AD_ATTRIBUTES.iter().find(|(r, _)| *r == role).map_or("", |(_, a)| a)
    }

    fn tool(&self, tool: &str, bind_dn: &str, password: &str, args: &[&str], stdin: &str) -> Output {
        run_ldap_tool(&self.url, Some(&self.ca_cert), tool, bind_dn, password, args, stdin)
    }

    /// ldapmodify as Administrator; panics with its stderr on failure.
    pub fn modify_ldif(&self, ldif: &str) {
        let out = self.tool("ldapmodify", &self.admin_dn, ADMIN_PASSWORD, &[], ldif);
        expect_success("ldapmodify", ldif, &out);
    }

    /// ldapmodify bound as `bind_dn`: Ok(stdout) or Err(stderr).
    pub fn modify_ldif_as(&self, bind_dn: &str, password: &str, ldif: &str) -> Result<String, String> {
        let out = self.tool("ldapmodify", bind_dn, password, &[], ldif);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `ldapsearch -LLL` of the entry `dn` bound as `bind_dn`: Ok(stdout) or Err(stderr).
    pub fn read_as(&self, bind_dn: &str, password: &str, dn: &str, attrs: &[&str]) -> Result<String, String> {
        let mut args = vec!["-LLL", "-o", "ldif-wrap=no", "-s", "base", "-b", dn, "(objectClass=*)"];
        args.extend_from_slice(attrs);
        let out = self.tool("ldapsearch", bind_dn, password, &args, "");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The values of `attr` in the entry `dn`, read as Administrator.
    pub fn attr_values(&self, dn: &str, attr: &str) -> Vec<String> {
        let out = self
            .read_as(&self.admin_dn, ADMIN_PASSWORD, dn, &[attr])
            .unwrap_or_else(|e| panic!("ldapsearch of {dn} failed: {e}"));
        values_of(&out, attr, dn)
    }

    /// The DC's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("samba.log")).unwrap_or_default()
    }
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `Alice-Passw0rd!` for alice: long enough, and of every class AD's
/// default complexity rule asks for.
pub fn user_password(uid: &str) -> String {
    let mut name = uid.to_string();
    if let Some(first) = name.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    format!("{name}-Passw0rd!")
}

fn smb_conf(data: &Path, cert: &ServerCert) -> String {
    let d = data.display();
    format!(
        "[global]\n\
         \tnetbios name = DC1\n\
         \trealm = {REALM}\n\
         \tworkgroup = TWOFACTOR\n\
         \tserver role = active directory domain controller\n\
         \tserver services = ldap\n\
         \tinterfaces = lo\n\
         \tbind interfaces only = yes\n\
         \tprivate dir = {d}/private\n\
         \tlock directory = {d}\n\
         \tstate directory = {d}/state\n\
         \tcache directory = {d}/cache\n\
         \tbinddns dir = {d}/bind-dns\n\
         \tpid directory = {d}/run\n\
         \tncalrpc dir = {d}/ncalrpc\n\
         \twinbindd socket directory = {d}/winbindd\n\
         \tntp signd socket directory = {d}/ntp_signd\n\
         \tlogging = file\n\
         \tlog file = {d}/log.%m\n\
         \tlog level = 1\n\
         \ttls enabled = yes\n\
         \ttls keyfile = {key}\n\
         \ttls certfile = {crt}\n\
         \ttls cafile = {ca}\n\
         [sysvol]\n\
         \tpath = {d}/state/sysvol\n\
         \tread only = No\n",
        key = cert.key.display(),
        crt = cert.cert.display(),
        ca = cert.ca_cert.display(),
    )
}

/// The provisioned domain every DC copies, made on first use (by one
/// process at a time: a lock file) and kept for later runs.
fn template() -> PathBuf {
    let base = crate::repo_root().join("target/ad-template");
    fs::create_dir_all(&base).expect("create target/ad-template");
    let prepare = crate::repo_root().join("testkit/ad/prepare.py");
    let script = fs::read(&prepare).expect("read testkit/ad/prepare.py");
    let key = {
        let mut input = script.clone();
        input.extend_from_slice(format!("{TEMPLATE_VERSION}{AD_ATTRIBUTES:?}{SELF_WRITABLE:?}{USERS:?}").as_bytes());
        let digest = ring::digest::digest(&ring::digest::SHA256, &input);
        digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let ready = base.join(&key);
    let lock = fs::File::create(base.join(".lock")).expect("create the template's lock file");
    // SAFETY: flock(2) on a file this function holds open; released when it is closed.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(locked, 0, "cannot lock the AD template");
    if !ready.join("ready").exists() {
        provision(&base.join(format!("{key}.new")), &prepare);
        let _ = fs::remove_dir_all(&ready);
        fs::rename(base.join(format!("{key}.new")), &ready).expect("move the new AD template in place");
    }
    drop(lock);
    ready
}

fn provision(into: &Path, prepare: &Path) {
    let _ = fs::remove_dir_all(into);
    let started = Instant::now();
    let target = format!("--targetdir={}", into.join("dc").display());
    let out = Command::new("samba-tool")
        .args(["domain", "provision", &target, "--realm", REALM, "--domain", "TWOFACTOR", "--host-name", "dc1"])
        .args(["--server-role", "dc", "--dns-backend", "NONE", "--host-ip", "127.0.0.1"])
        .arg(format!("--adminpass={ADMIN_PASSWORD}"))
        .args(["--option", "interfaces=lo", "--option", "bind interfaces only=yes"])
        .output()
        .expect("run samba-tool (apt-get install samba samba-ad-provision)");
    assert!(out.status.success(), "samba-tool domain provision failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let mut command = Command::new("/usr/bin/python3");
    command.arg(prepare).arg(into.join("dc/etc/smb.conf")).arg(SERVICE_PASSWORD);
    command.args(AD_ATTRIBUTES.iter().map(|(_, a)| *a)).args(SELF_WRITABLE).arg("--");
    command.args(USERS.iter().map(|u| format!("{u}:{}:{u}@example.test", user_password(u))));
    let out = command.output().expect("run testkit/ad/prepare.py");
    assert!(out.status.success(), "prepare.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    fs::File::create(into.join("ready")).and_then(|mut f| f.flush()).expect("mark the template ready");
    eprintln!("samba: provisioned the AD template in {:.1} s", started.elapsed().as_secs_f64());
}
