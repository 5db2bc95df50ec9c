//! Real processes for the integration tests: free loopback ports, readiness
//! polling, and servers that are always stopped by their own pid.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Interval between two readiness probes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long `ServerProcess::stop` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A loopback TCP port that was free a moment ago (bind 127.0.0.1:0, read the
/// port, close). Another process may take it before the caller binds it:
/// servers started on it must detect a failed bind and retry with a new port.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr of 127.0.0.1:0").port()
}

/// Polls a TCP connect to 127.0.0.1:`port` every 20 ms until it succeeds or
/// `timeout` has passed. Readiness polling, not a fixed sleep.
pub fn wait_for_port(port: u16, timeout: Duration) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    loop {
        let last_error = match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "nothing accepted connections on {addr} within {timeout:?} (last error: {last_error})"
            ));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// A fresh temporary directory for one test, mode 0755: Apache children run
/// as www-data and must be able to read the files the test puts there.
/// Removed when the returned value is dropped.
pub fn test_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().expect("create temporary test directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 0755 the test directory");
    dir
}

/// A child process that is stopped (SIGTERM, then SIGKILL after 10 s) by its
/// own pid when `stop` is called or when the value is dropped.
pub struct ServerProcess {
    name: String,
    child: Child,
    /// Set once the child has been reaped: its pid may then belong to
    /// another process and must never be signalled again.
    status: Option<ExitStatus>,
}

impl ServerProcess {
    /// Spawns `cmd`. The caller sets up arguments and stdio (stdin should be
    /// null, output is best sent to a log file in the test directory).
    pub fn spawn(name: &str, mut cmd: Command) -> io::Result<Self> {
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {name} ({:?}): {e}", cmd.get_program())))?;
        Ok(ServerProcess { name: name.to_string(), child, status: None })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has already ended (reaps it), without
    /// blocking.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => self.status = Some(status),
                Ok(None) => {}
                Err(e) => {
                    // Cannot happen for our own child; never leave a pid
                    // that might be reused marked as ours.
                    eprintln!("waitpid on {} (pid {}): {e}", self.name, self.pid());
                    self.status = Some(ExitStatus::from_raw(-1));
                }
            }
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// SIGTERM, wait up to 10 s, then SIGKILL and wait. Idempotent.
    pub fn stop(&mut self) {
        if !self.is_running() {
            return;
        }
        self.signal(libc::SIGTERM);
        if self.exited_within(STOP_GRACE) {
            return;
        }
        eprintln!("{} (pid {}) ignored SIGTERM for {STOP_GRACE:?}: SIGKILL", self.name, self.pid());
        self.kill();
    }

    /// Apache's graceful stop (SIGWINCH): the children finish what they
    /// serve and exit, then the parent. If that takes over 10 s, `stop`,
    /// so that the parent still takes its children with it.
    pub fn stop_gracefully(&mut self) {
        if !self.is_running() {
            return;
        }
        self.signal(libc::SIGWINCH);
        if self.exited_within(STOP_GRACE) {
            return;
        }
        eprintln!("{} (pid {}) still running {STOP_GRACE:?} after SIGWINCH: SIGTERM", self.name, self.pid());
        self.stop();
    }

    fn exited_within(&mut self, grace: std::time::Duration) -> bool {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                return true;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        false
    }

    /// SIGKILL and wait: a crash, as far as clients can tell. Idempotent.
    pub fn kill(&mut self) {
        if !self.is_running() {
            return;
        }
        self.signal(libc::SIGKILL);
        self.status = Some(self.child.wait().unwrap_or_else(|e| {
            eprintln!("waitpid on {} (pid {}): {e}", self.name, self.pid());
            ExitStatus::from_raw(-1)
        }));
    }

    /// Sends `signal` to the (not yet reaped) process.
    pub fn signal(&self, signal: libc::c_int) {
        assert!(self.status.is_none(), "{} was already reaped", self.name);
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
        // SAFETY: kill(2) on the pid of our own unreaped child: the pid cannot
        // have been reused by another process.
        let rc = unsafe { libc::kill(pid, signal) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            // ESRCH: it is exiting on its own; the following wait reaps it.
            if e.raw_os_error() != Some(libc::ESRCH) {
                // Not a panic: this runs from Drop, possibly while unwinding.
                eprintln!("kill({pid}, {signal}) for {}: {e}", self.name);
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
