//! The access decision, on every request of a configured server.
//!
//! * post_read_request: scrub spoofed gateway headers, note whether the
//!   TCP peer is a trusted gateway (with the right shared secret);
//! * header_parser: strict paths, `Connection` tricks;
//! * access_checker: the decision where `TwoFactor On` (or on the challenge path);
//! * fixups: the backstop: whatever other modules did (`Satisfy Any`, an
//!   internal redirect that skipped the access phase), nothing in an enforced
//!   scope runs without our verdict; and the challenge path is ours alone.

use std::ffi::{c_int, CStr};
use std::time::Instant;

use twofactor_core::access::{self, Facts, InitialAllow, Peer, Verdict};
use twofactor_core::clock::now;
use twofactor_core::completion::{self, Presented};
use twofactor_core::config::{DirConfig, Method, MethodSet, SessionBinding};
use twofactor_core::metrics::{self, Decision, Row, Timing};
use twofactor_core::outage::ErrorLine;
use twofactor_core::policy::Refusal;
use twofactor_core::store::StoreError;
use twofactor_core::text::log_field;
use twofactor_core::{identity, pages, path, tamper, token};

use crate::apache::log::{event, Level};
use crate::apache::{status, Request, Table};
use crate::outcome::Outcome;
use crate::state::ServerState;

const NOTE_GATEWAY: &CStr = c"twofactor-gateway";
const NOTE_VERDICT: &CStr = c"twofactor-verdict";
/// When and how the completion of an allowed request was made
/// (`1790000000 webauthn`), for its subrequests and internal redirects.
const NOTE_ISSUED: &CStr = c"twofactor-issued";
const ALLOW: &CStr = c"allow";
pub const CHALLENGE_HANDLER: &CStr = c"twofactor-challenge";

/// How long a return token stays valid: enough to finish the challenge.
const RETURN_TOKEN_LIFETIME_SECS: u64 = 3600;

/// This server's state: `Ok(None)` when the module is not configured here
/// (requests are left alone), `Err` (fail closed) when configuration is missing.
pub fn state<'r>(req: &Request<'r>) -> Result<Option<&'r ServerState>, Outcome> {
    use crate::apache::conf::Runtime;
    match req.server_conf().and_then(|c| c.runtime()) {
        Some(Runtime::Unconfigured) => Ok(None),
        Some(Runtime::Configured(state)) => Ok(Some(state)),
        None => {
            event!(req, Level::Error, "internal-error", "reason" = "no-configuration");
            Err(Outcome::Status(status::INTERNAL_SERVER_ERROR))
        }
    }
}

macro_rules! configured_or_decline {
    ($req:expr) => {
        match state($req) {
            Ok(Some(state)) => state,
            Ok(None) => return Outcome::Declined,
            Err(outcome) => return outcome,
        }
    };
}

/// One of the access check's error pages.
fn error_page(status: c_int, title: &str, message: &str) -> Outcome {
    Outcome::ErrorPage(status, pages::error(status.try_into().unwrap_or(500), title, message))
}

