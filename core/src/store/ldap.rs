//! `Directory` over LDAP (ldap3's async client): per process, one small
//! runtime and a few connections on which the request threads' operations
//! are multiplexed by message ID, all made on first use (never before
//! Apache forks); bound as the service account, every operation bounded by
//! `TwoFactorLDAPTimeout`, and failover across the configured servers in
//! order.
//!
//! Why not a pool of synchronous connections: ldap3's `LdapConn` carries a
//! runtime of its own, so a pool of them costs a runtime per connection and
//! a connection per busy thread. Here a request thread sends its operation
//! on a shared connection and waits for its answer; one runtime thread
//! moves the bytes of every connection.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, Mod, ResultEntry, SearchEntry, SearchOptions,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::runtime::Runtime;

use super::escape::filter_value;
use super::{Change, Directory, Lookup, StoreError, UserEntry};
use crate::config::LdapSettings;
use crate::config::Scope;

/// How long a server that failed to connect is skipped (unless all are down).
const RETRY_DOWN_SERVER_AFTER: Duration = Duration::from_secs(30);
/// Connections kept per process. Each carries any number of operations at
/// once; two spread the work over two of the directory's threads and keep
/// one in service while the other is replaced.
const LINKS: usize = 2;
/// Operations a connection carries before it is closed and replaced: a
/// bound on whatever a connection may accumulate. (ldap3 0.12 keeps the
/// message ID of every search done with its plain `search()` for the
/// connection's life; `search_entries` avoids that, this is the backstop.)
/// Rare on purpose: each replacement leaves some memory behind in the
/// allocator (the soak grew 1 MB over 3.4 million requests with one every
/// 50,000 operations, 0.4 MB with none).
const MAX_OPERATIONS_PER_CONNECTION: u32 = 10_000_000;

/// A bound connection and the server it goes to. Cloning the handle is how
/// operations share it.
struct Link {
    server: usize,
    ldap: Ldap,
    operations: std::sync::atomic::AtomicU32,
}

/// The process's connections, and those being made.
#[derive(Default)]
struct Links {
    open: Vec<Arc<Link>>,
    connecting: usize,
    /// Round robin over `open`.
    next: usize,
    /// Bumped when a connection attempt ends, with its error if it failed:
    /// a thread that waited for it shares that answer instead of waiting
    /// for a second timeout of its own.
    attempts: u64,
    last_failure: Option<StoreError>,
}

pub struct LdapDirectory {
    settings: LdapSettings,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Made by the first operation, in the process that runs it.
    runtime: OnceLock<Runtime>,
    links: Mutex<Links>,
    /// Signalled when a connection attempt ends.
    link_attempt_ended: Condvar,
    /// Per configured URL: skip it until then.
    down_until: Mutex<Vec<Option<Instant>>>,
    /// Told of every operation (the module's metrics).
    observer: OnceLock<Observer>,
}

/// Told of each directory operation: its kind (`search`, `modify`), whether
/// the directory answered (a lost compare-and-swap is an answer), and how
/// long it took.
pub type Observer = fn(&'static str, bool, Duration);

impl std::fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let servers: Vec<String> = self.settings.urls.iter().map(|u| u.server()).collect();
        write!(f, "LdapDirectory({})", servers.join(" "))
    }
}

