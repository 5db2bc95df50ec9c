//! What each configured server keeps for its requests.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use twofactor_core::access::Directories;
use twofactor_core::cache::CompletionCache;
use twofactor_core::config::{LdapSettings, Settings};
use twofactor_core::outage::{ErrorLine, Outage, Recovered};
use twofactor_core::store::{Directory, LdapDirectory};

/// The name the health check looks up: any answer, found or not, is health.
const HEALTH_PROBE_USER: &str = "twofactor-health-probe";

/// Entries of the per-process completion cache.
const CACHE_CAPACITY: usize = 10_000;

/// Settings plus the forms the hot path needs ready-made, the directory
/// (connections are made on first use, in the child) and the cache.
pub struct ServerState {
    pub settings: Settings,
    /// The identity header's name as a C string, for table look-ups.
    pub user_header: CString,
    pub secret_header: Option<CString>,
    pub session_header: Option<CString>,
    /// Names a client may not list in `Connection`.
    pub protected_headers: Vec<String>,
    /// `TwoFactorLDAPURL`: every write, the reads behind compare-and-swaps,
    /// the challenge pages.
    pub directory: Option<LdapDirectory>,
    /// `TwoFactorLDAPReadURL`, when set: the access check's reads.
    pub reader: Option<LdapDirectory>,
    pub cache: CompletionCache,
    /// This process's view of the directory's health, for the log lines.
    outage: Mutex<Outage>,
    /// `outage.is_down()`, readable without the lock on every answer.
    directory_down: AtomicBool,
    /// The health check's last look at the directory, and when.
    probe: Mutex<Option<(Instant, Result<(), &'static str>)>>,
}

/// A header name from a validated directive; validation refuses NUL bytes.
fn c_name(name: &str) -> CString {
    CString::new(name).unwrap_or_default()
}

impl ServerState {
    pub fn new(settings: Settings) -> Result<Self, String> {
        let directory = settings.ldap.as_ref().map(LdapDirectory::new).transpose()?;
        let reader = match &settings.ldap {
            Some(ldap) if !ldap.read_urls.is_empty() => {
                let replicas = LdapSettings { urls: ldap.read_urls.clone(), ..ldap.clone() };
                Some(LdapDirectory::new(&replicas)?)
            }
            _ => None,
        };
        let secret_name = settings.proxy_secret.as_ref().map(|(name, _)| name.clone());
        let mut protected_headers = vec![settings.user_header.clone()];
        protected_headers.extend(secret_name.clone());
        protected_headers.extend(settings.session_header.clone());
        Ok(ServerState {
            user_header: c_name(&settings.user_header),
            secret_header: secret_name.as_deref().map(c_name),
            session_header: settings.session_header.as_deref().map(c_name),
            protected_headers,
            directory,
            reader,
            cache: CompletionCache::new(settings.cache_ttl, CACHE_CAPACITY),
            outage: Mutex::new(Outage::default()),
            directory_down: AtomicBool::new(false),
            probe: Mutex::new(None),
            settings,
        })
    }

    /// A request refused because the directory failed: whether to write
    /// the error line (every outage's first, then at most one per 10 s).
    pub fn directory_failed(&self, now: Instant) -> ErrorLine {
        let mut outage = self.outage.lock().unwrap_or_else(|p| p.into_inner());
        let line = outage.error(now);
        self.directory_down.store(true, Ordering::Relaxed);
        line
    }

    /// Whether the directory answers, looked at again only when the last
    /// look is older than `fresh`: a load balancer asking every second
    /// makes at most one search per child per `fresh`. Concurrent checks
    /// wait for one look. `Err` is the reason (`StoreError::reason`).
    pub fn probe_directory(&self, fresh: Duration) -> Result<(), &'static str> {
        let mut last = self.probe.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, result)) = *last {
            if at.elapsed() < fresh {
                return result;
            }
        }
        // A search as any request makes (a connection, the bind, the base
        // and filter), on the writer and on the replicas the access check reads.
        let probe = |directory: &LdapDirectory| match directory.find_user(HEALTH_PROBE_USER, &[]) {
            Ok(_) => Ok(()),
            Err(e) => Err(e.reason()),
        };
        let result = match &self.directory {
            None => Err("not-configured"),
            Some(writer) => probe(writer).and_then(|()| self.reader.as_ref().map_or(Ok(()), probe)),
        };
        *last = Some((Instant::now(), result));
        result
    }

    /// Where the access check reads (the replicas of TwoFactorLDAPReadURL,
    /// confirmed by the writer before a refusal), `None` without a directory.
    pub fn directories(&self) -> Option<Directories<'_>> {
        let writer = self.directory.as_ref()?;
        Some(match &self.reader {
            Some(reader) => Directories { read: reader, write: Some(writer) },
            None => Directories::one(writer),
        })
    }

    /// The directory answered: the end of an outage, if one was going on.
    /// One relaxed load when all is well.
    pub fn directory_answered(&self, now: Instant) -> Option<Recovered> {
        if !self.directory_down.load(Ordering::Relaxed) {
            return None;
        }
        let mut outage = self.outage.lock().unwrap_or_else(|p| p.into_inner());
        self.directory_down.store(false, Ordering::Relaxed);
        outage.answered(now)
    }
}
