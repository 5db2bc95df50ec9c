//! Security notices mailed to the user (`TwoFactorNotify`): a factor
//! enrolled or replaced, recovery codes issued or used, the account locked.
//!
//! Plain text, no link (nothing to click in a mail that a phisher could
//! imitate), no secret: what happened, when, from which address, and what
//! to do if it was not the user.

use std::net::IpAddr;

use crate::admin::iso8601;
use crate::store::codec::LOCKED_UNTIL_UNLOCKED;

/// What happened to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// An authenticator was set up (`replaced`: instead of an earlier one),
    /// with this many new recovery codes.
    Enrolled { replaced: bool, recovery_codes: usize },
    /// A passkey or security key was registered, with this many new recovery codes.
    PasskeyAdded { recovery_codes: usize },
    /// A passkey or security key was removed (by an administrator).
    PasskeyRemoved,
    /// A set of recovery codes was issued (by an administrator).
    RecoveryCodesIssued { count: usize },
    /// A recovery code was used to sign in; this many are left.
    RecoveryCodeUsed { left: usize },
    /// Too many wrong codes: locked until then (Unix seconds), or until an
    /// administrator unlocks.
    Locked { until: u64 },
}

impl Notice {
    /// A short stable name for log lines (`kind=`).
    pub fn kind(&self) -> &'static str {
        match self {
            Notice::Enrolled { replaced: false, .. } => "enrolled",
            Notice::Enrolled { replaced: true, .. } => "replaced",
            Notice::PasskeyAdded { .. } => "passkey-added",
            Notice::PasskeyRemoved => "passkey-removed",
            Notice::RecoveryCodesIssued { .. } => "recovery-issued",
            Notice::RecoveryCodeUsed { .. } => "recovery-used",
            Notice::Locked { .. } => "locked",
        }
    }
}

/// Who did it, as far as the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An end user's browser at this address (`None`: not known).
    Browser(Option<IpAddr>),
    /// An administrator's command on the server.
    Administrator,
}

/// The subject and plain-text body of the notice for `user` at `site`.
pub fn message(site: &str, user: &str, notice: Notice, now: u64, origin: Origin) -> (String, String) {
    let (subject, what) = match notice {
        Notice::Enrolled { replaced, recovery_codes } => {
            let verb = if replaced { "replaced" } else { "set up" };
            let codes = match recovery_codes {
                0 => String::new(),
                n => format!(" {n} new recovery codes were issued with it; any older ones no longer work."),
            };
            (
                format!("An authenticator was {verb}"),
                format!("An authenticator for the second sign-in step was {verb}.{codes}"),
            )
        }
        Notice::PasskeyAdded { recovery_codes } => {
            let codes = match recovery_codes {
                0 => String::new(),
                n => format!(" {n} new recovery codes were issued with it."),
            };
            (
                "A passkey was added".to_string(),
                format!("A passkey or security key was registered for the second sign-in step.{codes}"),
            )
        }
        Notice::PasskeyRemoved => (
            "A passkey was removed".to_string(),
            "A passkey or security key was removed from the second sign-in step.".to_string(),
        ),
        Notice::RecoveryCodesIssued { count } => (
            "New recovery codes were issued".to_string(),
            format!("{count} new recovery codes were issued; any older ones no longer work."),
        ),
        Notice::RecoveryCodeUsed { left } => (
            "A recovery code was used".to_string(),
            format!("A recovery code was used for the second sign-in step. {left} unused codes are left."),
        ),
        Notice::Locked { until } => {
            let end = if until == LOCKED_UNTIL_UNLOCKED {
                "until an administrator unlocks it".to_string()
            } else {
                format!("until {} UTC", iso8601(until).replace('T', " ").trim_end_matches('Z'))
            };
            (
                "Your second sign-in step was locked".to_string(),
                format!("Too many wrong codes were entered, so the second sign-in step is locked {end}."),
            )
        }
    };
    let from = match origin {
        Origin::Browser(Some(ip)) => format!("from the address {ip}"),
        Origin::Browser(None) => "from an address the server does not know".to_string(),
        Origin::Administrator => "by an administrator".to_string(),
    };
    let when = iso8601(now).replace('T', " ");
    let when = when.trim_end_matches('Z');
    let paragraphs = [
        format!("This is a security notice for your account {user} at {site}."),
        what,
        format!("When: {when} UTC, {from}."),
        "If this was you, there is nothing to do. If it was not you, someone may know your password: change it \
         at once, and tell your IT support. Do not give anyone the codes from your authenticator, your mail or \
         your recovery codes."
            .to_string(),
    ];
    let body: Vec<String> = paragraphs.iter().map(|p| wrap(p, 72)).collect();
    (format!("{subject} for {site}"), body.join("\n\n") + "\n")
}

