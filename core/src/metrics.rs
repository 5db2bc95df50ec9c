//! The operators' numbers (SPEC §2 "Status and health"): what is counted,
//! where each number lives in a row of counters, how the rows of all
//! children add up, and the Prometheus text (format 0.0.4) and JSON forms.
//!
//! Each child writes only its own row (relaxed atomic adds: no lock, no
//! contention); a scrape sums the rows. The rows live in shared memory that
//! the module makes before the fork; this module sees them as slices of
//! `AtomicU64` and never allocates on the counting path. No label holds a
//! user name, a code or anything else a client chose: every label value is
//! one of the constants below.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Map, Value};

use crate::access::{self, Peer, Source, Verdict};

/// `twofactor_decisions_total{result,reason}`: every access decision in an
/// enforced scope (the challenge path itself is counted by its steps).
pub const DECISIONS: [(&str, &str); 16] = [
    ("allow", "cache"),
    ("allow", "directory"),
    ("allow", "initial-request"),
    ("challenge", "no-session"),
    ("challenge", "no-completion"),
    ("challenge", "step-up"),
    ("deny", "untrusted-peer"),
    ("deny", "bad-proxy-secret"),
    ("deny", "bad-identity"),
    ("deny", "bad-session-header"),
    ("deny", "unknown-user"),
    ("deny", "locked"),
    ("deny", "bad-path"),
    ("deny", "bad-header"),
    ("error", "directory-down"),
    ("error", "internal"),
];

/// A decision, as the access check counts it: an index into [`DECISIONS`]
/// (no label is looked up on the request path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    AllowCache,
    AllowDirectory,
    AllowInitialRequest,
    ChallengeNoSession,
    ChallengeNoCompletion,
    /// A completion, but not by a method this location requires.
    ChallengeStepUp,
    DenyUntrustedPeer,
    DenyBadProxySecret,
    DenyBadIdentity,
    DenyBadSessionHeader,
    DenyUnknownUser,
    DenyLocked,
    DenyBadPath,
    DenyBadHeader,
    ErrorDirectoryDown,
    ErrorInternal,
}

impl Decision {
    /// In the order of [`DECISIONS`].
    pub const ALL: [Decision; 16] = [
        Decision::AllowCache,
        Decision::AllowDirectory,
        Decision::AllowInitialRequest,
        Decision::ChallengeNoSession,
        Decision::ChallengeNoCompletion,
        Decision::ChallengeStepUp,
        Decision::DenyUntrustedPeer,
        Decision::DenyBadProxySecret,
        Decision::DenyBadIdentity,
        Decision::DenyBadSessionHeader,
        Decision::DenyUnknownUser,
        Decision::DenyLocked,
        Decision::DenyBadPath,
        Decision::DenyBadHeader,
        Decision::ErrorDirectoryDown,
        Decision::ErrorInternal,
    ];

    /// `(result, reason)`.
    pub fn labels(self) -> (&'static str, &'static str) {
        DECISIONS[self as usize]
    }

    /// How the access check's `verdict` is counted; `None` for the
    /// challenge path itself (its steps count).
    pub fn of(verdict: &Verdict<'_>) -> Option<Decision> {
        Some(match verdict {
            Verdict::Allow { source: Source::Cache, .. } => Decision::AllowCache,
            Verdict::Allow { source: Source::Directory, .. } => Decision::AllowDirectory,
            Verdict::Allow { source: Source::InitialRequest, .. } => Decision::AllowInitialRequest,
            Verdict::Challenge { .. } => return None,
            Verdict::Refuse { reason, .. } if *reason == access::NO_SESSION => Decision::ChallengeNoSession,
            Verdict::Refuse { reason, .. } if *reason == access::STEP_UP => Decision::ChallengeStepUp,
            Verdict::Refuse { .. } => Decision::ChallengeNoCompletion,
            Verdict::Locked { .. } => Decision::DenyLocked,
            Verdict::Spoof { peer: Peer::BadSecret } => Decision::DenyBadProxySecret,
            Verdict::Spoof { .. } => Decision::DenyUntrustedPeer,
            Verdict::BadIdentity { .. } => Decision::DenyBadIdentity,
            Verdict::BadSessionHeader { .. } => Decision::DenyBadSessionHeader,
            Verdict::UnknownUser { .. } => Decision::DenyUnknownUser,
            Verdict::DirectoryDown { .. } => Decision::ErrorDirectoryDown,
            Verdict::NotConfigured => Decision::ErrorInternal,
        })
    }
}

