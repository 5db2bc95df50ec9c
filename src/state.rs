//! What each configured server keeps for its requests.

use std::ffi::CString;

use twofactor_core::config::Settings;

/// Settings plus the forms the hot path needs ready-made.
pub struct ServerState {
    pub settings: Settings,
    /// The identity header's name as a C string, for table look-ups.
    pub user_header: CString,
    pub secret_header: Option<CString>,
    pub session_header: Option<CString>,
    /// Names a client may not list in `Connection`.
    pub protected_headers: Vec<String>,
}

/// A header name from a validated directive; validation refuses NUL bytes.
fn c_name(name: &str) -> CString {
    CString::new(name).unwrap_or_default()
}

impl ServerState {
    pub fn new(settings: Settings) -> Self {
        let secret_name = settings.proxy_secret.as_ref().map(|(name, _)| name.clone());
        let mut protected_headers = vec![settings.user_header.clone()];
        protected_headers.extend(secret_name.clone());
        protected_headers.extend(settings.session_header.clone());
        ServerState {
            user_header: c_name(&settings.user_header),
            secret_header: secret_name.as_deref().map(c_name),
            session_header: settings.session_header.as_deref().map(c_name),
            protected_headers,
            settings,
        }
    }
}