pub fn post_read_request(req: &mut Request<'_>) -> Outcome {
    let st = configured_or_decline!(req);
    if req.is_internal_redirect() {
        // Apache runs this hook again on the same headers, which this pass
        // already cleaned (the shared secret is gone): the client's request
        // keeps its verdict on the gateway.
        let peer = Peer::from_note(req.initial().get(Table::Notes, NOTE_GATEWAY));
        req.set_note(NOTE_GATEWAY, peer.note());
        return Outcome::Declined;
    }
    let s = &st.settings;
    let trusted_address = req.peer_ip().is_some_and(|ip| s.is_trusted_proxy(ip));
    let (expected, given) = match &s.proxy_secret {
        Some((name, expected)) => {
            let mut values = req.values(Table::In, name);
            (Some(expected.expose()), [values.next(), values.next()])
        }
        None => (None, [None, None]),
    };
    let gateway = Peer::classify(trusted_address, expected, given);

    // Look-alike names (X_Remote_User) of every protected header go on
    // every request; WebLogic's proxy headers unless the gateway sent them.
    let doomed: Vec<Vec<u8>> = req
        .names(Table::In)
        .filter(|k| {
            st.protected_headers.iter().any(|p| identity::is_lookalike(k, p))
                || (gateway != Peer::Gateway && identity::is_weblogic_proxy_header(k))
        })
        .map(<[u8]>::to_vec)
        .collect();
    for name in doomed {
        req.unset_bytes(Table::In, &name);
    }
    // The shared secret is for us only; the identity and session headers
    // count only from the gateway.
    if let Some(secret) = &st.secret_header {
        req.unset(Table::In, secret);
    }
    if gateway != Peer::Gateway {
        req.unset(Table::In, &st.user_header);
        if let Some(session) = &st.session_header {
            req.unset(Table::In, session);
        }
    }
    req.set_note(NOTE_GATEWAY, gateway.note());
    Outcome::Declined
}

pub fn header_parser(req: &mut Request<'_>) -> Outcome {
    let st = configured_or_decline!(req);
    if req.is_internal_redirect() {
        // The request line was checked when it arrived; this target is Apache's own.
        return Outcome::Declined;
    }
    let strict = req.dir_conf().is_none_or(|d| d.parsed.strict_path());
    let verdict = match req.unparsed_uri() {
        Some(target) => path::check_request_target(target, strict),
        None => Err(path::PathViolation::InvalidUtf8),
    };
    if let Err(violation) = verdict {
        event!(
            req,
            Level::Warn,
            "bad-path",
            "reason" = violation.as_str(),
            "path" = log_field(req.unparsed_uri().map(str::as_bytes).unwrap_or(b"?"), 256),
        );
        crate::metrics::count(|m| m.decision(Decision::DenyBadPath));
        return error_page(
            status::BAD_REQUEST,
            "Bad request",
            "The address is ambiguous (encoded or dot segments, path parameters, or similar) and was refused.",
        );
    }
    let connection_trick =
        req.values(Table::In, "Connection").any(|v| identity::connection_names_protected(v, &st.protected_headers));
    if connection_trick {
        event!(req, Level::Warn, "deny", "reason" = "bad-header", "detail" = "connection-names-security-header");
        crate::metrics::count(|m| m.decision(Decision::DenyBadHeader));
        return error_page(status::BAD_REQUEST, "Bad request", "A security header is named in the Connection header.");
    }
    Outcome::Declined
}

/// Whether this request is in an enforced scope, and whether it is for the
/// challenge handler. A request without our per-directory record (never
/// seen, but possible after an allocation failure) counts as enforced.
fn scope(req: &Request<'_>, st: &ServerState) -> (bool, bool) {
    let enforced = req.dir_conf().is_none_or(|d| d.parsed.enabled());
    let challenge = st.settings.is_challenge_path_bytes(req.uri());
    (enforced, challenge)
}

pub fn access_checker(req: &mut Request<'_>) -> Outcome {
    let st = configured_or_decline!(req);
    #[cfg(feature = "test-hooks")]
    if req.uri() == b"/__twofactor_test/panic" {
        panic!("deliberate panic in the access checker (test builds only)");
    }
    let (enforced, challenge) = scope(req, st);
    if !enforced && !challenge {
        return Outcome::Declined;
    }
    // mod_cache's quick handler serves what it stored before any access
    // check runs: nothing of an enforced scope may be stored.
    req.set_no_cache();
    decide(req, st, challenge)
}

