//! A real OpenLDAP slapd per test, on a loopback port chosen at run time,
//! with the repository's twofactor schema and a small directory:
//!
//! ```text
//! dc=example,dc=test
//!   ou=people   uid=alice, uid=bob (inetOrgPerson + twoFactorUser),
//!               uid=carol (inetOrgPerson only), uid=dup
//!   ou=others   uid=dup (a second entry with the same uid)
//!   ou=services cn=twofactor (the module's service account)
//! ```
//!
//! ACLs: the service account reads everything but passwords and writes
//! objectClass and the six twoFactor* attributes of entries under ou=people;
//! users' passwords are usable for simple binds only (anonymous auth); the
//! admin (rootdn) bypasses ACLs. The ldap* client tools are run with
//! LDAPNOINIT=1 so that no ldap.conf or ~/.ldaprc changes their behaviour.
//!
//! `Slapd::start_tls` also gives slapd a server certificate from a throwaway
//! CA (see `tls`): its `ldap://` listener then accepts StartTLS, and a second
//! listener speaks `ldaps://`. TLS is optional on both (no `security`
//! directive), so the ldap* tools keep working over plain `ldap://`.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::process::{free_port, wait_for_port, ServerProcess, POLL_INTERVAL};
use crate::tls::{self, ServerCert};

/// The attributes that the module writes.
pub const TWOFACTOR_ATTRIBUTES: [&str; 8] = [
    "twoFactorCompletion",
    "twoFactorTOTP",
    "twoFactorTOTPLastStep",
    "twoFactorFailures",
    "twoFactorEmailCode",
    "twoFactorRecovery",
    "twoFactorWebAuthn",
    "twoFactorWebAuthnPending",
];

const SLAPD: &str = "/usr/sbin/slapd";
const MODULE_PATH: &str = "/usr/lib/ldap";
const SYSTEM_SCHEMA_DIR: &str = "/etc/ldap/schema";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 5;
/// Printed by `slapd -d none` on stderr once its listeners are bound and its
/// databases are open; a failed bind exits before it.
const READY_LINE: &str = "slapd starting";

/// Path of the repository's schema in slapd.conf format.
pub fn schema_file() -> PathBuf {
    crate::repo_root().join("apache-conf/twofactor.schema")
}

/// Path of the repository's schema in cn=config LDIF format.
pub fn schema_ldif_file() -> PathBuf {
    crate::repo_root().join("apache-conf/twofactor.ldif")
}

/// The TLS side of a slapd started with `Slapd::start_tls`.
#[derive(Debug, Clone)]
pub struct SlapdTls {
    /// The `ldaps://` listener's port.
    pub ldaps_port: u16,
    /// `ldaps://127.0.0.1:LDAPS_PORT`
    pub ldaps_url: String,
    /// The PEM certificate of the CA that signed slapd's certificate: what a
    /// client must trust.
    pub ca_cert: PathBuf,
    /// slapd's certificate (IP 127.0.0.1, DNS localhost) and key.
    pub server_cert: ServerCert,
}

pub struct Slapd {
    /// The `ldap://` listener's port (StartTLS-capable with `start_tls`).
    pub port: u16,
    /// `ldap://127.0.0.1:PORT`
    pub url: String,
    /// `dc=example,dc=test`
    pub base_dn: String,
    /// The rootdn: bypasses ACLs.
    pub admin_dn: String,
    pub admin_password: String,
    /// `cn=twofactor,ou=services,dc=example,dc=test`
    pub service_dn: String,
    pub service_password: String,
    /// `ou=people,dc=example,dc=test`
    pub people_dn: String,
    /// Holds slapd.conf, slapd.log (slapd's stderr) and the database.
    pub slapd_dir: PathBuf,
    /// Set by `start_tls`.
    pub tls: Option<SlapdTls>,
    process: Option<ServerProcess>,
    /// Log every operation (`-d stats`), for counting them.
    log_stats: bool,
    /// Multi-provider replication: this server's ID and its peer's port.
    replication: Option<(u32, u16)>,
}