/// Whether deciding `verdict` looked in the cache and what it found:
/// `Some(true)` a hit, `Some(false)` a miss (the directory was asked),
/// `None` no look-up (refused before, or the challenge path).
pub fn cache_answer(verdict: &Verdict<'_>) -> Option<bool> {
    match verdict {
        Verdict::Allow { source: Source::Cache, .. } => Some(true),
        Verdict::DirectoryDown { .. } => Some(false),
        v if v.directory_answered() => Some(false),
        _ => None,
    }
}

/// The factors whose attempts are counted, and how an attempt ended.
pub const METHODS: [&str; 4] = ["totp", "email", "recovery", "webauthn"];
pub const ATTEMPT_RESULTS: [&str; 4] = ["ok", "fail", "replayed", "locked"];
pub const LDAP_OPS: [&str; 2] = ["search", "modify"];
pub const OUTCOMES: [&str; 2] = ["ok", "error"];
pub const MAIL_KINDS: [&str; 2] = ["passcode", "notice"];
pub const ENROLLMENT_METHODS: [&str; 2] = ["totp", "webauthn"];
pub const CACHE_RESULTS: [&str; 2] = ["hit", "miss"];
/// The state roles whose stored values can fail their check (`event=tampered`).
pub const STATE_ROLES: [&str; 8] =
    ["completion", "totp", "totp-last", "failures", "email-code", "recovery", "webauthn", "webauthn-pending"];

/// Upper bounds of the duration histograms' buckets, in seconds.
pub const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// A histogram's slots: one per bucket, one above the last, the count,
/// and the sum in microseconds.
const HISTOGRAM_SLOTS: usize = BUCKETS.len() + 3;

/// The row's owner (a child's pid; 0: free).
pub const OWNER: usize = 0;
const DECISIONS_AT: usize = 1;
const ATTEMPTS_AT: usize = DECISIONS_AT + DECISIONS.len();
const LOCKS_AT: usize = ATTEMPTS_AT + METHODS.len() * ATTEMPT_RESULTS.len();
const CACHE_AT: usize = LOCKS_AT + 1;
const LDAP_OPS_AT: usize = CACHE_AT + CACHE_RESULTS.len();
const LDAP_TIME_AT: usize = LDAP_OPS_AT + LDAP_OPS.len() * OUTCOMES.len();
const DECISION_TIME_AT: usize = LDAP_TIME_AT + HISTOGRAM_SLOTS;
const MAILS_AT: usize = DECISION_TIME_AT + HISTOGRAM_SLOTS;
const ENROLLMENTS_AT: usize = MAILS_AT + MAIL_KINDS.len() * OUTCOMES.len();
const TAMPERED_AT: usize = ENROLLMENTS_AT + ENROLLMENT_METHODS.len();
/// The directory's health as this child last saw it: `seen << 1 | up`,
/// `seen` in Unix microseconds; the freshest observation of all rows wins.
const LDAP_SEEN_AT: usize = TAMPERED_AT + STATE_ROLES.len();

/// Counters in one row.
pub const ROW_LEN: usize = LDAP_SEEN_AT + 1;

/// One child's counters.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    slots: &'a [AtomicU64],
}

/// A duration histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// One directory operation.
    Ldap,
    /// One access decision, from the facts to the verdict.
    Decision,
}

impl Timing {
    fn at(self) -> usize {
        match self {
            Timing::Ldap => LDAP_TIME_AT,
            Timing::Decision => DECISION_TIME_AT,
        }
    }
}

fn position(list: &[&str], value: &str) -> Option<usize> {
    list.iter().position(|v| *v == value)
}