pub fn fixups(req: &mut Request<'_>) -> Outcome {
    let st = configured_or_decline!(req);
    let (enforced, challenge) = scope(req, st);
    if !enforced && !challenge {
        // Out of enforcement the gateway's name is unverified: no backend
        // may read it as an identity.
        req.unset(Table::In, &st.user_header);
        strip_session_cookie(req, st);
        return Outcome::Declined;
    }
    req.set_no_cache();
    if req.get(Table::Notes, NOTE_VERDICT) != Some(ALLOW.to_bytes()) {
        let outcome = decide(req, st, challenge);
        if !outcome.proceeds() {
            return outcome;
        }
    }
    if challenge {
        // Only our handler ever serves the challenge path: never a proxy.
        req.set_handler(CHALLENGE_HANDLER);
    }
    Outcome::Declined
}

/// The decision for a request in scope; records an allow on the request.
fn decide(req: &mut Request<'_>, st: &ServerState, challenge: bool) -> Outcome {
    let outcome = evaluate(req, st, challenge);
    if outcome.proceeds() {
        req.set_note(NOTE_VERDICT, ALLOW);
    }
    outcome
}

/// Up to two values of a request header: enough to tell one from several.
fn first_two<'r>(values: impl Iterator<Item = &'r [u8]>) -> ([&'r [u8]; 2], usize) {
    let mut slots: [&[u8]; 2] = [b""; 2];
    let mut count = 0;
    for (slot, value) in slots.iter_mut().zip(values) {
        *slot = value;
        count += 1;
    }
    (slots, count)
}

/// The facts of this request, the core's verdict on them, and its carrying out.
fn evaluate(req: &mut Request<'_>, st: &ServerState, challenge: bool) -> Outcome {
    let s = &st.settings;
    let initial = req.initial();
    let (identity, identities) = first_two(req.values(Table::In, &s.user_header));
    let (session, sessions) = match (s.session_binding, s.session_header.as_deref()) {
        (SessionBinding::Header, Some(name)) => first_two(req.values(Table::In, name)),
        _ => ([b"" as &[u8]; 2], 0),
    };
    let cookie = session_cookie(req, st);
    let scope = req.dir_conf().map_or_else(DirConfig::default, |d| d.parsed);
    let facts = Facts {
        peer: Peer::from_note(initial.get(Table::Notes, NOTE_GATEWAY)),
        identity: &identity[..identities],
        session: &session[..sessions],
        cookie,
        initial_allow: initial_allow(req),
        challenge_path: challenge,
        max_age: scope.max_age().as_secs(),
        require_methods: scope.require_methods.unwrap_or_default(),
        method: req.method(),
        accept: req.get(Table::In, c"Accept"),
        requested_with: req.get(Table::In, c"X-Requested-With"),
    };
    let directory = st.directories();
    // Notes left on this thread by work outside a request are not this request's.
    tamper::take();
    let started = Instant::now();
    let verdict = access::decide(&facts, s, directory, &st.cache, now(), started);
    crate::metrics::count(|m| counted(m, &verdict, started));
    if let Some(user) = verdict.user() {
        log_tampering(req, user);
    }
    if verdict.directory_answered() {
        note_directory_answered(req, st);
    }
    if let Some(user) = verdict.user() {
        if req.user() != Some(user) {
            req.set_user(user);
        }
    }
    carry_out(req, st, verdict)
}

/// One error line per role whose stored value this request found failing
/// its check (`core::tamper`), and the metric. The value itself is never
/// logged: it may hold hashes, and it is whatever someone wrote.
pub fn log_tampering(req: &Request<'_>, user: &str) {
    for (role, why) in tamper::take() {
        crate::metrics::count(|m| m.tampered(role.as_str()));
        event!(req, Level::Error, "tampered", "role" = role.as_str(), "user" = user, "reason" = why.as_str());
    }
}

/// The decision in the metrics: its result and reason, its time, and
/// whether the cache answered.
fn counted(m: Row<'_>, verdict: &Verdict<'_>, started: Instant) {
    m.observe(Timing::Decision, started.elapsed().as_secs_f64());
    if let Some(hit) = metrics::cache_answer(verdict) {
        m.cache_lookup(hit);
    }
    if let Some(decision) = Decision::of(verdict) {
        m.decision(decision);
    }
}

fn carry_out(req: &mut Request<'_>, st: &ServerState, verdict: Verdict<'_>) -> Outcome {
    match verdict {
        Verdict::Allow { user, issued, method, source } => allow(req, st, &user, issued, method, source.as_str()),
        Verdict::Challenge { .. } => Outcome::Proceed,
        Verdict::Refuse { user, reason, refusal } => refuse(req, st, &user, reason, refusal),
        Verdict::Locked { user, until, refusal } => locked(req, st, &user, until, refusal),
        Verdict::Spoof { peer } => {
            let address = req.peer_ip().map_or_else(|| "-".to_string(), |ip| ip.to_string());
            event!(req, Level::Warn, "spoof", "reason" = peer.refusal_reason(), "peer" = address);
            error_page(status::FORBIDDEN, "Forbidden", "This server accepts requests from the sign-in gateway only.")
        }
        Verdict::BadIdentity { error, value } => {
            event!(
                req,
                Level::Warn,
                "deny",
                "reason" = "bad-identity",
                "detail" = error.as_str(),
                "user" = log_field(value, 64),
            );
            error_page(status::BAD_REQUEST, "Bad request", "The sign-in gateway sent no valid user name.")
        }
        Verdict::BadSessionHeader { user, detail } => {
            event!(req, Level::Warn, "deny", "reason" = "bad-session-header", "detail" = detail, "user" = user);
            error_page(status::BAD_REQUEST, "Bad request", "The sign-in gateway sent no valid session id.")
        }
        Verdict::UnknownUser { user, detail } => unknown_user(req, user, detail),
        Verdict::DirectoryDown { error, .. } => directory_error(req, st, &error),
        Verdict::NotConfigured => {
            event!(req, Level::Error, "internal-error", "reason" = "no-key-or-directory");
            Outcome::Status(status::INTERNAL_SERVER_ERROR)
        }
    }
}

/// The module's session cookie, from whichever `Cookie` header has it.
fn session_cookie<'r>(req: &Request<'r>, st: &ServerState) -> Option<&'r [u8]> {
    let s = &st.settings;
    match s.session_binding {
        SessionBinding::Cookie => {
            req.values(Table::In, "Cookie").find_map(|v| completion::find_cookie(v, &s.cookie_name))
        }
        _ => None,
    }
}