/// `text` in lines of at most `width` characters (longer words stay
/// whole), so that the mail is plain 7-bit text, readable as it is.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / width);
    let mut line_len = 0;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if line_len > 0 && line_len + 1 + len > width {
            out.push('\n');
            line_len = 0;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_365_883; // 2026-11-22 16:44:43 UTC

    fn ip() -> Origin {
        Origin::Browser(Some("10.1.2.3".parse().unwrap()))
    }

    #[test]
    fn lines_stay_short() {
        assert_eq!(wrap("a bb ccc dddd", 6), "a bb\nccc\ndddd");
        assert_eq!(wrap("averyveryverylongword x", 5), "averyveryverylongword\nx");
        let (_, body) = message("site", "alice", Notice::RecoveryCodeUsed { left: 1 }, NOW, ip());
        assert!(body.lines().all(|l| l.len() <= 72), "{body}");
    }

    /// The body with its lines joined again, for looking for phrases.
    fn joined(body: &str) -> String {
        body.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn every_notice_says_what_when_from_where_and_what_to_do() {
        let notices = [
            Notice::Enrolled { replaced: false, recovery_codes: 10 },
            Notice::Enrolled { replaced: true, recovery_codes: 0 },
            Notice::RecoveryCodesIssued { count: 10 },
            Notice::RecoveryCodeUsed { left: 9 },
            Notice::Locked { until: NOW + 1800 },
            Notice::Locked { until: LOCKED_UNTIL_UNLOCKED },
        ];
        for notice in notices {
            let (subject, body) = message("vpn.example.org", "alice", notice, NOW, ip());
            let body = joined(&body);
            assert!(subject.ends_with("for vpn.example.org"), "{subject}");
            assert!(body.contains("account alice at vpn.example.org"), "{body}");
            assert!(body.contains("2026-11-22 16:44:43 UTC, from the address 10.1.2.3"), "{body}");
            assert!(body.contains("If it was not you"), "{body}");
            assert!(!body.contains("http") && !body.contains("www."), "a link in a notice: {body}");
        }
    }

    #[test]
    fn details_per_notice() {
        let message = |site, user, notice, now, origin| {
            let (subject, body) = message(site, user, notice, now, origin);
            (subject, joined(&body))
        };
        let (s, b) = message("site", "u", Notice::Enrolled { replaced: true, recovery_codes: 10 }, NOW, ip());
        assert!(s.starts_with("An authenticator was replaced") && b.contains("10 new recovery codes"), "{b}");
        let (_, b) = message("site", "u", Notice::RecoveryCodeUsed { left: 3 }, NOW, ip());
        assert!(b.contains("3 unused codes are left"), "{b}");
        let (_, b) = message("site", "u", Notice::Locked { until: NOW + 1800 }, NOW, ip());
        assert!(b.contains("locked until 2026-11-22 17:14:43 UTC"), "{b}");
        let (_, b) = message("site", "u", Notice::Locked { until: LOCKED_UNTIL_UNLOCKED }, NOW, ip());
        assert!(b.contains("until an administrator unlocks it"), "{b}");
        let (_, b) = message("site", "u", Notice::RecoveryCodesIssued { count: 10 }, NOW, Origin::Administrator);
        assert!(b.contains("UTC, by an administrator."), "{b}");
        let (_, b) = message("site", "u", Notice::RecoveryCodeUsed { left: 3 }, NOW, Origin::Browser(None));
        assert!(b.contains("from an address the server does not know"), "{b}");
    }

    #[test]
    fn kinds_are_stable() {
        assert_eq!(Notice::Enrolled { replaced: false, recovery_codes: 0 }.kind(), "enrolled");
        assert_eq!(Notice::Enrolled { replaced: true, recovery_codes: 0 }.kind(), "replaced");
        assert_eq!(Notice::Locked { until: 0 }.kind(), "locked");
    }
}
