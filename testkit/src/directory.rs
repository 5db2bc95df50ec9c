//! The directory of a test stack: OpenLDAP's slapd with the project's
//! schema, or a Samba AD domain controller with `TwoFactorDirectory ad`.
//! Tests that hold for both are written once against this; which one a
//! stack gets is `StackOptions::directory`, by default the environment's
//! `TWOFACTOR_TEST_DIRECTORY` (`ad` for Samba, anything else slapd), so
//! that the same test binaries run against either (scripts/test.sh runs
//! the challenge, header, URL and fault tests both ways).

use std::path::Path;

use crate::samba::SambaDc;
use crate::slapd::{Slapd, TWOFACTOR_ATTRIBUTES};

/// Which directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Slapd,
    SambaAd,
}

impl Kind {
    /// `TWOFACTOR_TEST_DIRECTORY=ad`: Samba AD; otherwise slapd.
    pub fn from_environment() -> Kind {
        match std::env::var("TWOFACTOR_TEST_DIRECTORY").as_deref() {
            Ok("ad") => Kind::SambaAd,
            _ => Kind::Slapd,
        }
    }
}

/// The state roles, in the order of `TWOFACTOR_ATTRIBUTES`.
const ROLES: [&str; 8] =
    ["completion", "totp", "totp-last", "failures", "email-code", "recovery", "webauthn", "webauthn-pending"];

pub enum TestDirectory {
    Slapd(Slapd),
    SambaAd(SambaDc),
}

impl TestDirectory {
    pub fn start(kind: Kind, dir: &Path) -> TestDirectory {
        match kind {
            Kind::Slapd => TestDirectory::Slapd(Slapd::start(dir)),
            Kind::SambaAd => TestDirectory::SambaAd(SambaDc::start(dir)),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            TestDirectory::Slapd(_) => Kind::Slapd,
            TestDirectory::SambaAd(_) => Kind::SambaAd,
        }
    }

    /// The slapd, for the tests that are about slapd itself (its logs, its
    /// configuration, replication). Panics on AD.
    pub fn slapd(&self) -> &Slapd {
        match self {
            TestDirectory::Slapd(slapd) => slapd,
            TestDirectory::SambaAd(_) => panic!("this test needs slapd"),
        }
    }

    pub fn slapd_mut(&mut self) -> &mut Slapd {
        match self {
            TestDirectory::Slapd(slapd) => slapd,
            TestDirectory::SambaAd(_) => panic!("this test needs slapd"),
        }
    }

    /// The module's directives that reach this directory as the service
    /// account (`password_file` holds `service_password`).
    pub fn directives(&self, password_file: &Path) -> String {
        let pw = password_file.display();
        match self {
            TestDirectory::Slapd(s) => s.directives(password_file),
            TestDirectory::SambaAd(dc) => format!(
                "TwoFactorDirectory ad\n\
                 TwoFactorLDAPURL \"{}\"\n\
                 TwoFactorLDAPBindDN {}\n\
                 TwoFactorLDAPBindPasswordFile {pw}\n\
                 TwoFactorLDAPCACertificate {}\n",
                self.user_url(),
                dc.service_dn,
                dc.ca_cert.display()
            ),
        }
    }

    /// The URL of TwoFactorLDAPURL (base, user attribute, scope and filter).
    pub fn user_url(&self) -> String {
        match self {
            TestDirectory::Slapd(s) => s.user_url(),
            TestDirectory::SambaAd(dc) => {
                format!("{}/{}?sAMAccountName?sub?(objectClass=user)", dc.url, dc.people_dn)
            }
        }
    }

