//! Real processes for the integration tests and the demo: Apache with the
//! built module, a stand-in gateway, slapd or a Samba AD domain controller,
//! smtp-sink, a backend that echoes what it receives, and a raw HTTP client. Everything listens on
//! 127.0.0.1, on ports chosen at run time, and is stopped by pid.

use std::path::PathBuf;

pub mod apache;
pub mod backend;
pub mod browser;
pub mod directory;
pub mod fake_ldap;
pub mod http;
pub mod load;
pub mod netns;
pub mod passkey_flows;
pub mod process;
pub mod samba;
pub mod session;
pub mod slapd;
pub mod smtp;
pub mod smtp_tls;
pub mod soak;
pub mod softkey;
pub mod stack;
pub mod tls;

/// The repository's root (where apache-conf/ and tests/data/ are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}
