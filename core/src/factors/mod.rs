//! The second factors' rules, apart from the TOTP algorithm itself
//! (`crate::totp`): lockout, emailed passcodes, recovery codes, the single
//! use of a TOTP step; and the registry of the factors ([`ALL`]), the one
//! place that says what each kind is, what it stores, whether a user is
//! enrolled in it, where its code is posted and what it logs.
//!
//! A new kind of factor is a file here (its rules), an entry in [`ALL`],
//! a file in the handler (`src/challenge/`) and its arm in the router.

pub mod email;
pub mod lockout;
pub mod recovery;
pub mod totp;
pub mod webauthn;

use crate::config::{Method, Role, Settings};
use crate::store::UserEntry;

/// One kind of second factor.
#[derive(Debug)]
pub struct Factor {
    pub method: Method,
    /// Where its code is posted, below `TwoFactorChallengeURL`.
    pub route: &'static str,
    /// The state it keeps, one attribute each (`TwoFactorAttribute`).
    pub roles: &'static [Role],
    /// Log events of a right and of a wrong code.
    pub ok_event: &'static str,
    pub fail_event: &'static str,
    /// Something the user holds, so that a completion with it proves the
    /// user (and adding or replacing a factor needs one). A mailbox is not:
    /// it proves an address only.
    pub held: bool,
    /// Whether the user can use it: enrolled, or (email) reachable.
    enrolled: fn(&UserEntry, &Settings) -> bool,
}

impl Factor {
    /// Whether `entry`'s user is enrolled in this factor.
    pub fn enrolled(&self, entry: &UserEntry, settings: &Settings) -> bool {
        (self.enrolled)(entry, settings)
    }
}

fn has_values(entry: &UserEntry, settings: &Settings, role: Role) -> bool {
    !entry.values(settings.attribute(role)).is_empty()
}

pub const TOTP: Factor = Factor {
    method: Method::Totp,
    route: "/totp",
    roles: &[Role::Totp, Role::TotpLast],
    ok_event: "totp-ok",
    fail_event: "totp-fail",
    held: true,
    enrolled: |entry, settings| has_values(entry, settings, Role::Totp),
};

pub const EMAIL: Factor = Factor {
    method: Method::Email,
    route: "/email",
    roles: &[Role::EmailCode],
    ok_event: "email-ok",
    fail_event: "email-fail",
    held: false,
    enrolled: |entry, settings| email::address(entry, settings).is_some(),
};

pub const RECOVERY: Factor = Factor {
    method: Method::Recovery,
    route: "/recovery",
    roles: &[Role::Recovery],
    ok_event: "recovery-ok",
    fail_event: "recovery-fail",
    held: true,
    enrolled: |entry, settings| has_values(entry, settings, Role::Recovery),
};

pub const WEBAUTHN: Factor = Factor {
    method: Method::WebAuthn,
    route: "/webauthn",
    roles: &[Role::WebAuthn, Role::WebAuthnPending],
    ok_event: "webauthn-ok",
    fail_event: "webauthn-fail",
    held: true,
    enrolled: |entry, settings| has_values(entry, settings, Role::WebAuthn),
};

/// Every factor, in the order the pages offer them.
pub const ALL: [&Factor; 4] = [&WEBAUTHN, &TOTP, &EMAIL, &RECOVERY];

/// The method of a completion made by confirming a new authenticator with
/// its first code.
pub const ENROLLED: &str = "enrolled";

pub fn of(method: Method) -> &'static Factor {
    match method {
        Method::Totp => &TOTP,
        Method::Email => &EMAIL,
        Method::Recovery => &RECOVERY,
        Method::WebAuthn => &WEBAUTHN,
    }
}

/// The factor named `name` (as completions and `TwoFactorMethods` name them).
pub fn by_name(name: &str) -> Option<&'static Factor> {
    ALL.into_iter().find(|f| f.method.as_str() == name)
}

/// The factor whose code is posted to `route`.
pub fn by_route(route: &str) -> Option<&'static Factor> {
    ALL.into_iter().find(|f| f.route == route)
}

/// Whether the user holds a factor already (and so needs a recent
/// completion with one before adding or replacing one).
pub fn holds_any(entry: &UserEntry, settings: &Settings) -> bool {
    ALL.into_iter().any(|f| f.held && f.enrolled(entry, settings))
}

