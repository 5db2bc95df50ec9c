//! `Directory` over LDAP (ldap3, synchronous): a small pool of connections
//! per process, made on first use (never before Apache forks), bound as the
//! service account, every operation bounded by `TwoFactorLDAPTimeout`, and
//! failover across the configured servers in order.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ldap3::{LdapConn, LdapConnSettings, LdapError, Mod, ResultEntry, SearchEntry, SearchOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::escape::filter_value;
use super::{Change, Directory, Lookup, StoreError, UserEntry};
use crate::config::LdapSettings;
use crate::config::Scope;

/// How long a server that failed to connect is skipped (unless all are down).
const RETRY_DOWN_SERVER_AFTER: Duration = Duration::from_secs(30);
/// Idle connections kept per process; more are closed after use.
const MAX_IDLE: usize = 32;
/// Operations a connection carries before it is closed and replaced: a
/// bound on whatever a connection may accumulate. (ldap3 0.12 keeps the
/// message ID of every search done with its plain `search()` for the
/// connection's life; `search_entries` avoids that, this is the backstop.)
const MAX_OPERATIONS_PER_CONNECTION: u32 = 50_000;

/// A bound connection, the server it goes to, and how much it was used.
struct Pooled {
    server: usize,
    conn: LdapConn,
    operations: u32,
}

pub struct LdapDirectory {
    settings: LdapSettings,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Idle connections.
    idle: Mutex<Vec<Pooled>>,
    /// Per configured URL: skip it until then.
    down_until: Mutex<Vec<Option<Instant>>>,
}

