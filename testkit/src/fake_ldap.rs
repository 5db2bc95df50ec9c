//! A fake LDAP server on 127.0.0.1 for fault tests: it speaks just enough
//! BER to answer a bind and a search the way a test wants, including
//! wrongly: silence, junk, a connection closed mid-reply. The real
//! directory in tests is slapd; this one plays a broken or hostile one.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The search base the fake servers' URLs name (they ignore it).
pub const FAKE_BASE: &str = "ou=people,dc=example,dc=test";

/// A TCP server on 127.0.0.1 that runs `handler` for every connection (in
/// its own thread); stopped and joined when dropped.
pub struct FakeServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let thread = {
            let stop = stop.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    // Never a handler that outlives the tests by much.
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let handler = handler.clone();
                    thread::spawn(move || handler(stream));
                }
            })
        };
        FakeServer { port, stop, thread: Some(thread) }
    }

    /// `SCHEME://127.0.0.1:PORT/ou=people,dc=example,dc=test?uid?sub`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/{FAKE_BASE}?uid?sub", self.port)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop up.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads until the peer closes (or the read timeout): never answers.
pub fn drain(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

pub fn junk(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    let mut f = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
    f.read_exact(&mut bytes).expect("read /dev/urandom");
    bytes
}

/// BER: tag, definite length, content.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

pub fn read_tlv(stream: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head)?;
    let len = if head[1] < 0x80 {
        usize::from(head[1])
    } else {
        let n = usize::from(head[1] & 0x7f);
        if n == 0 || n > 4 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "length"));
        }
        let mut bytes = [0u8; 4];
        stream.read_exact(&mut bytes[4 - n..])?;
        u32::from_be_bytes(bytes) as usize
    };
    if len > 1 << 20 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "too long"));
    }
    let mut content = vec![0u8; len];
    stream.read_exact(&mut content)?;
    Ok((head[0], content))
}

/// One LDAPMessage from the client: its messageID (as the whole INTEGER
/// TLV) and the tag of its protocolOp.
pub fn read_request(stream: &mut impl Read) -> io::Result<(Vec<u8>, u8)> {
    let (tag, content) = read_tlv(stream)?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not an LDAPMessage");
    if tag != 0x30 || content.len() < 3 || content[0] != 0x02 {
        return Err(bad());
    }
    let id_len = usize::from(content[1]);
    let msgid = content.get(..2 + id_len).ok_or_else(bad)?.to_vec();
    let op = *content.get(2 + id_len).ok_or_else(bad)?;
    Ok((msgid, op))
}

pub const BIND_REQUEST: u8 = 0x60;
pub const UNBIND_REQUEST: u8 = 0x42;
pub const SEARCH_REQUEST: u8 = 0x63;
pub const BIND_RESPONSE: u8 = 0x61;
pub const SEARCH_ENTRY: u8 = 0x64;
pub const SEARCH_DONE: u8 = 0x65;

/// An LDAPResult-shaped protocolOp: resultCode, matchedDN, diagnosticMessage.
pub fn result_op(tag: u8, rc: u8) -> Vec<u8> {
    tlv(tag, &[tlv(0x0a, &[rc]), tlv(0x04, b""), tlv(0x04, b"")].concat())
}

pub fn entry_op(dn: &[u8], attrs: &[(&str, &[&[u8]])]) -> Vec<u8> {
    let attrs: Vec<u8> = attrs
        .iter()
        .flat_map(|(name, values)| {
            let values: Vec<u8> = values.iter().flat_map(|v| tlv(0x04, v)).collect();
            tlv(0x30, &[tlv(0x04, name.as_bytes()), tlv(0x31, &values)].concat())
        })
        .collect();
    tlv(SEARCH_ENTRY, &[tlv(0x04, dn), tlv(0x30, &attrs)].concat())
}

pub fn message(msgid: &[u8], op: &[u8]) -> Vec<u8> {
    tlv(0x30, &[msgid, op].concat())
}

/// What a fake LDAP server answers to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Nothing, ever (reads until the client gives up).
    Silent,
    /// These protocolOps, each in an LDAPMessage with the request's ID.
    Ops(Vec<Vec<u8>>),
    /// These bytes as they are.
    Raw(Vec<u8>),
    /// Random bytes, again for every later request.
    Junk,
    /// Closes the connection.
    Close,
    /// The first half of these protocolOps' bytes, then a reset (RST):
    /// the server died in the middle of its answer.
    HalfThenReset(Vec<Vec<u8>>),
}

/// A fake LDAP server: `bind` answers binds, `search` searches.
pub fn fake_ldap(bind: Reply, search: Reply) -> FakeServer {
    FakeServer::start(move |mut stream| {
        let mut junk_mode = false;
        loop {
            let Ok((msgid, op)) = read_request(&mut stream) else { return };
            let reply = match op {
                _ if junk_mode => Reply::Junk,
                BIND_REQUEST => bind.clone(),
                SEARCH_REQUEST => search.clone(),
                UNBIND_REQUEST => return,
                _ => continue,
            };
            let written = match reply {
                Reply::Silent => return drain(stream),
                Reply::Ops(ops) => ops.iter().try_for_each(|op| stream.write_all(&message(&msgid, op))),
                Reply::Raw(bytes) => stream.write_all(&bytes),
                Reply::Junk => {
                    junk_mode = true;
                    stream.write_all(&junk(700))
                }
                Reply::Close => {
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                Reply::HalfThenReset(ops) => {
                    let whole: Vec<u8> = ops.iter().flat_map(|op| message(&msgid, op)).collect();
                    let _ = stream.write_all(&whole[..whole.len() / 2]);
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    return;
                }
            };
            if written.is_err() {
                return;
            }
        }
    })
}

pub fn bind_ok() -> Reply {
    Reply::Ops(vec![result_op(BIND_RESPONSE, 0)])
}