impl<'a> Row<'a> {
    /// A row over `slots`; `None` if it is not `ROW_LEN` long.
    pub fn new(slots: &'a [AtomicU64]) -> Option<Row<'a>> {
        (slots.len() == ROW_LEN).then_some(Row { slots })
    }

    fn add(&self, slot: usize) {
        if let Some(counter) = self.slots.get(slot) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn decision(&self, decision: Decision) {
        self.add(DECISIONS_AT + decision as usize);
    }

    pub fn attempt(&self, method: &str, result: &str) {
        if let (Some(m), Some(r)) = (position(&METHODS, method), position(&ATTEMPT_RESULTS, result)) {
            self.add(ATTEMPTS_AT + m * ATTEMPT_RESULTS.len() + r);
        }
    }

    pub fn lock(&self) {
        self.add(LOCKS_AT);
    }

    pub fn cache_lookup(&self, hit: bool) {
        self.add(CACHE_AT + usize::from(!hit));
    }

    pub fn ldap_operation(&self, op: &str, ok: bool) {
        if let Some(o) = position(&LDAP_OPS, op) {
            self.add(LDAP_OPS_AT + o * OUTCOMES.len() + usize::from(!ok));
        }
    }

    pub fn mail(&self, kind: &str, ok: bool) {
        if let Some(k) = position(&MAIL_KINDS, kind) {
            self.add(MAILS_AT + k * OUTCOMES.len() + usize::from(!ok));
        }
    }

    pub fn enrollment(&self, method: &str) {
        if let Some(m) = position(&ENROLLMENT_METHODS, method) {
            self.add(ENROLLMENTS_AT + m);
        }
    }

    /// A request found a stored value of `role` it does not trust.
    pub fn tampered(&self, role: &str) {
        if let Some(r) = position(&STATE_ROLES, role) {
            self.add(TAMPERED_AT + r);
        }
    }

    /// Records a duration in the histogram `timing`.
    pub fn observe(&self, timing: Timing, seconds: f64) {
        let at = timing.at();
        let bucket = BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(BUCKETS.len());
        self.add(at + bucket);
        self.add(at + BUCKETS.len() + 1);
        if let Some(sum) = self.slots.get(at + BUCKETS.len() + 2) {
            sum.fetch_add((seconds.max(0.0) * 1e6) as u64, Ordering::Relaxed);
        }
    }

    /// What this child saw of the directory at `now_micros` (Unix
    /// microseconds: two children's views a moment apart are told apart).
    pub fn directory_seen(&self, up: bool, now_micros: u64) {
        if let Some(slot) = self.slots.get(LDAP_SEEN_AT) {
            slot.store(now_micros << 1 | u64::from(up), Ordering::Relaxed);
        }
    }
}

/// Claims a row of `rows` (a whole number of rows) for the child `pid`: a
/// free one, or one whose owner is no longer `alive` (its counts stay and
/// the new owner adds to them). `None`: every row is held by a live child.
/// Of two children racing for one row, one wins and the other looks on.
pub fn claim_row(rows: &[AtomicU64], pid: u64, alive: impl Fn(u64) -> bool) -> Option<usize> {
    for (i, row) in rows.chunks_exact(ROW_LEN).enumerate() {
        let owner = row[OWNER].load(Ordering::Relaxed);
        let free = owner == 0 || owner == pid || !alive(owner);
        if free && row[OWNER].compare_exchange(owner, pid, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            return Some(i);
        }
    }
    None
}

/// The sum of every row in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    slots: Vec<u64>,
    /// Rows with an owner: the children counting now.
    pub children: u64,
}

impl Totals {
    /// Adds up `rows` (each `ROW_LEN` counters). Only rows whose owner is
    /// `alive` count as children, but every row's numbers count: a child
    /// that ended still served those requests.
    pub fn sum<'a>(rows: impl IntoIterator<Item = Row<'a>>, alive: impl Fn(u64) -> bool) -> Totals {
        let mut slots = vec![0u64; ROW_LEN];
        let mut children = 0;
        for row in rows {
            let owner = row.slots[OWNER].load(Ordering::Relaxed);
            if owner != 0 && alive(owner) {
                children += 1;
            }
            for (i, total) in slots.iter_mut().enumerate().skip(1) {
                let value = row.slots[i].load(Ordering::Relaxed);
                *total = if i == LDAP_SEEN_AT { (*total).max(value) } else { total.wrapping_add(value) };
            }
        }
        Totals { slots, children }
    }

    pub fn decisions(&self, result: &str, reason: &str) -> u64 {
        DECISIONS.iter().position(|d| *d == (result, reason)).map_or(0, |i| self.slots[DECISIONS_AT + i])
    }

    pub fn attempts(&self, method: &str, result: &str) -> u64 {
        match (position(&METHODS, method), position(&ATTEMPT_RESULTS, result)) {
            (Some(m), Some(r)) => self.slots[ATTEMPTS_AT + m * ATTEMPT_RESULTS.len() + r],
            _ => 0,
        }
    }

    pub fn locks(&self) -> u64 {
        self.slots[LOCKS_AT]
    }

    pub fn tampered(&self, role: &str) -> u64 {
        position(&STATE_ROLES, role).map_or(0, |r| self.slots[TAMPERED_AT + r])
    }

    /// `None`: no child has asked the directory yet.
    pub fn ldap_up(&self) -> Option<bool> {
        let seen = self.slots[LDAP_SEEN_AT];
        (seen != 0).then_some(seen & 1 == 1)
    }

    fn pair(&self, at: usize, outer: &[&str], inner: &[&str], i: usize, j: usize) -> u64 {
        debug_assert!(i < outer.len() && j < inner.len());
        self.slots[at + i * inner.len() + j]
    }