impl std::fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let servers: Vec<String> = self.settings.urls.iter().map(|u| u.server()).collect();
        write!(f, "LdapDirectory({})", servers.join(" "))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LdapDirectory {
    /// Prepares the TLS configuration; connects nothing.
    pub fn new(settings: &LdapSettings) -> Result<LdapDirectory, String> {
        let needs_tls = settings.starttls || settings.urls.iter().any(|u| u.tls);
        let tls = if needs_tls { Some(Arc::new(tls_config(settings.ca_certificate.as_deref())?)) } else { None };
        Ok(LdapDirectory {
            tls,
            idle: Mutex::new(Vec::new()),
            down_until: Mutex::new(vec![None; settings.urls.len()]),
            settings: settings.clone(),
        })
    }

    fn timeout(&self) -> Duration {
        self.settings.timeout
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

    /// Skips server `i` for a while, and closes its idle connections.
    fn mark_down(&self, i: usize) {
        lock(&self.down_until)[i] = Some(Instant::now() + RETRY_DOWN_SERVER_AFTER);
        lock(&self.idle).retain(|p| p.server != i);
    }

    /// A new, bound connection to the first server that answers.
    fn connect(&self) -> Result<Pooled, StoreError> {
        let mut last_error = String::from("no LDAP server configured");
        for i in self.servers_to_try(Instant::now()) {
            let url = &self.settings.urls[i];
            match self.connect_to(&url.server()) {
                Ok(conn) => {
                    lock(&self.down_until)[i] = None;
                    return Ok(Pooled { server: i, conn, operations: 0 });
                }
                Err(e) => {
                    self.mark_down(i);
                    last_error = format!("{}: {e}", url.server());
                }
            }
        }
        Err(StoreError::Unavailable(last_error))
    }

    /// An idle connection to the most preferred server that is up, if
    /// there is one. Idle connections to a later server are dropped once
    /// an earlier one is up again: the servers' order is a preference, and
    /// service returns to the first when it comes back.
    fn take_idle(&self) -> Option<Pooled> {
        let preferred = self.servers_to_try(Instant::now()).first().copied().unwrap_or(0);
        let mut idle = lock(&self.idle);
        idle.retain(|p| p.server <= preferred);
        idle.pop()
    }

    fn connect_to(&self, server: &str) -> Result<LdapConn, String> {
        let mut settings =
            LdapConnSettings::new().set_conn_timeout(self.timeout()).set_starttls(self.settings.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        // Guarded: the StartTLS answer is parsed here (see `guarded`).
        let mut conn =
            guarded(|| LdapConn::with_settings(settings, server)).map_err(|()| MALFORMED)?.map_err(|e| describe(&e))?;
        if let (Some(dn), Some(password)) = (&self.settings.bind_dn, &self.settings.bind_password) {
            let password = std::str::from_utf8(password.expose()).map_err(|_| "the bind password is not UTF-8")?;
            let timeout = self.timeout();
            let result = guarded(|| conn.with_timeout(timeout).simple_bind(dn, password))
                .map_err(|()| MALFORMED)?
                .map_err(|e| describe(&e))?;
            if result.rc != 0 {
                return Err(format!("bind as the service account refused (rc={} {})", result.rc, result.text));
            }
        }
        Ok(conn)
    }

    /// Runs `op` on a pooled connection (or a new one), and once more on a
    /// new connection when the first turns out dead or its server does not
    /// answer in time (see below): safe to repeat, because modifies are
    /// compare-and-swap.
    fn with_conn<T>(&self, mut op: impl FnMut(&mut LdapConn) -> Result<T, LdapError>) -> Result<T, StoreError> {
        let pooled = self.take_idle();
        let from_pool = pooled.is_some();
        let mut pooled = match pooled {
            Some(pooled) => pooled,
            None => self.connect()?,
        };
        // A connection whose operation panicked (see `guarded`) is in an
        // unknown state: dropped, never pooled.
        let garbage = || StoreError::Garbage(MALFORMED.into());
        match guarded(|| op(&mut pooled.conn)).map_err(|()| garbage())? {
            Ok(value) => {
                self.check_in(pooled);
                Ok(value)
            }
            Err(e) if is_connection_error(&e) || matches!(e, LdapError::Timeout { .. }) => {
                let server = pooled.server;
                drop(pooled);
                // A pooled socket found closed says little (the server may
                // have restarted): reconnect. A server that let an
                // operation time out, or a fresh connection drop, is down;
                // the operation is tried once more only on another server,
                // so that a request waits for one timeout, not two.
                let stale_socket = from_pool && is_connection_error(&e);
                if !stale_socket {
                    self.mark_down(server);
                    if self.settings.urls.len() == 1 {
                        return Err(operation_error(&e));
                    }
                }
                let mut fresh = self.connect()?;
                let value =
                    guarded(|| op(&mut fresh.conn)).map_err(|()| garbage())?.map_err(|e| operation_error(&e))?;
                self.check_in(fresh);
                Ok(value)
            }
            Err(e) => Err(operation_error(&e)),
        }
    }

    fn check_in(&self, mut pooled: Pooled) {
        pooled.operations = pooled.operations.saturating_add(1);
        if pooled.conn.is_closed() {
            return;
        }
        if pooled.operations >= MAX_OPERATIONS_PER_CONNECTION {
            // Worn out (see MAX_OPERATIONS_PER_CONNECTION): a clean goodbye.
            let _ = guarded(|| pooled.conn.unbind());
            return;
        }
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push(pooled);
        }
    }

    fn search_entries(&self, filter: &str, attrs: &[&str], limit: i32) -> Result<(Vec<SearchEntry>, bool), StoreError> {
        let url = &self.settings.urls[0];
        let scope = match url.scope {
            Scope::Base => ldap3::Scope::Base,
            Scope::One => ldap3::Scope::OneLevel,
            Scope::Sub => ldap3::Scope::Subtree,
        };
        let timeout = self.timeout();
        // A streaming search ended with `result()`: that call tells ldap3 the
        // search's message ID is free again. Its plain `search()` never
        // does, and the connection then keeps every ID it ever used.
        let (entries, outcome) = self.with_conn(|conn| {
            let mut stream = conn
                .with_search_options(SearchOptions::new().sizelimit(limit))
                .with_timeout(timeout)
                .streaming_search(&url.base, scope, filter, attrs.to_vec())?;
            let mut entries = Vec::new();
            while let Some(entry) = stream.next()? {
                entries.push(entry);
            }
            Ok((entries, stream.result()))
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

    fn modify(&self, dn: &str, changes: &[Change]) -> Result<(), StoreError> {
        let mods: Vec<Mod<String>> = changes
            .iter()
            .map(|c| match c {
                Change::Add(a, v) => Mod::Add(a.clone(), v.iter().cloned().collect::<HashSet<_>>()),
                Change::Delete(a, v) => Mod::Delete(a.clone(), v.iter().cloned().collect::<HashSet<_>>()),
                Change::Replace(a, v) => Mod::Replace(a.clone(), v.iter().cloned().collect::<HashSet<_>>()),
            })
            .collect();
        let timeout = self.timeout();
        let result = self.with_conn(|conn| conn.with_timeout(timeout).modify(dn, mods.clone()))?;
        match result.rc {
            0 => Ok(()),
            // noSuchAttribute, constraintViolation (single value taken), attributeOrValueExists
            16 | 19 | 20 => Err(StoreError::Conflict),
            // busy, unavailable, unwillingToPerform
            51..=53 => Err(StoreError::Unavailable(format!("modify failed (rc={} {})", result.rc, result.text))),
            rc => Err(StoreError::Refused(format!("rc={rc} {}", result.text))),
        }
    }

    fn users_with(&self, attr: &str) -> Result<Vec<UserEntry>, StoreError> {
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
