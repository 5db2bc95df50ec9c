//! A real SMTP server with TLS on loopback: Python's aiosmtpd (Debian's
//! python3-aiosmtpd), offering STARTTLS (and requiring it before MAIL) or
//! speaking TLS from the first byte (SMTPS), with a certificate for
//! 127.0.0.1 from a throwaway CA. Every message it accepts is appended to
//! a dump file; `messages()` reads them back.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{free_port, wait_for_port, ServerProcess};
use crate::tls::ServerCert;

const PYTHON: &str = "/usr/bin/python3";
const SEPARATOR: &str = "--aiosmtpd-message--\n";

/// The server: aiosmtpd's Controller with a handler that keeps each message.
const SERVER: &str = r#"
import signal, ssl, sys
from aiosmtpd.controller import Controller

mode, port, cert, key, dump = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)

class Keep:
    async def handle_DATA(self, server, session, envelope):
        with open(dump, "ab") as f:
            f.write(b"--aiosmtpd-message--\n" + envelope.original_content + b"\n")
        return "250 OK"

if mode == "starttls":
    controller = Controller(Keep(), hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
else:
    controller = Controller(Keep(), hostname="127.0.0.1", port=port, ssl_context=context)
controller.start()
signal.sigwait({signal.SIGTERM, signal.SIGINT})
controller.stop()
"#;

/// How the client gets to TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    StartTls,
    Smtps,
}

pub struct TlsSmtp {
    pub port: u16,
    /// The CA that signed the server's certificate (PEM).
    pub ca_cert: PathBuf,
    dump: PathBuf,
    process: ServerProcess,
}

impl TlsSmtp {
    /// Starts the server in `dir` with `cert`. Panics on failure.
    pub fn start(dir: &Path, mode: Mode, cert: &ServerCert) -> TlsSmtp {
        fs::create_dir_all(dir).expect("create the TLS SMTP directory");
        let script = dir.join("smtp-tls-server.py");
        fs::write(&script, SERVER).expect("write the TLS SMTP server");
        let dump = dir.join("messages.dump");
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = free_port();
            let log = fs::File::create(dir.join("server.log")).expect("create server.log");
            let mut cmd = Command::new(PYTHON);
            cmd.arg(&script)
                .arg(if mode == Mode::StartTls { "starttls" } else { "smtps" })
                .arg(port.to_string())
                .arg(&cert.cert)
                .arg(&cert.key)
                .arg(&dump)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup server.log"))
                .stderr(log);
            let mut process = ServerProcess::spawn("aiosmtpd", cmd).expect("spawn python3 (python3-aiosmtpd)");
            match wait_for_port(port, Duration::from_secs(20)) {
                Ok(()) if process.is_running() => {
                    return TlsSmtp { port, ca_cert: cert.ca_cert.clone(), dump, process };
                }
                other => {
                    process.stop();
                    let log = fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                    failures.push(format!("port {port}: {other:?}: {log}"));
                }
            }
        }
        panic!("the TLS SMTP server did not start:\n{}", failures.join("\n"));
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let dump = fs::read(&self.dump).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        dump.split(SEPARATOR).skip(1).map(str::to_string).collect()
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }
}

impl Drop for TlsSmtp {
    fn drop(&mut self) {
        self.stop();
    }
}