/// What this request presents for `TwoFactorSessionBinding`, if anything.
pub fn presented<'r>(req: &Request<'r>, st: &ServerState) -> Option<Presented<'r>> {
    let session = st.session_header.as_deref().and_then(|name| req.get(Table::In, name));
    access::presented(st.settings.session_binding, session_cookie(req, st), session)
}

/// This scope's `TwoFactorRequireMethod` (empty: any method).
fn required_methods(req: &Request<'_>) -> MethodSet {
    req.dir_conf().and_then(|d| d.parsed.require_methods).unwrap_or_default()
}

/// The user, completion time and method with which the client's request
/// (of which this one is a subrequest or internal redirect) was let in.
fn initial_allow<'r>(req: &Request<'r>) -> Option<InitialAllow<'r>> {
    let initial = req.initial();
    if std::ptr::eq(initial.as_ptr(), req.as_ptr()) || initial.get(Table::Notes, NOTE_VERDICT) != Some(ALLOW.to_bytes())
    {
        return None;
    }
    let note = std::str::from_utf8(initial.get(Table::Notes, NOTE_ISSUED)?).ok()?;
    let (issued, method) = note.split_once(' ').unwrap_or((note, ""));
    Some(InitialAllow { user: initial.user()?, issued: issued.parse().ok()?, method: Method::parse(method) })
}