    /// `ldap://127.0.0.1:PORT` or `ldaps://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        match self {
            TestDirectory::Slapd(s) => &s.url,
            TestDirectory::SambaAd(dc) => &dc.url,
        }
    }

    pub fn service_password(&self) -> &str {
        match self {
            TestDirectory::Slapd(s) => &s.service_password,
            TestDirectory::SambaAd(dc) => &dc.service_password,
        }
    }

    /// The attribute that holds the state role `role` (`failures`, ...).
    pub fn attribute(&self, role: &str) -> &'static str {
        match self {
            TestDirectory::Slapd(_) => ROLES.iter().position(|r| *r == role).map_or("", |i| TWOFACTOR_ATTRIBUTES[i]),
            TestDirectory::SambaAd(_) => SambaDc::attribute(role),
        }
    }

    pub fn user_dn(&self, uid: &str) -> String {
        match self {
            TestDirectory::Slapd(s) => s.user_dn(uid),
            TestDirectory::SambaAd(dc) => dc.user_dn(uid),
        }
    }

    pub fn user_password(&self, uid: &str) -> String {
        match self {
            TestDirectory::Slapd(s) => s.user_password(uid),
            TestDirectory::SambaAd(dc) => dc.user_password(uid),
        }
    }

    /// The values of `attr` in the entry `dn`, read as the administrator.
    pub fn attr_values(&self, dn: &str, attr: &str) -> Vec<String> {
        match self {
            TestDirectory::Slapd(s) => s.attr_values(dn, attr),
            TestDirectory::SambaAd(dc) => dc.attr_values(dn, attr),
        }
    }

    /// The values of the state role `role` of the user `uid`.
    pub fn state(&self, uid: &str, role: &str) -> Vec<String> {
        self.attr_values(&self.user_dn(uid), self.attribute(role))
    }

    /// ldapmodify as the administrator; panics on failure.
    pub fn modify_ldif(&self, ldif: &str) {
        match self {
            TestDirectory::Slapd(s) => s.modify_ldif(ldif),
            TestDirectory::SambaAd(dc) => dc.modify_ldif(ldif),
        }
    }

    /// ldapmodify bound as `bind_dn`: Ok(stdout) or Err(stderr).
    pub fn modify_ldif_as(&self, bind_dn: &str, password: &str, ldif: &str) -> Result<String, String> {
        match self {
            TestDirectory::Slapd(s) => s.modify_ldif_as(bind_dn, password, ldif),
            TestDirectory::SambaAd(dc) => dc.modify_ldif_as(bind_dn, password, ldif),
        }
    }

    /// Replaces (or with no values, removes) the state role `role` of `uid`.
    pub fn set_state(&self, uid: &str, role: &str, values: &[&str]) {
        let attr = self.attribute(role);
        let mut ldif = format!("dn: {}\nchangetype: modify\nreplace: {attr}\n", self.user_dn(uid));
        for value in values {
            ldif.push_str(&format!("{attr}: {value}\n"));
        }
        self.modify_ldif(&ldif);
    }

    /// The server's own log so far.
    pub fn log(&self) -> String {
        match self {
            TestDirectory::Slapd(s) => s.log(),
            TestDirectory::SambaAd(dc) => dc.log(),
        }
    }

    pub fn stop(&mut self) {
        match self {
            TestDirectory::Slapd(s) => s.stop(),
            TestDirectory::SambaAd(dc) => dc.stop(),
        }
    }

    pub fn kill(&mut self) {
        match self {
            TestDirectory::Slapd(s) => s.kill(),
            TestDirectory::SambaAd(dc) => dc.kill(),
        }
    }

    pub fn start_again(&mut self) {
        match self {
            TestDirectory::Slapd(s) => s.start_again(),
            TestDirectory::SambaAd(dc) => dc.start_again(),
        }
    }

    pub fn pause(&self) {
        match self {
            TestDirectory::Slapd(s) => s.pause(),
            TestDirectory::SambaAd(dc) => dc.pause(),
        }
    }

    pub fn resume(&self) {
        match self {
            TestDirectory::Slapd(s) => s.resume(),
            TestDirectory::SambaAd(dc) => dc.resume(),
        }
    }

    pub fn is_running(&mut self) -> bool {
        match self {
            TestDirectory::Slapd(s) => s.is_running(),
            TestDirectory::SambaAd(dc) => dc.is_running(),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        match self {
            TestDirectory::Slapd(s) => s.pid(),
            TestDirectory::SambaAd(dc) => dc.pid(),
        }
    }
}
