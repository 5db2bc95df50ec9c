//! What each configured server keeps for its requests.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use twofactor_core::cache::CompletionCache;
use twofactor_core::config::Settings;
use twofactor_core::store::LdapDirectory;

/// Entries of the per-process completion cache.
const CACHE_CAPACITY: usize = 10_000;
/// Repeats of one directory error are logged at most this often per child.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

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
    pub directory: Option<LdapDirectory>,
    pub cache: CompletionCache,
    error_log: Mutex<HashMap<&'static str, (Instant, u32)>>,
}

/// A header name from a validated directive; validation refuses NUL bytes.
fn c_name(name: &str) -> CString {
    CString::new(name).unwrap_or_default()
}

impl ServerState {
    pub fn new(settings: Settings) -> Result<Self, String> {
        let directory = settings.ldap.as_ref().map(LdapDirectory::new).transpose()?;
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
            cache: CompletionCache::new(settings.cache_ttl, CACHE_CAPACITY),
            error_log: Mutex::new(HashMap::new()),
            settings,
        })
    }

    /// Whether an error of this kind should be logged now; if so, how many
    /// were suppressed since the last line.
    pub fn should_log_error(&self, kind: &'static str, now: Instant) -> Option<u32> {
        let mut seen = self.error_log.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get_mut(kind) {
            Some((last, suppressed)) if now.duration_since(*last) < ERROR_LOG_INTERVAL => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                let repeats = *suppressed;
                *last = now;
                *suppressed = 0;
                Some(repeats)
            }
            None => {
                seen.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}