fn allow(
    req: &mut Request<'_>,
    st: &ServerState,
    canonical: &str,
    issued: u64,
    method: Option<Method>,
    source: &str,
) -> Outcome {
    if req.user() != Some(canonical) {
        req.set_user(canonical);
    }
    let mut note = [0u8; 40];
    req.set(Table::Notes, NOTE_ISSUED, allow_note(issued, method, &mut note));
    // The backend sees the directory's spelling of the name, nothing else.
    if req.get(Table::In, &st.user_header) != Some(canonical.as_bytes()) {
        req.set(Table::In, &st.user_header, canonical);
    }
    strip_session_cookie(req, st);
    event!(req, Level::Debug, "allow", "user" = canonical, "source" = source);
    Outcome::Proceed
}

/// Backends never see the module's session cookie, whichever of several
/// `Cookie` headers carries it.
fn strip_session_cookie(req: &mut Request<'_>, st: &ServerState) {
    if st.settings.session_binding != SessionBinding::Cookie {
        return;
    }
    let name = &st.settings.cookie_name;
    // Apache joins repeated request headers: one entry is the rule, several
    // come only from other modules.
    let (first, several) = {
        let mut entries = req.values(Table::In, "Cookie");
        (entries.next(), entries.next().is_some())
    };
    match (first, several) {
        (None, _) => {}
        (Some(only), false) => match completion::without_cookie(only, name) {
            None => {}
            Some(rest) if rest.is_empty() => req.unset(Table::In, c"Cookie"),
            Some(rest) => req.set_bytes(Table::In, c"Cookie", &rest),
        },
        (Some(_), true) => {
            if !req.values(Table::In, "Cookie").any(|v| completion::has_cookie(v, name)) {
                return;
            }
            let kept: Vec<Vec<u8>> = req
                .values(Table::In, "Cookie")
                .map(|v| completion::without_cookie(v, name).unwrap_or_else(|| v.to_vec()))
                .filter(|v| !v.is_empty())
                .collect();
            req.unset(Table::In, c"Cookie");
            for value in kept {
                req.add_bytes(Table::In, c"Cookie", &value);
            }
        }
    }
}

/// The `event=ldap-error` line of a refused request: every outage's first
/// at once, repeats within it summarised (at most one line per 10 s per
/// child, `repeated=` the ones not written).
pub fn log_directory_error(req: &Request<'_>, st: &ServerState, e: &StoreError, user: Option<&str>) {
    if let ErrorLine::Write { repeated } = st.directory_failed(Instant::now()) {
        event!(
            req,
            Level::Error,
            "ldap-error",
            "reason" = e.reason(),
            "detail" = log_field(e.to_string().as_bytes(), 300),
            "repeated" = repeated,
            "user" = user.unwrap_or("-")
        );
    }
}

/// The directory answered: if that ends an outage, one `event=ldap-recovered`
/// line with how long it lasted and how many requests were refused.
pub fn note_directory_answered(req: &Request<'_>, st: &ServerState) {
    if let Some(end) = st.directory_answered(Instant::now()) {
        event!(
            req,
            Level::Warn,
            "ldap-recovered",
            "down" = format!("{:.1}s", end.down.as_secs_f64()),
            "refused" = end.refused
        );
    }
}

/// `ISSUED METHOD` in `buf`, without allocating (one note per allowed request).
fn allow_note(issued: u64, method: Option<Method>, buf: &mut [u8; 40]) -> &str {
    let mut digits = [0u8; 20];
    let issued = format_u64(issued, &mut digits).as_bytes();
    let method = method.map_or("", Method::as_str).as_bytes();
    let len = issued.len() + 1 + method.len();
    buf[..issued.len()].copy_from_slice(issued);
    buf[issued.len()] = b' ';
    buf[issued.len() + 1..len].copy_from_slice(method);
    std::str::from_utf8(&buf[..len]).unwrap_or("0")
}

/// Decimal digits of `n` without an allocation.
fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