impl Drop for LdapDirectory {
    fn drop(&mut self) {
        // Never wait for the directory on the way out.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How one try of an operation ended, short of an answer.
enum Failure {
    /// The connection is gone (closed, reset, refused to carry the operation).
    Connection(String),
    /// The server did not answer in time.
    Timeout,
    /// Anything else: the server answered, or the request could not be made.
    Other(StoreError),
}

impl Failure {
    fn from_ldap(e: LdapError) -> Failure {
        match e {
            LdapError::Timeout { .. } => Failure::Timeout,
            e if is_connection_error(&e) => Failure::Connection(describe(&e)),
            e => Failure::Other(operation_error(&e)),
        }
    }

    fn into_store_error(self) -> StoreError {
        match self {
            Failure::Connection(d) => StoreError::Unavailable(d),
            Failure::Timeout => StoreError::Unavailable("timed out".into()),
            Failure::Other(e) => e,
        }
    }
}

impl LdapDirectory {
    /// Prepares the TLS configuration; connects nothing, starts nothing.
    pub fn new(settings: &LdapSettings) -> Result<LdapDirectory, String> {
        let needs_tls = settings.starttls || settings.urls.iter().any(|u| u.tls);
        let tls = if needs_tls { Some(Arc::new(tls_config(settings.ca_certificate.as_deref())?)) } else { None };
        Ok(LdapDirectory {
            tls,
            runtime: OnceLock::new(),
            links: Mutex::new(Links::default()),
            link_attempt_ended: Condvar::new(),
            down_until: Mutex::new(vec![None; settings.urls.len()]),
            observer: OnceLock::new(),
            settings: settings.clone(),
        })
    }

    fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    /// The runtime that moves the connections' bytes: one thread, made on
    /// first use so that it belongs to the process that uses it (Apache's
    /// parent forks its children; threads do not survive a fork).
    fn runtime(&self) -> Result<&Runtime, StoreError> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .thread_name("twofactor-ldap")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start the directory client: {e}")))?;
        // Two first uses at once: one runtime is kept, the other dropped unused.
        if let Err(unused) = self.runtime.set(runtime) {
            unused.shutdown_background();
        }
        self.runtime.get().ok_or_else(|| StoreError::Unavailable("the directory client did not start".into()))
    }

    /// The servers to try, in order: those not marked down; all of them,
    /// in order, when every one is marked down (one may be back).
    fn servers_to_try(&self, now: Instant) -> Vec<usize> {
        let down = lock(&self.down_until);
        let up: Vec<usize> = (0..down.len()).filter(|&i| down[i].is_none_or(|t| t <= now)).collect();
        if up.is_empty() {
            (0..down.len()).collect()
        } else {
            up
        }
    }

    /// Skips server `i` for a while, and stops giving out its connections.
    fn mark_down(&self, i: usize) {
        lock(&self.down_until)[i] = Some(Instant::now() + RETRY_DOWN_SERVER_AFTER);
        lock(&self.links).open.retain(|link| link.server != i);
    }

    /// A connection for one operation, and whether it was already open:
    /// an open one to the most preferred server that is up, in turn; a new
    /// one while fewer than `LINKS` are open. Connections to a later server
    /// are given up once an earlier one is up again: the servers' order is a
    /// preference, and service returns to the first when it comes back.
    fn link(&self, runtime: &Runtime) -> Result<(Arc<Link>, bool), StoreError> {
        let preferred = self.servers_to_try(Instant::now()).first().copied().unwrap_or(0);
        // Long enough for an attempt that tries every server (see `connect_to`).
        let servers = u32::try_from(self.settings.urls.len()).unwrap_or(u32::MAX);
        let deadline = Instant::now() + 2 * self.timeout() * servers + Duration::from_secs(1);
        let mut links = lock(&self.links);
        links.open.retain(|link| link.server <= preferred);
        let attempts_seen = links.attempts;
        loop {
            // Having waited for a connection attempt that failed: share its
            // failure rather than wait for another behind it.
            if links.attempts != attempts_seen {
                if let Some(failure) = links.last_failure.clone() {
                    return Err(failure);
                }
            }
            if links.open.len() + links.connecting < LINKS {
                links.connecting += 1;
                drop(links);
                let made = self.connect(runtime);
                let mut links = lock(&self.links);
                links.connecting -= 1;
                links.attempts = links.attempts.wrapping_add(1);
                links.last_failure = made.as_ref().err().cloned();
                if let Ok(link) = &made {
                    if links.open.len() < LINKS {
                        links.open.push(link.clone());
                    }
                }
                drop(links);
                self.link_attempt_ended.notify_all();
                return made.map(|link| (link, false));
            }
            if !links.open.is_empty() {
                let i = links.next % links.open.len();
                links.next = links.next.wrapping_add(1);
                return Ok((links.open[i].clone(), true));
            }
            // Every slot is being connected: wait for an attempt to end.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Unavailable("timed out waiting for a connection".into()));
            }
            links = self.link_attempt_ended.wait_timeout(links, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// A new, bound connection to the first server that answers.
    fn connect(&self, runtime: &Runtime) -> Result<Arc<Link>, StoreError> {
        let mut last_error = String::from("no LDAP server configured");
        for i in self.servers_to_try(Instant::now()) {
            let url = &self.settings.urls[i];
            match self.connect_to(runtime, &url.server()) {
                Ok(ldap) => {
                    lock(&self.down_until)[i] = None;
                    return Ok(Arc::new(Link { server: i, ldap, operations: Default::default() }));
                }
                Err(e) => {
                    self.mark_down(i);
                    last_error = format!("{}: {e}", url.server());
                }
            }
        }
        Err(StoreError::Unavailable(last_error))
    }

    fn connect_to(&self, runtime: &Runtime, server: &str) -> Result<Ldap, String> {
        let mut settings =
            LdapConnSettings::new().set_conn_timeout(self.timeout()).set_starttls(self.settings.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let timeout = self.timeout();
        let bind = self.settings.bind_dn.as_deref().zip(self.settings.bind_password.as_ref());
        let bind = match bind {
            Some((dn, password)) => {
                Some((dn, std::str::from_utf8(password.expose()).map_err(|_| "the bind password is not UTF-8")?))
            }
            None => None,
        };
        let open = async {
            let (connection, mut ldap) =
                LdapConnAsync::with_settings(settings, server).await.map_err(|e| describe(&e))?;
            // The connection's bytes are moved by the runtime's thread; it
            // ends when the last handle is dropped or the socket closes.
            tokio::spawn(async move {
                let _ = connection.drive().await;
            });
            if let Some((dn, password)) = bind {
                let result = ldap.with_timeout(timeout).simple_bind(dn, password).await.map_err(|e| describe(&e))?;
                if result.rc != 0 {
                    return Err(format!("bind as the service account refused (rc={} {})", result.rc, result.text));
                }
            }
            Ok(ldap)
        };
        // The connect timeout covers TCP only; TLS and StartTLS are bounded
        // here, the bind by its own timeout. Guarded: the StartTLS and bind
        // answers are parsed in this thread (see `guarded`).
        guarded(|| {
            runtime.block_on(async {
                tokio::time::timeout(2 * timeout, open).await.unwrap_or_else(|_| Err("timed out".to_string()))
            })
        })
        .map_err(|()| MALFORMED.to_string())?
    }

    /// Runs `op` on a connection once.
    fn attempt<T, F, Fut>(&self, runtime: &Runtime, link: &Link, op: &F) -> Result<T, Failure>
    where
        F: Fn(Ldap) -> Fut,
        Fut: Future<Output = Result<T, LdapError>>,
    {
        // ldap3's own timeout ends the operation cleanly (its message ID
        // freed); this one only guards against a future that never ends.
        let backstop = self.timeout() + Duration::from_secs(1);
        let outcome =
            guarded(|| runtime.block_on(async { tokio::time::timeout(backstop, op(link.ldap.clone())).await }));
        match outcome {
            // A connection whose answer panicked the decoder (see
            // `guarded`) is in an unknown state: given up.
            Err(()) => {
                self.retire(link);
                Err(Failure::Other(StoreError::Garbage(MALFORMED.into())))
            }
            Ok(Err(_)) => Err(Failure::Timeout),
            Ok(Ok(result)) => result.map_err(Failure::from_ldap),
        }
    }

    /// Runs `op` on a shared connection (or a new one). A connection found
    /// closed says little (the server may have restarted): the operation
    /// goes to the next one, or a new one. A server that lets an operation
    /// time out, or whose new connection drops, is down: the operation is
    /// tried once more, only on another server, so that a request waits for
    /// one timeout, not two. Safe to repeat, because modifies are
    /// compare-and-swap.
    fn with_link<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(Ldap) -> Fut,
        Fut: Future<Output = Result<T, LdapError>>,
    {
        let runtime = self.runtime()?;
        let mut tried_another_server = false;
        let mut last = Failure::Connection("no connection".into());
        // Every open connection may turn out closed, then a new one.
        for _ in 0..LINKS + 2 {
            let (link, was_open) = self.link(runtime)?;
            let failure = match self.attempt(runtime, &link, &op) {
                Ok(value) => {
                    self.used(&link);
                    return Ok(value);
                }
                Err(Failure::Other(e)) => return Err(e),
                Err(failure) => failure,
            };
            self.retire(&link);
            let closed = was_open && matches!(failure, Failure::Connection(_));
            if !closed {
                self.mark_down(link.server);
                if tried_another_server || self.settings.urls.len() == 1 {
                    return Err(failure.into_store_error());
                }
                tried_another_server = true;
            }
            last = failure;
        }
        Err(last.into_store_error())
    }

    /// Counts an operation; a connection that has carried enough is replaced.
    fn used(&self, link: &Arc<Link>) {
        let done = link.operations.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if done == MAX_OPERATIONS_PER_CONNECTION {
            // Worn out (see MAX_OPERATIONS_PER_CONNECTION): given up; it
            // closes when the operations still on it have ended.
            self.retire(link);
        }
    }

    /// Gives no more operations to `link`.
    fn retire(&self, link: &Link) {
        lock(&self.links).open.retain(|open| !std::ptr::eq(Arc::as_ptr(open), link));
    }

    fn search_entries(&self, filter: &str, attrs: &[&str], limit: i32) -> Result<(Vec<SearchEntry>, bool), StoreError> {
        let url = &self.settings.urls[0];
        self.search_under(&url.base, url.scope, filter, attrs, limit)
    }

    fn search_under(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        limit: i32,
    ) -> Result<(Vec<SearchEntry>, bool), StoreError> {
        let scope = match scope {
            Scope::Base => ldap3::Scope::Base,
            Scope::One => ldap3::Scope::OneLevel,
            Scope::Sub => ldap3::Scope::Subtree,
        };
        let timeout = self.timeout();
        // A streaming search ended with `finish()`: that call tells ldap3
        // the search's message ID is free again. Its plain `search()` never
        // does, and the connection then keeps every ID it ever used.
        let (entries, outcome) = self.with_link(|mut ldap| async move {
            let mut stream = ldap
                .with_search_options(SearchOptions::new().sizelimit(limit))
                .with_timeout(timeout)
                .streaming_search(base, scope, filter, attrs)
                .await?;
            let mut entries = Vec::new();
            while let Some(entry) = stream.next().await? {
                entries.push(entry);
            }
            let outcome: LdapResult = stream.finish().await;
            Ok((entries, outcome))
        })?;
        // 4 = sizeLimitExceeded: more entries than asked for.
        let truncated = outcome.rc == 4;
        if outcome.rc != 0 && !truncated {
            return Err(StoreError::Unavailable(format!("search failed (rc={} {})", outcome.rc, outcome.text)));
        }
        let mut parsed = Vec::with_capacity(entries.len());
        for entry in entries.into_iter().filter(|e: &ResultEntry| !e.is_ref() && !e.is_intermediate()) {
            // ldap3 panics on a malformed entry; a broken server must not take the request down.
            let entry = std::panic::catch_unwind(move || SearchEntry::construct(entry))
                .map_err(|_| StoreError::Garbage("malformed search entry".into()))?;
            parsed.push(entry);
        }
        Ok((parsed, truncated))
    }

    fn user_attribute(&self) -> &str {
        &self.settings.urls[0].user_attribute
    }

    fn base_filter(&self) -> &str {
        &self.settings.urls[0].filter
    }
}

impl Directory for LdapDirectory {
    fn find_user(&self, username: &str, attrs: &[&str]) -> Result<Lookup, StoreError> {
        let started = Instant::now();
        let result = self.look_up(username, attrs);
        self.observed("search", started, &result);
        result
    }

    fn modify(&self, dn: &str, changes: &[Change]) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.apply(dn, changes);
        self.observed("modify", started, &result);
        result
    }

    fn users_with(&self, attr: &str) -> Result<Vec<UserEntry>, StoreError> {
        let started = Instant::now();
        let result = self.all_with(attr);
        self.observed("search", started, &result);
        result
    }
}

/// One entry of an administrative search, text and binary values apart.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub dn: String,
    pub attrs: Vec<(String, Vec<String>)>,
    pub binary: Vec<(String, Vec<Vec<u8>>)>,
}

impl Found {
    pub fn values(&self, attr: &str) -> &[String] {
        self.attrs.iter().find(|(n, _)| n.eq_ignore_ascii_case(attr)).map_or(&[], |(_, v)| v.as_slice())
    }

    pub fn binary_values(&self, attr: &str) -> &[Vec<u8>] {
        self.binary.iter().find(|(n, _)| n.eq_ignore_ascii_case(attr)).map_or(&[], |(_, v)| v.as_slice())
    }
}

impl LdapDirectory {
    /// A search anywhere in the directory, for the administrator's tools
    /// (`twofactorctl check-directory` reads the schema and access rights
    /// with it); at most `limit` entries (0: the server's limit).
    pub fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        limit: i32,
    ) -> Result<Vec<Found>, StoreError> {
        let (entries, _) = self.search_under(base, scope, filter, attrs, limit)?;
        Ok(entries
            .into_iter()
            .map(|e| Found {
                dn: e.dn,
                attrs: e.attrs.into_iter().collect(),
                binary: e.bin_attrs.into_iter().collect(),
            })
            .collect())
    }

    /// Reports every later operation to `observer` (set once).
    pub fn observe_with(&self, observer: Observer) {
        let _ = self.observer.set(observer);
    }

    fn observed<T>(&self, op: &'static str, started: Instant, result: &Result<T, StoreError>) {
        if let Some(observer) = self.observer.get() {
            let answered = !matches!(result, Err(StoreError::Unavailable(_) | StoreError::Garbage(_)));
            observer(op, answered, started.elapsed());
        }
    }

    fn look_up(&self, username: &str, attrs: &[&str]) -> Result<Lookup, StoreError> {
        let user_attr = self.user_attribute().to_string();
        let filter = format!("(&{}({}={}))", self.base_filter(), user_attr, filter_value(username));
        let mut wanted: Vec<&str> = vec![&user_attr];
        wanted.extend(attrs.iter().copied().filter(|a| !a.eq_ignore_ascii_case(&user_attr)));
        let (mut entries, truncated) = self.search_entries(&filter, &wanted, 2)?;
        if truncated || entries.len() > 1 {
            return Ok(Lookup::Ambiguous);
        }
        let Some(entry) = entries.pop() else { return Ok(Lookup::NotFound) };
        let entry = into_user_entry(entry, &user_attr, Some(username))?;
        Ok(entry.map_or(Lookup::NotFound, Lookup::Found))
    }

    /// Whether the bound account may write `attr` on `dn`, found out with a
    /// modify that adds a probe value and deletes it again (one operation:
    /// nothing changes, whatever the answer). Only "insufficient access"
    /// (rc 50) means no: schema refusals come after the access check.
    pub fn may_write(&self, dn: &str, attr: &str) -> Result<bool, StoreError> {
        const PROBE: &str = "twofactorctl check-directory probe";
        let values = || [PROBE.to_string()].into_iter().collect::<HashSet<_>>();
        let mods = vec![Mod::Add(attr.to_string(), values()), Mod::Delete(attr.to_string(), values())];
        Ok(self.modify_with(dn, mods)?.rc != 50)
    }

    /// One modify operation; the server's answer, whatever its code.
    fn modify_with(&self, dn: &str, mods: Vec<Mod<String>>) -> Result<LdapResult, StoreError> {
        let timeout = self.timeout();
        self.with_link(|mut ldap| {
            let mods = mods.clone();
            async move { ldap.with_timeout(timeout).modify(dn, mods).await }
        })
    }

    fn apply(&self, dn: &str, changes: &[Change]) -> Result<(), StoreError> {
        let mods: Vec<Mod<String>> = changes
            .iter()
            .map(|c| match c {
                Change::Add(a, v) => Mod::Add(a.clone(), v.iter().cloned().collect::<HashSet<_>>()),
                Change::Delete(a, v) => Mod::Delete(a.clone(), v.iter().cloned().collect::<HashSet<_>>()),
                Change::Replace(a, v) => Mod::Replace(a.clone(), v.iter().cloned().collect::<HashSet<_>>()),
            })
            .collect();
        let result = self.modify_with(dn, mods)?;
        match result.rc {
            0 => Ok(()),
            // noSuchAttribute, constraintViolation (single value taken), attributeOrValueExists
            16 | 19 | 20 => Err(StoreError::Conflict),
            // busy, unavailable, unwillingToPerform
            51..=53 => Err(StoreError::Unavailable(format!("modify failed (rc={} {})", result.rc, result.text))),
            rc => Err(StoreError::Refused(format!("rc={rc} {}", result.text))),
        }
    }

    fn all_with(&self, attr: &str) -> Result<Vec<UserEntry>, StoreError> {
        let user_attr = self.user_attribute().to_string();
        let filter = format!("(&{}({}=*))", self.base_filter(), attr);
        let (entries, _) = self.search_entries(&filter, &[&user_attr, attr], 0)?;
        let mut users = Vec::with_capacity(entries.len());
        for entry in entries {
            if let Some(user) = into_user_entry(entry, &user_attr, None)? {
                users.push(user);
            }
        }
        Ok(users)
    }
}

/// The entry's canonical username: the value of the username attribute equal
/// (ignoring ASCII case) to `asked`, or its only value when nothing was asked.
fn into_user_entry(entry: SearchEntry, user_attr: &str, asked: Option<&str>) -> Result<Option<UserEntry>, StoreError> {
    let names: Vec<String> =
        entry.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(user_attr)).map(|(_, v)| v.clone()).unwrap_or_default();
    let username = match asked {
        Some(asked) => names.into_iter().find(|n| n.eq_ignore_ascii_case(asked)),
        None => names.into_iter().next(),
    };
    let Some(username) = username else { return Ok(None) };
    Ok(Some(UserEntry::new(entry.dn, username, entry.attrs.into_iter().collect())))
}

const MALFORMED: &str = "malformed LDAP response";

/// Runs `f`, turning a panic into `Err`. ldap3 0.12 decodes responses with
/// `expect` and panics on malformed ones (a bind or modify response without
/// its result code, say: found by core/tests/ldap_store.rs), and it parses an
/// operation's response in the calling thread. A broken or hostile server
/// must not take the request down with it.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, ()> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| ())
}

fn is_connection_error(e: &LdapError) -> bool {
    matches!(
        e,
        LdapError::Io { .. }
            | LdapError::EndOfStream
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
    )
}

fn operation_error(e: &LdapError) -> StoreError {
    match e {
        LdapError::DecodingUTF8 => StoreError::Garbage(describe(e)),
        _ => StoreError::Unavailable(describe(e)),
    }
}

fn describe(e: &LdapError) -> String {
    match e {
        LdapError::Timeout { .. } => "timed out".to_string(),
        other => other.to_string(),
    }
}

/// TLS to the directory: the configured CA, else the system's roots.
fn tls_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("TwoFactorLDAPCACertificate: {e}"))?;
                roots.add(cert).map_err(|e| format!("TwoFactorLDAPCACertificate: {e}"))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err("no CA certificate to verify the directory's TLS certificate with".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
