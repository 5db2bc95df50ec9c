//! A private network namespace per server that cannot be told its ports
//! (Samba's LDAP server always listens on 389 and 636), and a relay that
//! makes one of its ports reachable on 127.0.0.1 at a port chosen at run
//! time. Inside the namespace the server has a loopback of its own, so any
//! number of them run at once, and nothing listens anywhere but loopback.
//!
//! The relay accepts on the host's 127.0.0.1 and connects from a thread
//! that joined the namespace (setns(2) moves only the calling thread), then
//! copies bytes both ways. A connection the server refuses (stopped) or
//! drops is closed on the client's side too; a server that is paused
//! (SIGSTOP) still accepts, and then answers nothing: to a client the relay
//! behaves like the server itself.

use std::fs::File;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A network namespace with its loopback up; deleted on drop.
pub struct Namespace {
    pub name: String,
}

impl Namespace {
    /// `ip netns add tf-<pid>-<n>`, and its `lo` up. Panics on failure
    /// (root and iproute2 are needed).
    pub fn new() -> Namespace {
        let name = format!("tf-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        run(Command::new("ip").args(["netns", "add", &name]));
        let namespace = Namespace { name };
        run(Command::new("ip").args(["netns", "exec", &namespace.name, "ip", "link", "set", "lo", "up"]));
        namespace
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`
    /// executes it in place: its pid is the program's).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace::new()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
    }
}

fn run(command: &mut Command) {
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {command:?} (apt-get install iproute2): {e}"));
    assert!(out.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Connections made from inside a namespace, on request.
type Connect = mpsc::Sender<mpsc::Sender<io::Result<TcpStream>>>;

/// 127.0.0.1:`port` on the host, relayed to `target` inside a namespace.
pub struct Relay {
    pub port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
}

impl Relay {
    /// Relays a free loopback port of the host to `target` in `namespace`.
    pub fn start(namespace: &Namespace, target: SocketAddr) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the relay");
        let port = listener.local_addr().expect("the relay's address").port();
        let connect = connector(&namespace.name, target);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let accept = thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let (reply, answer) = mpsc::channel();
                if connect.send(reply).is_err() {
                    break;
                }
                match answer.recv() {
                    Ok(Ok(server)) => splice(client, server),
                    // Refused (the server is stopped): the client sees its connection end.
                    _ => drop(client),
                }
            }
        });
        Relay { port, stop, accept: Some(accept) }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread up so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// A thread inside `namespace` that connects to `target` for every request.
fn connector(namespace: &str, target: SocketAddr) -> Connect {
    let (requests, incoming) = mpsc::channel::<mpsc::Sender<io::Result<TcpStream>>>();
    let path = format!("/run/netns/{namespace}");
    let joined = mpsc::channel();
    thread::spawn(move || {
        let entered = File::open(&path).and_then(|ns| {
            // SAFETY: setns(2) on a namespace file this thread opened; it
            // moves this thread only, which does nothing but connect.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
        let ok = entered.is_ok();
        let _ = joined.0.send(entered);
        if !ok {
            return;
        }
        for reply in incoming {
            let _ = reply.send(TcpStream::connect_timeout(&target, Duration::from_secs(5)));
        }
    });
    if let Ok(Err(e)) = joined.1.recv() {
        panic!("cannot enter network namespace {namespace} (root is needed): {e}");
    }
    requests
}

/// Copies both ways until either side ends, then closes both (LDAP needs
/// no half-closed connections).
fn splice(client: TcpStream, server: TcpStream) {
    let (Ok(from_client), Ok(from_server)) = (client.try_clone(), server.try_clone()) else { return };
    pipe(from_client, server);
    pipe(from_server, client);
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