impl Slapd {
    /// Writes `dir/slapd/slapd.conf`, starts slapd on a free loopback port
    /// (retrying with another port if the bind fails) and loads the base
    /// directory. Panics on failure.
    pub fn start(dir: &Path) -> Slapd {
        Slapd::start_with(dir, false)
    }

    /// Like `start`, with TLS: makes a throwaway CA and a certificate for
    /// 127.0.0.1 in `dir/slapd/tls`, and listens on `ldap://` (StartTLS) and
    /// on `ldaps://`, both on free loopback ports (see `tls`,
    /// `ldaps_url`, `ca_cert`). Panics on failure.
    pub fn start_tls(dir: &Path) -> Slapd {
        Slapd::start_with(dir, true)
    }

    fn start_with(dir: &Path, with_tls: bool) -> Slapd {
        let mut slapd = Slapd::unstarted(dir, with_tls);
        fs::write(slapd.conf_path(), slapd.slapd_conf()).expect("write slapd.conf");

        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let ldaps_port = with_tls.then(|| loop {
                let p = free_port();
                if p != port {
                    break p;
                }
            });
            match slapd.spawn_on(port, ldaps_port) {
                Ok(()) => {
                    slapd.add_ldif(&slapd.base_ldif());
                    return slapd;
                }
                Err(e) => failures.push(format!("port {port} (ldaps {ldaps_port:?}): {e}")),
            }
        }
        panic!("slapd did not start:\n{}", failures.join("\n"));
    }

    /// The description of a server in `dir/slapd` (its directory made,
    /// with a throwaway CA and certificate with TLS); nothing started.
    fn unstarted(dir: &Path, with_tls: bool) -> Slapd {
        let slapd_dir = dir.join("slapd");
        fs::create_dir_all(slapd_dir.join("data")).expect("create slapd directory");
        let base_dn = "dc=example,dc=test".to_string();
        let mut slapd = Slapd {
            port: 0,
            url: String::new(),
            admin_dn: format!("cn=admin,{base_dn}"),
            admin_password: "admin-secret".to_string(),
            service_dn: format!("cn=twofactor,ou=services,{base_dn}"),
            service_password: "service-secret".to_string(),
            people_dn: format!("ou=people,{base_dn}"),
            base_dn,
            tls: None,
            slapd_dir,
            process: None,
            log_stats: false,
            replication: None,
        };
        if with_tls {
            let cert = tls::ca_and_server_cert(&slapd.slapd_dir.join("tls"));
            slapd.tls = Some(SlapdTls {
                ldaps_port: 0,
                ldaps_url: String::new(),
                ca_cert: cert.ca_cert.clone(),
                server_cert: cert,
            });
        }
        slapd
    }

    /// Two providers in multi-provider replication (syncrepl
    /// refreshAndPersist both ways, `multiprovider on`, formerly
    /// `mirrormode`), in `dir_a` and `dir_b`; the base directory is loaded
    /// into the first and has reached the second when this returns.
    pub fn start_replicated_pair(dir_a: &Path, dir_b: &Path) -> (Slapd, Slapd) {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let (port_a, port_b) = (free_port(), free_port());
            if port_a == port_b {
                continue;
            }
            let mut a = Slapd::unstarted(dir_a, false);
            let mut b = Slapd::unstarted(dir_b, false);
            a.replication = Some((1, port_b));
            b.replication = Some((2, port_a));
            for s in [&a, &b] {
                fs::write(s.conf_path(), s.slapd_conf()).expect("write slapd.conf");
            }
            match a.spawn_on(port_a, None).and_then(|()| b.spawn_on(port_b, None)) {
                Ok(()) => {
                    a.add_ldif(&a.base_ldif());
                    let people = b.people_dn.clone();
                    let replicated = crate::apache::wait_until(START_TIMEOUT, || {
                        b.search_as(&b.admin_dn, &b.admin_password, "(uid=carol)", &["uid"])
                            .is_ok_and(|out| out.contains(&format!("uid=carol,{people}")))
                    });
                    assert!(replicated, "the base directory did not reach the second provider");
                    return (a, b);
                }
                Err(e) => failures.push(format!("ports {port_a}, {port_b}: {e}")),
            }
        }
        panic!("the replicated pair did not start:\n{}", failures.join("\n"));
    }

    /// Like `start`, with every operation logged (slapd's `stats` level) to
    /// `log()`, so that a benchmark can count searches, binds and connections.
    pub fn start_with_stats_log(dir: &Path) -> Slapd {
        let mut slapd = Slapd::start(dir);
        slapd.stop();
        slapd.log_stats = true;
        slapd.start_again();
        slapd
    }

    /// Stops slapd (SIGTERM, waits) and starts it again on the same port(s)
    /// with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts slapd again on the same port(s) with the same data after `stop`
    /// or `kill` (for "LDAP comes back" tests).
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "slapd is still running");
        // The port cannot change (clients are configured with it). slapd
        // sets SO_REUSEADDR, so a failure means another process took the
        // port meanwhile: retry a few times in case that was a short-lived
        // client socket.
        let mut failures = Vec::new();
        for attempt in 0..START_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200));
            }
            match self.spawn_on(self.port, self.tls.as_ref().map(|t| t.ldaps_port)) {
                Ok(()) => return,
                Err(e) => failures.push(e),
            }
        }
        panic!("slapd did not restart on port {}:\n{}", self.port, failures.join("\n"));
    }

    /// SIGTERM and wait (clean shutdown). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// SIGKILL and wait: slapd disappears without closing its connections
    /// cleanly. `start_again` brings it back (mdb is crash-safe).
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGSTOP: slapd keeps its connections and port but answers nothing.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.pid().expect("slapd is not running");
        // SAFETY: kill(2) with a pid this process started.
        let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(ServerProcess::is_running)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// `ldaps://127.0.0.1:LDAPS_PORT`. Panics unless started with `start_tls`.
    pub fn ldaps_url(&self) -> &str {
        &self.tls.as_ref().expect("slapd was started without TLS (use Slapd::start_tls)").ldaps_url
    }

    /// The PEM file of the CA that signed slapd's certificate. Panics unless
    /// started with `start_tls`.
    pub fn ca_cert(&self) -> &Path {
        &self.tls.as_ref().expect("slapd was started without TLS (use Slapd::start_tls)").ca_cert
    }

    /// The URL of TwoFactorLDAPURL: the people, by uid.
    pub fn user_url(&self) -> String {
        format!("{}/{}?uid?sub", self.url, self.people_dn)
    }

    /// The module's directives that reach this slapd as the service account
    /// (`password_file` holds `service_password`).
    pub fn directives(&self, password_file: &Path) -> String {
        format!(
            "TwoFactorLDAPURL {}\nTwoFactorLDAPBindDN {}\nTwoFactorLDAPBindPasswordFile {}\n",
            self.user_url(),
            self.service_dn,
            password_file.display()
        )
    }

    /// `uid=UID,ou=people,dc=example,dc=test`
    pub fn user_dn(&self, uid: &str) -> String {
        format!("uid={uid},{}", self.people_dn)
    }

    /// The password of the users of the base directory: `UID-password`.
    pub fn user_password(&self, uid: &str) -> String {
        format!("{uid}-password")
    }

    /// ldapadd as the admin; panics with ldapadd's stderr on failure.
    pub fn add_ldif(&self, ldif: &str) {
        let out = self.ldap_tool("ldapadd", &self.admin_dn, &self.admin_password, &[], ldif);
        expect_success("ldapadd", ldif, &out);
    }

    /// ldapmodify as the admin; panics with ldapmodify's stderr on failure.
    pub fn modify_ldif(&self, ldif: &str) {
        let out = self.ldap_tool("ldapmodify", &self.admin_dn, &self.admin_password, &[], ldif);
        expect_success("ldapmodify", ldif, &out);
    }

    /// ldapmodify bound as `bind_dn`: Ok(stdout) or Err(stderr), for
    /// checking what the ACLs and the schema allow.
    pub fn modify_ldif_as(&self, bind_dn: &str, password: &str, ldif: &str) -> Result<String, String> {
        let out = self.ldap_tool("ldapmodify", bind_dn, password, &[], ldif);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `ldapsearch -LLL` as the admin under the base DN, unwrapped
    /// (`-o ldif-wrap=no`). Values that are not plain printable text come
    /// back base64-encoded as `attr:: ...` (see `attr_values`).
    pub fn search(&self, filter: &str, attrs: &[&str]) -> String {
        self.search_as(&self.admin_dn, &self.admin_password, filter, attrs)
            .unwrap_or_else(|e| panic!("ldapsearch {filter:?} failed: {e}"))
    }

    /// `ldapsearch -LLL` under the base DN bound as `bind_dn`: Ok(stdout) or
    /// Err(stderr).
    pub fn search_as(&self, bind_dn: &str, password: &str, filter: &str, attrs: &[&str]) -> Result<String, String> {
        let mut args = vec!["-LLL", "-o", "ldif-wrap=no", "-b", &self.base_dn, filter];
        args.extend_from_slice(attrs);
        let out = self.ldap_tool("ldapsearch", bind_dn, password, &args, "");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The values of `attr` in the entry `dn` (read as the admin), decoded
    /// from base64 where ldapsearch encoded them; empty if the entry has
    /// none. Panics if the entry does not exist.
    pub fn attr_values(&self, dn: &str, attr: &str) -> Vec<String> {
        let args = ["-LLL", "-o", "ldif-wrap=no", "-s", "base", "-b", dn, "(objectClass=*)", attr];
        let out = self.ldap_tool("ldapsearch", &self.admin_dn, &self.admin_password, &args, "");
        expect_success("ldapsearch", dn, &out);
        values_of(&String::from_utf8_lossy(&out.stdout), attr, dn)
    }

    /// slapd's stderr so far (errors only: it runs with `-d none`).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn conf_path(&self) -> PathBuf {
        self.slapd_dir.join("slapd.conf")
    }

    /// slapd's own log (its operations, with `start_with_stats_log`).
    pub fn log_path(&self) -> PathBuf {
        self.slapd_dir.join("slapd.log")
    }

    /// Starts slapd on `port` (and `ldaps_port` for `ldaps://`) and waits
    /// until it has bound the ports and opened its database. Err if it
    /// exited (e.g. a port was taken, or GnuTLS refused the certificate).
    fn spawn_on(&mut self, port: u16, ldaps_port: Option<u16>) -> Result<(), String> {
        let url = format!("ldap://127.0.0.1:{port}");
        let mut listen = format!("{url}/");
        if let Some(p) = ldaps_port {
            listen.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
        }
        let mut config = vec![OsString::from("-f"), self.conf_path().into_os_string()];
        if self.log_stats {
            // Debug levels add up: this and spawn_slapd's `none`.
            config.extend([OsString::from("-d"), OsString::from("stats")]);
        }
        let process = spawn_slapd(&listen, &config, &self.log_path())?;
        // Our slapd has bound the ports (it logs READY_LINE only after that),
        // so these connects reach it.
        wait_for_port(port, START_TIMEOUT)?;
        if let Some(p) = ldaps_port {
            wait_for_port(p, START_TIMEOUT)?;
        }
        self.port = port;
        self.url = url;
        if let (Some(tls), Some(p)) = (self.tls.as_mut(), ldaps_port) {
            tls.ldaps_port = p;
            tls.ldaps_url = format!("ldaps://127.0.0.1:{p}");
        }
        self.process = Some(process);
        Ok(())
    }

    fn ldap_tool(&self, tool: &str, bind_dn: &str, password: &str, args: &[&str], stdin: &str) -> Output {
        assert!(!self.url.is_empty(), "slapd was never started");
        run_ldap_tool(&self.url, None, tool, bind_dn, password, args, stdin)
    }

    fn slapd_conf(&self) -> String {
        let schema = |name: &str| format!("include {SYSTEM_SCHEMA_DIR}/{name}.schema\n");
        let dir = self.slapd_dir.display();
        let service = &self.service_dn;
        let people = &self.people_dn;
        let attrs = TWOFACTOR_ATTRIBUTES.join(",");
        let replication_global = match self.replication {
            Some((id, _)) => format!("moduleload syncprov\nserverID {id}\n"),
            None => String::new(),
        };
        let mut conf = String::new();
        conf.push_str("# Generated by tests/common/slapd.rs\n");
        for name in ["core", "cosine", "inetorgperson", "nis"] {
            conf.push_str(&schema(name));
        }
        conf.push_str(&format!("include {}\n\n", schema_file().display()));
        if let Some(tls) = &self.tls {
            // Global directives (before `database`). Debian's slapd is built
            // with GnuTLS: it loads these at start-up and exits if a file is
            // unreadable or the key does not match the certificate. Clients
            // are not asked for certificates (TLSVerifyClient never, the
            // default).
            conf.push_str(&format!(
                "TLSCACertificateFile {}\n\
                 TLSCertificateFile {}\n\
                 TLSCertificateKeyFile {}\n\n",
                tls.ca_cert.display(),
                tls.server_cert.cert.display(),
                tls.server_cert.key.display(),
            ));
        }
        conf.push_str(&format!(
            "pidfile {dir}/slapd.pid\n\
             argsfile {dir}/slapd.args\n\
             modulepath {MODULE_PATH}\n\
             moduleload back_mdb\n\
             {replication_global}\
             \n\
             database mdb\n\
             suffix \"{base}\"\n\
             rootdn \"{admin}\"\n\
             rootpw {admin_pw}\n\
             directory {dir}/data\n\
             maxsize 67108864\n\
             index objectClass eq\n\
             index uid eq\n\
             \n\
             access to attrs=userPassword\n\
             \x20   by anonymous auth\n\
             \x20   by * none\n\
             access to dn.subtree=\"{people}\" attrs=objectClass,{attrs}\n\
             \x20   by dn.exact=\"{service}\" write\n\
             \x20   by * none\n\
             access to *\n\
             \x20   by dn.exact=\"{service}\" read\n\
             \x20   by * none\n",
            base = self.base_dn,
            admin = self.admin_dn,
            admin_pw = self.admin_password,
        ));
        if let Some((id, peer)) = self.replication {
            // Each provider pulls the other's changes as they happen.
            conf.push_str(&format!(
                "\nindex entryCSN,entryUUID eq\n\
                 overlay syncprov\n\
                 syncprov-checkpoint 100 1\n\
                 syncrepl rid={id:03} provider=ldap://127.0.0.1:{peer} bindmethod=simple binddn=\"{admin}\" \
                 credentials={admin_pw} searchbase=\"{base}\" type=refreshAndPersist retry=\"1 +\" timeout=2\n\
                 multiprovider on\n",
                base = self.base_dn,
                admin = self.admin_dn,
                admin_pw = self.admin_password,
            ));
        }
        conf
    }

    /// Adds `n` more people, `user0001` and on (with the auxiliary class
    /// and `USER@example.test` as mail); returns their names.
    pub fn add_users(&self, n: usize) -> Vec<String> {
        let names: Vec<String> = (1..=n).map(|i| format!("user{i:04}")).collect();
        let ldif: String = names
            .iter()
            .map(|uid| {
                format!(
                    "dn: uid={uid},{people}\nobjectClass: inetOrgPerson\nobjectClass: twoFactorUser\nuid: {uid}\n\
                     cn: {uid}\nsn: {uid}\nmail: {uid}@example.test\n\n",
                    people = self.people_dn
                )
            })
            .collect();
        self.add_ldif(&ldif);
        names
    }

    fn base_ldif(&self) -> String {
        let base = &self.base_dn;
        let person = |uid: &str, ou: &str, twofactor: bool| {
            let aux = if twofactor { "objectClass: twoFactorUser\n" } else { "" };
            let name = format!("{}{}", uid[..1].to_uppercase(), &uid[1..]);
            format!(
                "dn: uid={uid},ou={ou},{base}\n\
                 objectClass: inetOrgPerson\n\
                 {aux}\
                 uid: {uid}\n\
                 cn: {name} Example\n\
                 sn: Example\n\
                 givenName: {name}\n\
                 mail: {uid}@example.test\n\
                 userPassword: {password}\n\n",
                password = self.user_password(uid),
            )
        };
        let mut ldif = format!(
            "dn: {base}\n\
             objectClass: dcObject\n\
             objectClass: organization\n\
             dc: example\n\
             o: Example\n\n"
        );
        for ou in ["people", "services", "others"] {
            ldif.push_str(&format!("dn: ou={ou},{base}\nobjectClass: organizationalUnit\nou: {ou}\n\n"));
        }
        ldif.push_str(&format!(
            "dn: {}\n\
             objectClass: applicationProcess\n\
             objectClass: simpleSecurityObject\n\
             cn: twofactor\n\
             description: mod_twofactor service account\n\
             userPassword: {}\n\n",
            self.service_dn, self.service_password
        ));
        ldif.push_str(&person("alice", "people", true));
        ldif.push_str(&person("bob", "people", true));
        ldif.push_str(&person("carol", "people", false));
        ldif.push_str(&person("dup", "people", true));
        ldif.push_str(&person("dup", "others", true));
        ldif
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `slapd -h LISTEN CONFIG_ARGS -d none` in the foreground (`-d`
/// keeps it from detaching; level `none` logs only errors and the start/stop
/// lines), appending its output to `log_path`, and waits until it logs
/// "slapd starting" -- which it does only after binding its listeners and
/// opening its databases. Err (with the log) if slapd exits first, e.g.
/// because the port was taken, or does not get ready in time.
pub fn spawn_slapd(listen: &str, config_args: &[OsString], log_path: &Path) -> Result<ServerProcess, String> {
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| format!("open {}: {e}", log_path.display()))?;
    let log_start = log.seek(SeekFrom::End(0)).expect("seek slapd log");
    let mut cmd = Command::new(SLAPD);
    cmd.arg("-h")
        .arg(listen)
        .args(config_args)
        .args(["-d", "none"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup slapd log"))
        .stderr(log);
    let mut process = ServerProcess::spawn("slapd", cmd).map_err(|e| e.to_string())?;

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let new_log = read_from(log_path, log_start);
        if new_log.contains(READY_LINE) {
            return Ok(process);
        }
        if let Some(status) = process.exit_status() {
            return Err(format!("slapd exited ({status}):\n{new_log}"));
        }
        if Instant::now() >= deadline {
            process.stop();
            return Err(format!("slapd not ready within {START_TIMEOUT:?}:\n{new_log}"));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Runs one of the ldap* client tools against `url` with a simple bind,
/// trusting `ca` for TLS, with `stdin` as its input.
pub(crate) fn run_ldap_tool(
    url: &str,
    ca: Option<&Path>,
    tool: &str,
    bind_dn: &str,
    password: &str,
    args: &[&str],
    stdin: &str,
) -> Output {
    let mut command = Command::new(tool);
    match ca {
        // LDAPNOINIT would ignore the LDAPTLS_ variables too: name no
        // configuration files instead.
        Some(ca) => {
            command.env("LDAPCONF", "/dev/null").env("LDAPRC", "/nonexistent/ldaprc");
            command.env("LDAPTLS_CACERT", ca).env("LDAPTLS_REQCERT", "demand");
        }
        None => {
            command.env("LDAPNOINIT", "1");
        }
    }
    let mut child = command
        .args(["-x", "-H", url, "-D", bind_dn, "-w", password])
        .args(["-o", "nettimeout=10"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {tool} (apt-get install ldap-utils): {e}"));
    // Written from another thread: the tool may fill its stdout pipe
    // before it has read all of its input.
    let mut child_stdin = child.stdin.take().expect("piped stdin");
    let input = stdin.as_bytes().to_vec();
    let writer = std::thread::spawn(move || child_stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait for the ldap tool");
    // A tool that exits early (bad bind) closes its stdin: EPIPE is fine.
    let _ = writer.join();
    out
}

/// The values of `attr` in ldapsearch's LDIF output, decoded from base64
/// where ldapsearch encoded them.
pub(crate) fn values_of(stdout: &str, attr: &str, dn: &str) -> Vec<String> {
    let mut values = Vec::new();
    for line in stdout.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if !name.eq_ignore_ascii_case(attr) {
            continue;
        }
        if let Some(b64) = rest.strip_prefix(':') {
            let bytes = base64_decode(b64.trim()).unwrap_or_else(|| panic!("bad base64 for {attr} in {dn}: {b64}"));
            values.push(String::from_utf8_lossy(&bytes).into_owned());
        } else {
            values.push(rest.strip_prefix(' ').unwrap_or(rest).to_string());
        }
    }
    values
}

pub(crate) fn expect_success(tool: &str, input: &str, out: &Output) {
    if !out.status.success() {
        panic!(
            "{tool} failed ({}):\n--- stderr\n{}--- stdout\n{}--- input\n{input}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
        );
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(path) {
        if file.seek(SeekFrom::Start(offset)).is_ok() {
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    text
}

/// Standard base64 (as ldapsearch writes it), no line breaks.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let data = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    for chunk in data.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= sextet(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TestCa;

    /// `ldapsearch` as the service account against `url`, trusting `ca`
    /// (`starttls`: `-ZZ`, StartTLS required). Ok(stdout) or Err(stderr).
    fn tls_search(slapd: &Slapd, url: &str, ca: &Path, starttls: bool) -> Result<String, String> {
        // LDAPNOINIT would also ignore LDAPTLS_* variables: instead, an
        // ldap.conf of our own, no ldaprc, and a working directory without one.
        let conf_dir = tempfile::tempdir().unwrap();
        let conf = conf_dir.path().join("ldap.conf");
        fs::write(&conf, format!("TLS_CACERT {}\nTLS_REQCERT demand\n", ca.display())).unwrap();
        let mut cmd = Command::new("ldapsearch");
        cmd.env("LDAPCONF", &conf)
            .env("LDAPRC", "testkit-no-ldaprc")
            .current_dir(conf_dir.path())
            .args(["-x", "-H", url, "-D", &slapd.service_dn, "-w", &slapd.service_password])
            .args(["-o", "nettimeout=10", "-LLL", "-b", &slapd.base_dn, "(uid=alice)", "dn"]);
        if starttls {
            cmd.arg("-ZZ");
        }
        let out = cmd.stdin(Stdio::null()).output().expect("run ldapsearch");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    #[test]
    fn tls_listeners_ldaps_and_starttls() {
        let dir = tempfile::tempdir().unwrap();
        let mut slapd = Slapd::start_tls(dir.path());
        let alice = format!("dn: {}", slapd.user_dn("alice"));
        let ca = slapd.ca_cert().to_path_buf();
        let ldaps = slapd.ldaps_url().to_string();
        assert!(ldaps.starts_with("ldaps://127.0.0.1:") && slapd.url.starts_with("ldap://127.0.0.1:"));
        assert_ne!(slapd.tls.as_ref().unwrap().ldaps_port, slapd.port);

        let found = tls_search(&slapd, &ldaps, &ca, false).expect("ldaps");
        assert!(found.contains(&alice), "{found}");
        let url = slapd.url.clone();
        let found = tls_search(&slapd, &url, &ca, true).expect("StartTLS");
        assert!(found.contains(&alice), "{found}");
        assert!(slapd.search("(uid=alice)", &["dn"]).contains(&alice), "plain ldap:// still works");

        let other = TestCa::new(&dir.path().join("other-ca"), "another CA");
        tls_search(&slapd, &ldaps, &other.cert, false).expect_err("a certificate from another CA");

        let ports = (slapd.port, slapd.tls.as_ref().unwrap().ldaps_port);
        slapd.restart();
        assert_eq!(ports, (slapd.port, slapd.tls.as_ref().unwrap().ldaps_port), "same ports after a restart");
        let found = tls_search(&slapd, &ldaps, &ca, false).expect("ldaps after restart");
        assert!(found.contains(&alice), "{found}");
        slapd.stop();
        assert!(!slapd.is_running());
    }
}