    /// The Prometheus text format 0.0.4.
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        family(&mut out, "twofactor_decisions_total", "counter", "Access decisions in enforced scopes.");
        for (i, (result, reason)) in DECISIONS.iter().enumerate() {
            sample(
                &mut out,
                "twofactor_decisions_total",
                &[("result", result), ("reason", reason)],
                self.slots[DECISIONS_AT + i],
            );
        }
        family(&mut out, "twofactor_factor_attempts_total", "counter", "Codes checked, by factor and result.");
        for (m, method) in METHODS.iter().enumerate() {
            for (r, result) in ATTEMPT_RESULTS.iter().enumerate() {
                let value = self.pair(ATTEMPTS_AT, &METHODS, &ATTEMPT_RESULTS, m, r);
                sample(&mut out, "twofactor_factor_attempts_total", &[("method", method), ("result", result)], value);
            }
        }
        family(&mut out, "twofactor_locks_total", "counter", "Accounts locked after too many wrong codes.");
        sample(&mut out, "twofactor_locks_total", &[], self.locks());
        family(&mut out, "twofactor_cache_lookups_total", "counter", "Look-ups in the children's completion caches.");
        for (i, result) in CACHE_RESULTS.iter().enumerate() {
            sample(&mut out, "twofactor_cache_lookups_total", &[("result", result)], self.slots[CACHE_AT + i]);
        }
        family(&mut out, "twofactor_ldap_operations_total", "counter", "Directory operations, by kind and outcome.");
        for (o, op) in LDAP_OPS.iter().enumerate() {
            for (r, result) in OUTCOMES.iter().enumerate() {
                let value = self.pair(LDAP_OPS_AT, &LDAP_OPS, &OUTCOMES, o, r);
                sample(&mut out, "twofactor_ldap_operations_total", &[("op", op), ("result", result)], value);
            }
        }
        self.histogram(&mut out, "twofactor_ldap_duration_seconds", "Time of one directory operation.", Timing::Ldap);
        self.histogram(
            &mut out,
            "twofactor_decision_duration_seconds",
            "Time of one access decision.",
            Timing::Decision,
        );
        family(&mut out, "twofactor_mails_total", "counter", "Mails sent (passcodes and notices), by outcome.");
        for (k, kind) in MAIL_KINDS.iter().enumerate() {
            for (r, result) in OUTCOMES.iter().enumerate() {
                let value = self.pair(MAILS_AT, &MAIL_KINDS, &OUTCOMES, k, r);
                sample(&mut out, "twofactor_mails_total", &[("kind", kind), ("result", result)], value);
            }
        }
        family(&mut out, "twofactor_enrollments_total", "counter", "Factors set up through the challenge pages.");
        for (m, method) in ENROLLMENT_METHODS.iter().enumerate() {
            sample(&mut out, "twofactor_enrollments_total", &[("method", method)], self.slots[ENROLLMENTS_AT + m]);
        }
        family(
            &mut out,
            "twofactor_tampered_total",
            "counter",
            "Requests that found a stored value failing its check (forged, edited, moved or put back), by role.",
        );
        for (r, role) in STATE_ROLES.iter().enumerate() {
            sample(&mut out, "twofactor_tampered_total", &[("role", role)], self.slots[TAMPERED_AT + r]);
        }
        family(&mut out, "twofactor_ldap_up", "gauge", "Whether the directory answered the last operation (0 or 1).");
        sample(&mut out, "twofactor_ldap_up", &[], u64::from(self.ldap_up().unwrap_or(false)));
        family(&mut out, "twofactor_children", "gauge", "Children of this server counting now.");
        sample(&mut out, "twofactor_children", &[], self.children);
        out
    }

    fn histogram(&self, out: &mut String, name: &str, help: &str, timing: Timing) {
        let at = timing.at();
        family(out, name, "histogram", help);
        let bucket_name = format!("{name}_bucket");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.slots[at + i];
            sample(out, &bucket_name, &[("le", &bound.to_string())], cumulative);
        }
        let count = self.slots[at + BUCKETS.len() + 1];
        sample(out, &bucket_name, &[("le", "+Inf")], count);
        let sum = self.slots[at + BUCKETS.len() + 2] as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        sample(out, &format!("{name}_count"), &[], count);
    }

    /// The decisions with `result`, whatever their reason.
    fn decided(&self, result: &str) -> u64 {
        DECISIONS.iter().enumerate().filter(|(_, d)| d.0 == result).map(|(i, _)| self.slots[DECISIONS_AT + i]).sum()
    }

    /// Attempts that ended in one of `results`, whatever the factor.
    fn attempted(&self, results: &[&str]) -> u64 {
        METHODS.iter().flat_map(|m| results.iter().map(move |r| self.attempts(m, r))).sum()
    }

    /// The section on mod_status's `server-status` page: HTML, or for
    /// `?auto` (`short`) `Key: value` lines.
    pub fn status_section(&self, short: bool) -> String {
        let ldap_errors: u64 =
            LDAP_OPS.iter().enumerate().map(|(o, _)| self.pair(LDAP_OPS_AT, &LDAP_OPS, &OUTCOMES, o, 1)).sum();
        let ldap_total: u64 = ldap_errors
            + LDAP_OPS.iter().enumerate().map(|(o, _)| self.pair(LDAP_OPS_AT, &LDAP_OPS, &OUTCOMES, o, 0)).sum::<u64>();
        let (allow, challenge, deny, error) =
            (self.decided("allow"), self.decided("challenge"), self.decided("deny"), self.decided("error"));
        let (ok, wrong, refused) =
            (self.attempted(&["ok"]), self.attempted(&["fail", "replayed"]), self.attempted(&["locked"]));
        if short {
            return format!(
                "TwoFactorAllow: {allow}\nTwoFactorChallenge: {challenge}\nTwoFactorDeny: {deny}\nTwoFactorError: {error}\n\
                 TwoFactorCodesOK: {ok}\nTwoFactorCodesWrong: {wrong}\nTwoFactorLocks: {}\nTwoFactorLDAPUp: {}\n\
                 TwoFactorLDAPErrors: {ldap_errors}\nTwoFactorChildren: {}\n",
                self.locks(),
                u8::from(self.ldap_up().unwrap_or(false)),
                self.children
            );
        }
        let directory = match self.ldap_up() {
            Some(true) => "up",
            Some(false) => "down",
            None => "not asked yet",
        };
        format!(
            "<hr /><h2>mod_twofactor</h2>\n<dl>\
             <dt>Decisions: {allow} allowed, {challenge} sent to the challenge, {deny} denied, {error} errors</dt>\
             <dt>Codes: {ok} right, {wrong} wrong, {refused} refused while locked; {} accounts locked</dt>\
             <dt>Directory: {directory}; {ldap_total} operations, {ldap_errors} failed</dt>\
             <dt>Children counting: {}</dt></dl>\n",
            self.locks(),
            self.children
        )
    }

    /// The same numbers as one JSON object.
    pub fn json(&self) -> Value {
        let nested = |at: usize, outer: &[&str], inner: &[&str]| -> Value {
            let mut map = Map::new();
            for (i, o) in outer.iter().enumerate() {
                let values: Map<String, Value> = inner
                    .iter()
                    .enumerate()
                    .map(|(j, n)| (n.to_string(), json!(self.pair(at, outer, inner, i, j))))
                    .collect();
                map.insert(o.to_string(), Value::Object(values));
            }
            Value::Object(map)
        };
        let mut decisions = Map::new();
        for (i, (result, reason)) in DECISIONS.iter().enumerate() {
            let entry = decisions.entry(result.to_string()).or_insert_with(|| json!({}));
            if let Value::Object(reasons) = entry {
                reasons.insert(reason.to_string(), json!(self.slots[DECISIONS_AT + i]));
            }
        }
        let histogram = |timing: Timing| -> Value {
            let at = timing.at();
            let count = self.slots[at + BUCKETS.len() + 1];
            let sum = self.slots[at + BUCKETS.len() + 2] as f64 / 1e6;
            let mut cumulative = 0;
            let buckets: Vec<Value> = BUCKETS
                .iter()
                .enumerate()
                .map(|(i, bound)| {
                    cumulative += self.slots[at + i];
                    json!({ "le": bound, "count": cumulative })
                })
                .collect();
            json!({ "buckets": buckets, "count": count, "sum": sum })
        };
        json!({
            "decisions": decisions,
            "factor_attempts": nested(ATTEMPTS_AT, &METHODS, &ATTEMPT_RESULTS),
            "locks": self.locks(),
            "cache_lookups": { "hit": self.slots[CACHE_AT], "miss": self.slots[CACHE_AT + 1] },
            "ldap_operations": nested(LDAP_OPS_AT, &LDAP_OPS, &OUTCOMES),
            "ldap_duration_seconds": histogram(Timing::Ldap),
            "decision_duration_seconds": histogram(Timing::Decision),
            "mails": nested(MAILS_AT, &MAIL_KINDS, &OUTCOMES),
            "enrollments": ENROLLMENT_METHODS
                .iter()
                .enumerate()
                .map(|(m, method)| (method.to_string(), json!(self.slots[ENROLLMENTS_AT + m])))
                .collect::<Map<String, Value>>(),
            "tampered": STATE_ROLES
                .iter()
                .enumerate()
                .map(|(r, role)| (role.to_string(), json!(self.slots[TAMPERED_AT + r])))
                .collect::<Map<String, Value>>(),
            "ldap_up": self.ldap_up(),
            "children": self.children,
        })
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line. Label values are the constants of this module, which
/// need no escaping; the assertion keeps it so.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, value)) in labels.iter().enumerate() {
            debug_assert!(!value.contains(['"', '\\', '\n']));
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{value}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<AtomicU64> {
        (0..n * ROW_LEN).map(|_| AtomicU64::new(0)).collect()
    }

    fn row(slots: &[AtomicU64], i: usize) -> Row<'_> {
        Row::new(&slots[i * ROW_LEN..(i + 1) * ROW_LEN]).unwrap()
    }

    fn totals(slots: &[AtomicU64]) -> Totals {
        Totals::sum(slots.chunks(ROW_LEN).map(|r| Row::new(r).unwrap()), |pid| pid != 999)
    }

    #[test]
    fn every_slot_has_its_own_place() {
        let slots = rows(1);
        let r = row(&slots, 0);
        for decision in Decision::ALL {
            r.decision(decision);
        }
        for method in METHODS {
            for result in ATTEMPT_RESULTS {
                r.attempt(method, result);
            }
        }
        r.lock();
        r.cache_lookup(true);
        r.cache_lookup(false);
        for op in LDAP_OPS {
            r.ldap_operation(op, true);
            r.ldap_operation(op, false);
        }
        for kind in MAIL_KINDS {
            r.mail(kind, true);
            r.mail(kind, false);
        }
        r.enrollment("totp");
        r.enrollment("webauthn");
        for role in STATE_ROLES {
            r.tampered(role);
        }
        // Each counter was hit once: no two share a slot, none is outside the row.
        let counted: Vec<u64> = slots[DECISIONS_AT..LDAP_TIME_AT]
            .iter()
            .chain(&slots[MAILS_AT..LDAP_SEEN_AT])
            .map(|s| s.load(Ordering::Relaxed))
            .collect();
        assert!(counted.iter().all(|v| *v == 1), "{counted:?}");
        assert_eq!(slots[OWNER].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn each_decision_names_its_own_labels() {
        for (i, decision) in Decision::ALL.iter().enumerate() {
            assert_eq!(*decision as usize, i);
            assert_eq!(decision.labels(), DECISIONS[i]);
        }
        assert_eq!(Decision::DenyBadPath.labels(), ("deny", "bad-path"));
    }

    #[test]
    fn verdicts_are_counted_under_their_decision() {
        use crate::identity::IdentityError;
        use crate::store::StoreError;
        use std::sync::Arc;
        let allow = |source| Verdict::Allow { user: Arc::from("alice"), issued: 1, method: None, source };
        assert_eq!(Decision::of(&allow(Source::Cache)), Some(Decision::AllowCache));
        assert_eq!(cache_answer(&allow(Source::Cache)), Some(true));
        assert_eq!(Decision::of(&allow(Source::Directory)), Some(Decision::AllowDirectory));
        assert_eq!(cache_answer(&allow(Source::Directory)), Some(false));
        assert_eq!(cache_answer(&allow(Source::InitialRequest)), None);
        let refuse =
            |reason| Verdict::Refuse { user: "alice".into(), reason, refusal: crate::policy::Refusal::Redirect };
        assert_eq!(Decision::of(&refuse(access::NO_SESSION)), Some(Decision::ChallengeNoSession));
        assert_eq!(cache_answer(&refuse(access::NO_SESSION)), None, "nothing to look up");
        assert_eq!(Decision::of(&refuse(access::NO_COMPLETION)), Some(Decision::ChallengeNoCompletion));
        assert_eq!(cache_answer(&refuse(access::NO_COMPLETION)), Some(false));
        assert_eq!(Decision::of(&refuse(access::STEP_UP)), Some(Decision::ChallengeStepUp));
        assert_eq!(cache_answer(&refuse(access::STEP_UP)), Some(false), "the directory was asked");
        assert_eq!(Decision::of(&Verdict::Spoof { peer: Peer::BadSecret }), Some(Decision::DenyBadProxySecret));
        assert_eq!(Decision::of(&Verdict::Spoof { peer: Peer::Untrusted }), Some(Decision::DenyUntrustedPeer));
        assert_eq!(Decision::of(&Verdict::Challenge { user: "alice" }), None);
        let down = Verdict::DirectoryDown { user: "alice", error: StoreError::Unavailable("x".into()) };
        assert_eq!((Decision::of(&down), cache_answer(&down)), (Some(Decision::ErrorDirectoryDown), Some(false)));
        let bad = Verdict::BadIdentity { error: IdentityError::Missing, value: b"" };
        assert_eq!(Decision::of(&bad), Some(Decision::DenyBadIdentity));
        assert_eq!(Decision::of(&Verdict::NotConfigured), Some(Decision::ErrorInternal));
    }

    #[test]
    fn unknown_labels_are_counted_nowhere() {
        let slots = rows(1);
        let r = row(&slots, 0);
        r.attempt("sms", "ok");
        r.attempt("totp", "maybe");
        r.ldap_operation("delete", true);
        r.mail("spam", true);
        r.enrollment("sms");
        assert!(slots.iter().all(|s| s.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn the_rows_of_all_children_add_up_whoever_counted() {
        let slots = rows(4);
        std::thread::scope(|scope| {
            for child in 0..4 {
                let slots = &slots;
                scope.spawn(move || {
                    let r = row(slots, child);
                    for _ in 0..1000 {
                        r.decision(Decision::AllowCache);
                        r.attempt("totp", "fail");
                    }
                });
            }
        });
        row(&slots, 0).slots[OWNER].store(101, Ordering::Relaxed);
        row(&slots, 2).slots[OWNER].store(103, Ordering::Relaxed);
        row(&slots, 3).slots[OWNER].store(999, Ordering::Relaxed);
        let t = totals(&slots);
        assert_eq!(t.decisions("allow", "cache"), 4000);
        assert_eq!(t.attempts("totp", "fail"), 4000);
        assert_eq!(t.attempts("totp", "ok"), 0);
        assert_eq!(t.children, 2, "rows without a live owner count their numbers, not as children");
    }

    #[test]
    fn each_child_claims_its_own_row_and_a_dead_childs_row_is_reused() {
        let slots = rows(3);
        let alive = |pid: u64| pid != 102;
        assert_eq!(claim_row(&slots, 101, alive), Some(0));
        assert_eq!(claim_row(&slots, 102, alive), Some(1));
        row(&slots, 1).decision(Decision::AllowCache);
        assert_eq!(claim_row(&slots, 103, alive), Some(1), "102 ended: its row is taken over");
        assert_eq!(totals(&slots).decisions("allow", "cache"), 1, "and its counts stay");
        assert_eq!(claim_row(&slots, 104, alive), Some(2));
        assert_eq!(claim_row(&slots, 105, alive), None, "every row held by a live child");
        let fresh = rows(8);
        let racing: Vec<Option<usize>> = std::thread::scope(|scope| {
            let fresh = &fresh;
            let runs: Vec<_> = (1..=8).map(|pid| scope.spawn(move || claim_row(fresh, pid, |_| true))).collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let mut claimed: Vec<usize> = racing.into_iter().map(Option::unwrap).collect();
        claimed.sort_unstable();
        assert_eq!(claimed, (0..8).collect::<Vec<_>>(), "eight children, eight different rows");
    }

    #[test]
    fn the_freshest_view_of_the_directory_wins() {
        let slots = rows(2);
        assert_eq!(totals(&slots).ldap_up(), None);
        row(&slots, 0).directory_seen(true, 1000);
        row(&slots, 1).directory_seen(false, 1001);
        assert_eq!(totals(&slots).ldap_up(), Some(false));
        row(&slots, 0).directory_seen(true, 1002);
        assert_eq!(totals(&slots).ldap_up(), Some(true));
    }

    #[test]
    fn histograms_are_cumulative_with_count_and_sum() {
        let slots = rows(1);
        let r = row(&slots, 0);
        for seconds in [0.0002, 0.0007, 0.003, 0.003, 7.0] {
            r.observe(Timing::Ldap, seconds);
        }
        let text = totals(&slots).prometheus();
        assert!(text.contains("twofactor_ldap_duration_seconds_bucket{le=\"0.0005\"} 1\n"), "{text}");
        assert!(text.contains("twofactor_ldap_duration_seconds_bucket{le=\"0.001\"} 2\n"));
        assert!(text.contains("twofactor_ldap_duration_seconds_bucket{le=\"0.005\"} 4\n"));
        assert!(text.contains("twofactor_ldap_duration_seconds_bucket{le=\"2.5\"} 4\n"));
        assert!(text.contains("twofactor_ldap_duration_seconds_bucket{le=\"+Inf\"} 5\n"));
        assert!(text.contains("twofactor_ldap_duration_seconds_count 5\n"));
        assert!(text.contains("twofactor_ldap_duration_seconds_sum 7.0069\n"), "{text}");
        assert!(text.contains("twofactor_decision_duration_seconds_count 0\n"));
        let json = totals(&slots).json();
        assert_eq!(json["ldap_duration_seconds"]["count"], 5);
        assert_eq!(json["ldap_duration_seconds"]["buckets"][1]["count"], 2);
    }

    /// The text format's grammar as far as Prometheus needs it: every
    /// family announced by HELP and TYPE before its samples, every sample
    /// `name{label="value",...} number`, no family twice.
    #[test]
    fn the_text_format_is_well_formed() {
        let slots = rows(2);
        row(&slots, 1).decision(Decision::DenyLocked);
        row(&slots, 1).lock();
        let text = totals(&slots).prometheus();
        let sample =
            regex::Regex::new(r#"^([a-z_]+)(\{[a-z]+="[^"\\\n]*"(,[a-z]+="[^"\\\n]*")*\})? [0-9.e+-]+$"#).unwrap();
        let mut typed: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(!typed.iter().any(|(n, _)| n == name), "{name} twice");
                typed.push((name.to_string(), kind.to_string()));
            } else if line.starts_with("# HELP ") {
                continue;
            } else {
                let caps = sample.captures(line).unwrap_or_else(|| panic!("not a sample: {line:?}"));
                let name = &caps[1];
                let (family, kind) = typed.last().unwrap();
                let ok = name == family
                    || (kind == "histogram"
                        && [format!("{family}_bucket"), format!("{family}_sum"), format!("{family}_count")]
                            .iter()
                            .any(|n| n == name));
                assert!(ok, "{name} outside its family {family}");
            }
        }
        assert_eq!(typed.len(), 12, "every family of SPEC §2, and tampered values (§5)");
        assert!(text.contains("twofactor_decisions_total{result=\"deny\",reason=\"locked\"} 1\n"));
        assert!(text.contains("twofactor_locks_total 1\n"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn the_server_status_section_sums_by_result() {
        let slots = rows(2);
        row(&slots, 0).decision(Decision::AllowCache);
        row(&slots, 1).decision(Decision::AllowDirectory);
        row(&slots, 1).decision(Decision::DenyBadPath);
        row(&slots, 0).attempt("totp", "fail");
        row(&slots, 1).attempt("email", "replayed");
        row(&slots, 1).attempt("recovery", "ok");
        row(&slots, 0).ldap_operation("search", false);
        row(&slots, 0).directory_seen(false, 5);
        let t = totals(&slots);
        let short = t.status_section(true);
        assert!(short.contains("TwoFactorAllow: 2\nTwoFactorChallenge: 0\nTwoFactorDeny: 1\n"), "{short}");
        assert!(short.contains("TwoFactorCodesOK: 1\nTwoFactorCodesWrong: 2\n"), "{short}");
        assert!(short.contains("TwoFactorLDAPUp: 0\nTwoFactorLDAPErrors: 1\n"), "{short}");
        let html = t.status_section(false);
        assert!(html.contains("<dt>Decisions: 2 allowed, 0 sent to the challenge, 1 denied, 0 errors</dt>"), "{html}");
        assert!(html.contains("<dt>Directory: down; 1 operations, 1 failed</dt>"), "{html}");
    }

    #[test]
    fn the_tampered_roles_are_the_state_roles() {
        assert_eq!(STATE_ROLES, crate::config::Role::ALL.map(|r| r.as_str()));
    }

    #[test]
    fn json_holds_the_same_numbers() {
        let slots = rows(1);
        let r = row(&slots, 0);
        r.decision(Decision::ChallengeNoCompletion);
        r.attempt("email", "replayed");
        r.mail("notice", false);
        r.cache_lookup(false);
        r.tampered("failures");
        r.tampered("no-such-role");
        let t = totals(&slots);
        assert_eq!((t.tampered("failures"), t.tampered("completion")), (1, 0));
        assert!(t.prometheus().contains("twofactor_tampered_total{role=\"failures\"} 1\n"));
        let json = t.json();
        assert_eq!(json["tampered"]["failures"], 1);
        assert_eq!(json["decisions"]["challenge"]["no-completion"], 1);
        assert_eq!(json["decisions"]["allow"]["cache"], 0);
        assert_eq!(json["factor_attempts"]["email"]["replayed"], 1);
        assert_eq!(json["mails"]["notice"]["error"], 1);
        assert_eq!(json["cache_lookups"]["miss"], 1);
        assert_eq!(json["ldap_up"], Value::Null);
        assert_eq!(json["children"], 0);
    }
}
