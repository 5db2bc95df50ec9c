//! Apache HTTPD started for one test: the protected server (with the built
//! module) or the stand-in gateway (without it).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{free_port, wait_for_port, ServerProcess, POLL_INTERVAL};

const APACHE: &str = "/usr/sbin/apache2";
const MODULES: &str = "/usr/lib/apache2/modules";

/// Modules every test Apache loads (beyond the MPM). Unused ones cost nothing.
const STANDARD_MODULES: &[&str] = &[
    "authn_core",
    "authn_file",
    "auth_basic",
    "authz_core",
    "authz_host",
    "authz_user",
    "mime",
    "dir",
    "alias",
    "headers",
    "rewrite",
    "proxy",
    "proxy_http",
    "unique_id",
];

/// The module under test: `TWOFACTOR_MODULE`, else the `.so` next to the
/// running test binary's profile directory (target/<profile>/).
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("TWOFACTOR_MODULE") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary> or target/<profile>/<binary>
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join("libmod_twofactor.so");
        if candidate.exists() {
            return candidate;
        }
    }
    panic!("libmod_twofactor.so not found near {}; build it or set TWOFACTOR_MODULE", exe.display());
}

/// How a test Apache is set up.
#[derive(Clone)]
pub struct ApacheOptions {
    /// Load mod_twofactor.
    pub with_module: bool,
    /// `LogLevel` line.
    pub log_level: String,
    /// Worker threads of the one child.
    pub threads: u32,
    /// Child processes.
    pub servers: u32,
}

impl Default for ApacheOptions {
    fn default() -> Self {
        ApacheOptions { with_module: true, log_level: "warn twofactor:debug".into(), threads: 8, servers: 1 }
    }
}

/// The configuration file: a small complete server, then `body`.
pub fn render_conf(root: &Path, port: u16, options: &ApacheOptions, body: &str) -> String {
    let mut conf = String::new();
    let root = root.display();
    conf.push_str(&format!(
        "ServerRoot {root}\nListen 127.0.0.1:{port}\nPidFile {root}/httpd.pid\nDefaultRuntimeDir {root}\n\
         ErrorLog {root}/error.log\nLogLevel {}\n",
        if options.with_module {
            options.log_level.clone()
        } else {
            // Module-specific levels of an absent module are a syntax error.
            options.log_level.split_whitespace().filter(|w| !w.starts_with("twofactor:")).collect::<Vec<_>>().join(" ")
        }
    ));
    conf.push_str(&format!("LoadModule mpm_event_module {MODULES}/mod_mpm_event.so\n"));
    let threads = options.threads;
    let servers = options.servers;
    conf.push_str(&format!(
        "StartServers {servers}\nServerLimit {servers}\nThreadLimit {threads}\nThreadsPerChild {threads}\n\
         MaxRequestWorkers {}\nMinSpareThreads 1\nMaxSpareThreads {}\nGracefulShutdownTimeout 5\n",
        threads * servers,
        threads * servers
    ));
    for m in STANDARD_MODULES {
        conf.push_str(&format!("LoadModule {m}_module {MODULES}/mod_{m}.so\n"));
    }
    if options.with_module {
        conf.push_str(&format!("LoadModule twofactor_module {}\n", module_path().display()));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        conf.push_str("User www-data\nGroup www-data\n");
    }
    conf.push_str(&format!(
        "ServerName 127.0.0.1\nTypesConfig /etc/mime.types\nDocumentRoot {root}/htdocs\n\
         LogFormat \"%h %u \\\"%r\\\" %>s\" tf\nCustomLog {root}/access.log tf\n\
         <Directory {root}/htdocs>\n  Require all granted\n</Directory>\n"
    ));
    conf.push_str(body);
    conf.push('\n');
    conf
}