fn unknown_user(req: &mut Request<'_>, user: &str, detail: &str) -> Outcome {
    event!(req, Level::Warn, "deny", "reason" = "unknown-user", "detail" = detail, "user" = user);
    error_page(
        status::FORBIDDEN,
        "Forbidden",
        "Your account is not set up for this site. Please contact your administrator.",
    )
}

fn directory_error(req: &mut Request<'_>, st: &ServerState, e: &StoreError) -> Outcome {
    log_directory_error(req, st, e, None);
    req.set(Table::ErrOut, c"Retry-After", "30");
    Outcome::ErrorPage(status::SERVICE_UNAVAILABLE, pages::directory_down())
}

fn locked(req: &mut Request<'_>, st: &ServerState, user: &str, until: u64, refusal: Refusal) -> Outcome {
    event!(req, Level::Warn, "deny", "reason" = "locked", "user" = user, "until" = until);
    if refusal == Refusal::Redirect {
        // The challenge shows the locked page and when it unlocks.
        return redirect_to_challenge(req, st, user);
    }
    error_page(status::FORBIDDEN, "Account locked", "Too many wrong codes: the second sign-in step is locked for now.")
}

/// Sends a request without a valid completion away: navigations to the
/// challenge, other reads 401, everything else 403.
fn refuse(req: &mut Request<'_>, st: &ServerState, user: &str, reason: &str, refusal: Refusal) -> Outcome {
    event!(
        req,
        Level::Info,
        "challenge",
        "user" = user,
        "reason" = reason,
        "response" = refusal.status(),
        "method" = req.method()
    );
    if reason == access::STEP_UP && refusal != Refusal::Redirect {
        // A form posted to a step-up location is never replayed after the
        // challenge: the user opens the page, steps up, and sends it again.
        req.set(Table::ErrOut, c"Cache-Control", "no-store");
        let names = pages::method_names(required_methods(req));
        let message = format!(
            "This part of the site needs a recent second sign-in step with {names}. Open the page in your browser \
             to complete it, then try again. Nothing was sent on."
        );
        return error_page(status::FORBIDDEN, "Stronger sign-in required", &message);
    }
    match refusal {
        Refusal::Redirect => redirect_to_challenge(req, st, user),
        Refusal::Unauthorized => {
            req.set(Table::ErrOut, c"Cache-Control", "no-store");
            error_page(
                status::UNAUTHORIZED,
                "Second sign-in step required",
                "Complete the second sign-in step in your browser, then try again.",
            )
        }
        Refusal::Forbidden => error_page(
            status::FORBIDDEN,
            "Second sign-in step required",
            "Complete the second sign-in step in your browser, then try again.",
        ),
    }
}

/// 303 to the challenge with a signed token back to the original path and query.
fn redirect_to_challenge(req: &mut Request<'_>, st: &ServerState, user: &str) -> Outcome {
    let s = &st.settings;
    let Some(keys) = &s.keys else {
        event!(req, Level::Error, "internal-error", "reason" = "no-key");
        return Outcome::Status(status::INTERNAL_SERVER_ERROR);
    };
    // The client's request line as sent: Apache decodes r->parsed_uri.path in place.
    let target = req.initial().unparsed_uri().map_or_else(|| "/".to_string(), token::return_target);
    let token =
        token::sign_return_requiring(keys, &target, user, now() + RETURN_TOKEN_LIFETIME_SECS, required_methods(req));
    // A path, never an absolute URL built from Host or X-Forwarded-Host.
    Outcome::Redirect(format!("{}/?r={token}", s.challenge_url))
}

/// For the handler: the verdict of the access phase, re-evaluated if it is
/// missing (never serve without one).
pub fn ensure_verdict(req: &mut Request<'_>, st: &ServerState, challenge: bool) -> Outcome {
    if req.get(Table::Notes, NOTE_VERDICT) == Some(ALLOW.to_bytes()) {
        return Outcome::Proceed;
    }
    decide(req, st, challenge)
}
