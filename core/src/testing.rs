//! What the unit tests of several modules share: resolved settings as a
//! server's configuration would give them.

use std::io::Write;
use std::path::Path;

use crate::config::{self, DirConfig, ServerConfig, Settings, Target};

/// The settings of a server with the usual directives plus `extra`
/// (directive lines). The key file is read at once and then removed.
pub fn settings(extra: &[&str]) -> Settings {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::File::create(&key).unwrap().write_all(&[7; 32]).unwrap();
    let key_line = format!("TwoFactorSecretKeyFile {}", key.display());
    let mut lines = vec![
        "TwoFactor On",
        &key_line,
        "TwoFactorLDAPURL ldap://127.0.0.1/ou=people,dc=example,dc=test?uid",
        "TwoFactorTrustedProxy 127.0.0.1",
        "TwoFactorSMTPServer smtp://127.0.0.1:25",
        "TwoFactorMailFrom 2fa@example.test",
    ];
    lines.extend_from_slice(extra);
    let (mut server, mut dir_config) = (ServerConfig::default(), DirConfig::default());
    for line in lines {
        let mut words = line.split_whitespace();
        let name = words.next().unwrap();
        let args: Vec<&str> = words.collect();
        let target = Target::Server { server: &mut server, dir: &mut dir_config };
        config::apply(target, name, &args, Path::new("/etc/apache2")).unwrap();
    }
    Settings::resolve(&server, "www.example.test").unwrap().0
}

/// The keys of `settings` (the key file's bytes are all 7).
pub fn keys() -> crate::keys::Keys {
    crate::keys::Keys::from_files(&[crate::secret::Secret::new(vec![7; 32])]).unwrap()
}
