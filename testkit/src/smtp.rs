//! A real SMTP server on loopback that keeps what it receives: Postfix's
//! `smtp-sink` (package postfix), with `-D` so that every accepted message is
//! appended, whole, to one dump file in arrival order.
//!
//! smtp-sink is single-threaded: it writes a message to the dump file when
//! it sees the final "." and only then answers 250, so a message whose DATA
//! was acknowledged is already in `messages()`. Each dumped message starts
//! with smtp-sink's own X-Client-Addr/X-Client-Proto/X-Helo-Args/
//! X-Mail-Args/X-Rcpt-Args and Received headers, then the message as sent
//! (dot-unstuffed, CRLF turned into LF), then an empty line.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::process::{free_port, ServerProcess, POLL_INTERVAL};

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 5;
/// Unprivileged user that smtp-sink switches to when started as root (it
/// refuses to run as root without -u).
const RUN_AS: &str = "nobody";

static INSTANCES: AtomicUsize = AtomicUsize::new(0);

pub struct SmtpSink {
    pub port: u16,
    /// Directory of the dump file (mode 0777: smtp-sink writes there as
    /// `nobody` when the tests run as root).
    pub maildir: PathBuf,
    /// Greeting host name, unique per instance: identifies our server.
    hostname: String,
    /// Prepended (with -S) to every dumped message.
    separator: String,
    process: ServerProcess,
}

impl SmtpSink {
    /// Starts smtp-sink on a free loopback port, dumping into `dir/smtp/`.
    /// `dir` must be searchable by others (see `process::test_dir`) when the
    /// tests run as root. Panics on failure.
    pub fn start(dir: &Path) -> SmtpSink {
        Self::start_with(dir, &[])
    }

    /// As `start`, with smtp-sink options that make it misbehave: `-f RCPT`
    /// (refuse recipients with 5xx), `-W DATA:20` (answer DATA after 20 s).
    pub fn start_with(dir: &Path, options: &[&str]) -> SmtpSink {
        let maildir = dir.join("smtp");
        fs::create_dir_all(&maildir).expect("create smtp dump directory");
        fs::set_permissions(&maildir, fs::Permissions::from_mode(0o777)).expect("chmod 0777 the smtp dump directory");
        let instance = format!("{}-{}", std::process::id(), INSTANCES.fetch_add(1, Ordering::Relaxed));
        let hostname = format!("smtp-sink-{instance}");
        let separator = format!("--smtp-sink-message-{instance}--\n");

        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            match Self::spawn_on(port, &maildir, &hostname, &separator, options) {
                Ok(process) => return SmtpSink { port, maildir, hostname, separator, process },
                Err(e) => failures.push(format!("port {port}: {e}")),
            }
        }
        panic!("smtp-sink did not start:\n{}", failures.join("\n"));
    }

    /// The full text of every message received so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let dump = match fs::read(self.dump_path()) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("read {}: {e}", self.dump_path().display()),
        };
        let mut messages: Vec<String> = dump.split(self.separator.as_str()).skip(1).map(str::to_string).collect();
        // A message larger than smtp-sink's write buffer is appended in
        // several writes: leave out a last one that is not complete yet
        // (every complete one ends with the empty line smtp-sink adds).
        if messages.last().is_some_and(|m| !m.ends_with("\n\n")) {
            messages.pop();
        }
        messages
    }

    /// Polls `messages()` until there are at least `n`; panics after
    /// `timeout` with what has arrived.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if Instant::now() >= deadline {
                panic!(
                    "expected {n} mail message(s) within {timeout:?}, got {}:\n{}\n--- smtp-sink log\n{}",
                    messages.len(),
                    messages.join("\n-----\n"),
                    self.log()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Polls `messages()` until at least `n` of them satisfy `wanted`;
    /// returns those, oldest first. Panics after `timeout` with what arrived.
    pub fn wait_for_matching(&self, n: usize, timeout: Duration, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let matching: Vec<String> = self.messages().into_iter().filter(|m| wanted(m)).collect();
            if matching.len() >= n {
                return matching;
            }
            if Instant::now() >= deadline {
                panic!(
                    "expected {n} matching mail message(s) within {timeout:?}, got {}; all mail:\n{}",
                    matching.len(),
                    self.messages().join("\n-----\n")
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The passcode mails (not the security notices) to `to`, once there are `n`.
    pub fn wait_for_passcode_mails(&self, to: &str, n: usize, timeout: Duration) -> Vec<String> {
        self.wait_for_matching(n, timeout, |m| m.contains(to) && m.contains("Subject: Your sign-in code"))
    }

    /// The security notices to `to`, once there are `n`.
    pub fn wait_for_notices(&self, to: &str, n: usize, timeout: Duration) -> Vec<String> {
        self.wait_for_matching(n, timeout, |m| m.contains(to) && m.contains("This is a security notice"))
    }

    /// smtp-sink's stderr (fatal errors).
    pub fn log(&self) -> String {
        fs::read_to_string(self.maildir.join("smtp-sink.log")).unwrap_or_default()
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// SIGTERM and wait. Idempotent; also done on drop.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    fn dump_path(&self) -> PathBuf {
        self.maildir.join("messages.dump")
    }

    fn spawn_on(
        port: u16,
        maildir: &Path,
        hostname: &str,
        separator: &str,
        options: &[&str],
    ) -> Result<ServerProcess, String> {
        let log_path = maildir.join("smtp-sink.log");
        let log = fs::File::create(&log_path).expect("create smtp-sink.log");
        let mut cmd = Command::new(SMTP_SINK);
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cmd.args(["-u", RUN_AS]);
        }
        // -S takes C escapes: the separator must contain no backslash.
        debug_assert!(!separator.contains('\\'));
        cmd.arg("-4")
            .args(["-h", hostname])
            .arg("-D")
            .arg(maildir.join("messages.dump"))
            .args(["-S", &separator.replace('\n', "\\n")])
            .args(options)
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup smtp-sink.log"))
            .stderr(log);
        let mut process = ServerProcess::spawn("smtp-sink", cmd).map_err(|e| e.to_string())?;

        // Ready when our smtp-sink greets: the greeting carries this
        // instance's host name, so another server that took the port is not
        // mistaken for ours. A failed bind makes smtp-sink exit at once.
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = process.exit_status() {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("smtp-sink exited ({status}): {log}"));
            }
            if let Ok(greeting) = read_greeting(&addr) {
                if greeting.starts_with("220 ") && greeting.contains(hostname) {
                    return Ok(process);
                }
            }
            if Instant::now() >= deadline {
                process.stop();
                return Err(format!("smtp-sink not ready within {START_TIMEOUT:?}"));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_greeting(addr: &SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(stream.try_clone()?).read_line(&mut line)?;
    let _ = stream.write_all(b"QUIT\r\n");
    Ok(line)
}