/// Whether a completion made with `method` proves a factor the user holds
/// (an authenticator, a recovery code, or a new authenticator just
/// confirmed with its first code); an emailed passcode proves the mailbox
/// only, and never opens the way to adding or replacing a factor.
pub fn proves_a_held_factor(method: &str) -> bool {
    method == ENROLLED || by_name(method).is_some_and(|f| f.held)
}

/// The method a completion made with `method` counts as for
/// `TwoFactorRequireMethod`: a new authenticator confirmed with its first
/// code is a TOTP completion.
pub fn completion_method(method: &str) -> Option<Method> {
    match method {
        ENROLLED => Some(Method::Totp),
        name => by_name(name).map(|f| f.method),
    }
}

/// The log event of a completion made with `method`.
pub fn success_event(method: &str) -> &'static str {
    match by_name(method) {
        Some(factor) => factor.ok_event,
        None if method == ENROLLED => ENROLLED,
        None => "completed",
    }
}

/// A uniformly random decimal string of `digits` digits from the system CSPRNG.
pub fn random_digits(digits: u32) -> Result<String, String> {
    let mut out = String::with_capacity(digits as usize);
    while out.len() < digits as usize {
        let mut byte = [0u8; 1];
        crate::random::fill(&mut byte)?;
        // Rejection sampling: 250 is the largest multiple of 10 below 256.
        if byte[0] < 250 {
            out.push(char::from(b'0' + byte[0] % 10));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_mailbox_is_no_held_factor() {
        for method in ["totp", "recovery", "enrolled", "webauthn"] {
            assert!(super::proves_a_held_factor(method), "{method}");
        }
        for method in ["email", "test", "", "TOTP"] {
            assert!(!super::proves_a_held_factor(method), "{method}");
        }
    }

    #[test]
    fn the_registry_knows_each_factor_by_method_name_and_route() {
        use crate::config::Method;
        for method in Method::ALL {
            let factor = super::of(method);
            assert_eq!(factor.method, method);
            assert_eq!(super::by_name(method.as_str()).map(|f| f.method), Some(method));
            assert_eq!(super::by_route(factor.route).map(|f| f.method), Some(method));
            assert_eq!(factor.ok_event, format!("{}-ok", method.as_str()));
            assert_eq!(factor.fail_event, format!("{}-fail", method.as_str()));
        }
        assert!(super::by_name("enrolled").is_none() && super::by_route("/email/send").is_none());
        assert_eq!(super::success_event("recovery"), "recovery-ok");
        assert_eq!(super::success_event("enrolled"), "enrolled");
        assert_eq!(super::success_event("test"), "completed");
    }

    #[test]
    fn enrolled_asks_each_factor_its_own_attribute() {
        use crate::store::UserEntry;
        let settings = crate::testing::settings(&[]);
        let entry = |attrs: &[(&str, &str)]| {
            let attrs = attrs.iter().map(|(k, v)| (k.to_string(), vec![v.to_string()])).collect();
            UserEntry::new("uid=alice".into(), "alice".into(), attrs)
        };
        let nothing = entry(&[]);
        assert!(super::ALL.iter().all(|f| !f.enrolled(&nothing, &settings)));
        assert!(!super::holds_any(&nothing, &settings));
        let token = entry(&[("twoFactorTOTP", "x")]);
        assert!(super::TOTP.enrolled(&token, &settings) && super::holds_any(&token, &settings));
        let codes = entry(&[("twoFactorRecovery", "x")]);
        assert!(super::RECOVERY.enrolled(&codes, &settings) && super::holds_any(&codes, &settings));
        // A mailbox makes the emailed passcode usable, and is no held factor.
        let mailbox = entry(&[("mail", "alice@example.org")]);
        assert!(super::EMAIL.enrolled(&mailbox, &settings) && !super::holds_any(&mailbox, &settings));
        assert!(!super::EMAIL.enrolled(&entry(&[("mail", "not an address")]), &settings));
    }

    #[test]
    fn random_digits_look_random() {
        let a = super::random_digits(8).unwrap();
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        let samples: std::collections::HashSet<String> = (0..50).map(|_| super::random_digits(8).unwrap()).collect();
        assert!(samples.len() > 45);
    }
}