/// Runs `apache2 -t` on a configuration; returns success and the output.
pub fn config_test(root: &Path, options: &ApacheOptions, body: &str) -> (bool, String) {
    fs::create_dir_all(root.join("htdocs")).expect("htdocs");
    let conf = root.join("httpd-test.conf");
    fs::write(&conf, render_conf(root, free_port(), options, body)).expect("write conf");
    let out = Command::new(APACHE).arg("-t").arg("-f").arg(&conf).output().expect("run apache2 -t");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

pub struct Apache {
    pub port: u16,
    pub root: PathBuf,
    process: Option<ServerProcess>,
    options: ApacheOptions,
    body: String,
}

impl Apache {
    /// Starts Apache in the foreground with its server root in `root`
    /// (created 0755, with an htdocs/ directory).
    pub fn start(root: &Path, options: ApacheOptions, body: &str) -> Apache {
        fs::create_dir_all(root.join("htdocs")).expect("htdocs");
        let mut apache = Apache { port: 0, root: root.to_path_buf(), process: None, options, body: body.into() };
        apache.launch();
        apache
    }

    /// The same on a port chosen before (one that another server's
    /// configuration names already).
    pub fn start_on(root: &Path, options: ApacheOptions, body: &str, port: u16) -> Apache {
        fs::create_dir_all(root.join("htdocs")).expect("htdocs");
        let mut apache = Apache { port: 0, root: root.to_path_buf(), process: None, options, body: body.into() };
        apache.launch_on(Some(port));
        apache
    }

    fn launch(&mut self) {
        self.launch_on(None)
    }

    /// Starts on `chosen`, or on a free port (another one if it was taken meanwhile).
    fn launch_on(&mut self, chosen: Option<u16>) {
        let mut last_error = String::new();
        let attempts = if chosen.is_some() { 1 } else { 5 };
        for _ in 0..attempts {
            let port = chosen.unwrap_or_else(free_port);
            let conf_path = self.root.join("httpd.conf");
            fs::write(&conf_path, render_conf(&self.root, port, &self.options, &self.body)).expect("write conf");
            let _ = fs::remove_file(self.root.join("httpd.pid"));
            let mut cmd = Command::new(APACHE);
            cmd.arg("-DFOREGROUND").arg("-f").arg(&conf_path);
            cmd.stdout(Stdio::null());
            cmd.stderr(fs::File::create(self.root.join("stderr.log")).map(Stdio::from).unwrap_or(Stdio::null()));
            let mut process = ServerProcess::spawn("apache2", cmd).expect("spawn apache2");
            let ready = wait_until(Duration::from_secs(20), || {
                !process.is_running() || wait_for_port(port, Duration::from_millis(1)).is_ok()
            });
            if ready && process.is_running() {
                self.port = port;
                self.process = Some(process);
                return;
            }
            process.stop();
            last_error = format!("{}{}", self.stderr(), self.error_log());
            if !last_error.contains("Address already in use") {
                break;
            }
        }
        panic!("apache2 did not start in {}:\n{last_error}", self.root.display());
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(self.root.join("error.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        fs::read_to_string(self.root.join("access.log")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(self.root.join("stderr.log")).unwrap_or_default()
    }

    /// Waits until the error log contains `needle`; returns the log.
    pub fn wait_for_error_log(&self, needle: &str) -> String {
        self.wait_for(needle, Self::error_log)
    }

    /// Waits until the access log contains `needle` (it is written after
    /// the response has gone out); returns the log.
    pub fn wait_for_access_log(&self, needle: &str) -> String {
        self.wait_for(needle, Self::access_log)
    }

    fn wait_for(&self, needle: &str, read: fn(&Apache) -> String) -> String {
        let mut text = String::new();
        let found = wait_until(Duration::from_secs(10), || {
            text = read(self);
            text.contains(needle)
        });
        assert!(found, "{needle:?} did not appear in the log of {}:\n{text}", self.root.display());
        text
    }

    /// Restarts with a new configuration body (and a new port).
    /// Stops the server gracefully and starts it with `body`. Graceful:
    /// mod_mpm_event's children can crash on SIGTERM when connections were
    /// served in the last few milliseconds (a race in Apache itself, seen
    /// without this module loaded), which would put a crash line into the
    /// log a test then reads.
    pub fn restart_with(&mut self, body: &str) {
        if let Some(p) = self.process.as_mut() {
            p.stop_gracefully();
        }
        self.process = None;
        self.body = body.to_string();
        self.launch();
    }

    /// Runs Debian's `apache2ctl VERB` (`configtest`, `graceful`) against
    /// this server's configuration; returns whether it succeeded and what
    /// it printed. `graceful` checks the configuration first and leaves
    /// the running server alone when the check fails.
    pub fn ctl(&self, verb: &str) -> (bool, String) {
        let out = Command::new("/usr/sbin/apache2ctl")
            .arg(verb)
            .env("APACHE_CONFDIR", &self.root)
            .env("APACHE_ARGUMENTS", format!("-f {}", self.root.join("httpd.conf").display()))
            .output()
            .expect("run apache2ctl");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(ServerProcess::is_running)
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `ready` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Writes an htpasswd file for the stand-in gateway's Basic authentication.
pub fn write_htpasswd(path: &Path, users: &[(&str, &str)]) {
    let mut first = true;
    for (user, password) in users {
        let mut cmd = Command::new("htpasswd");
        cmd.arg(if first { "-bcB" } else { "-bB" }).arg(path).arg(user).arg(password);
        let out = cmd.output().expect("run htpasswd (apache2-utils)");
        assert!(out.status.success(), "htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
        first = false;
    }
}

/// The stand-in gateway (SPEC §4): Basic authentication as the first
/// factor, the client's identity headers dropped, the authenticated name
/// set as `X-Remote-User`, everything proxied to `backend_port`.
pub fn gateway_body(root: &Path, backend_port: u16) -> String {
    let root = root.display();
    format!(
        r#"<Location />
  AuthType Basic
  AuthName "Gateway"
  AuthBasicProvider file
  AuthUserFile {root}/htpasswd
  Require valid-user
</Location>
RequestHeader unset X-Remote-User early
RequestHeader set X-Remote-User "expr=%{{REMOTE_USER}}"
# The first factor's credentials stay at the gateway.
RequestHeader unset Authorization
# A new connection to the protected server for every request: a reused one
# that the other side closes meanwhile (its keep-alive timeout, or the
# event MPM shedding idle connections under load) fails a POST with a 502
# that mod_proxy cannot retry.
ProxyPass / http://127.0.0.1:{backend_port}/ disablereuse=On
ProxyPassReverse / http://127.0.0.1:{backend_port}/
"#
    )
}
