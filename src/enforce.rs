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
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use twofactor_core::cache::Hit;
use twofactor_core::completion::{self, Presented};
use twofactor_core::config::{DirConfig, Role, SessionBinding};
use twofactor_core::outage::ErrorLine;
use twofactor_core::policy::{self, Refusal};
use twofactor_core::secret::constant_time_eq;
use twofactor_core::store::{codec, Directory, Lookup, StoreError};
use twofactor_core::text::log_field;
use twofactor_core::{identity, path, token};

use crate::apache::log::{event, Level};
use crate::apache::{status, Request, Table, DECLINED, OK};
use crate::state::ServerState;

const NOTE_GATEWAY: &CStr = c"twofactor-gateway";
const NOTE_VERDICT: &CStr = c"twofactor-verdict";
/// When the completion that allowed this request was issued (Unix seconds).
const NOTE_ISSUED: &CStr = c"twofactor-issued";
const ALLOW: &CStr = c"allow";
pub const CHALLENGE_HANDLER: &CStr = c"twofactor-challenge";

/// How long a return token stays valid: enough to finish the challenge.
const RETURN_TOKEN_LIFETIME_SECS: u64 = 3600;

/// What the TCP peer is, decided once per connection request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gateway {
    Trusted,
    Untrusted,
    BadSecret,
}

impl Gateway {
    fn note(self) -> &'static CStr {
        match self {
            Gateway::Trusted => c"trusted",
            Gateway::Untrusted => c"untrusted",
            Gateway::BadSecret => c"bad-secret",
        }
    }

    fn from_note(value: Option<&[u8]>) -> Gateway {
        match value {
            Some(b"trusted") => Gateway::Trusted,
            Some(b"bad-secret") => Gateway::BadSecret,
            // Missing note: post_read_request did not vouch for the peer.
            _ => Gateway::Untrusted,
        }
    }
}

/// This server's state: `Ok(None)` when the module is not configured here
/// (requests are left alone), `Err` (fail closed) when configuration is missing.
pub fn state<'r>(req: &Request<'r>) -> Result<Option<&'r ServerState>, c_int> {
    use crate::apache::conf::Runtime;
    match req.server_conf().and_then(|c| c.runtime()) {
        Some(Runtime::Unconfigured) => Ok(None),
        Some(Runtime::Configured(state)) => Ok(Some(state)),
        None => {
            event!(req, Level::Error, "internal-error", "reason" = "no-configuration");
            Err(status::INTERNAL_SERVER_ERROR)
        }
    }
}

macro_rules! configured_or_decline {
    ($req:expr) => {
        match state($req) {
            Ok(Some(state)) => state,
            Ok(None) => return DECLINED,
            Err(status) => return status,
        }
    };
}

pub fn post_read_request(req: &mut Request<'_>) -> c_int {
    let st = configured_or_decline!(req);
    if req.is_internal_redirect() {
        // Apache runs this hook again on the same headers, which this pass
        // already cleaned (the shared secret is gone): the client's request
        // keeps its verdict on the gateway.
        let gateway = Gateway::from_note(req.initial().get(Table::Notes, NOTE_GATEWAY));
        req.set_note(NOTE_GATEWAY, gateway.note());
        return DECLINED;
    }
    let s = &st.settings;
    let trusted_peer = req.peer_ip().is_some_and(|ip| s.is_trusted_proxy(ip));
    let gateway = match (&s.proxy_secret, trusted_peer) {
        (_, false) => Gateway::Untrusted,
        (None, true) => Gateway::Trusted,
        (Some((name, expected)), true) => {
            let mut values = req.values(Table::In, name);
            match (values.next(), values.next()) {
                (Some(given), None) if constant_time_eq(given, expected.expose()) => Gateway::Trusted,
                _ => Gateway::BadSecret,
            }
        }
    };

    // Look-alike names (X_Remote_User) of every protected header go on
    // every request; WebLogic's proxy headers unless the gateway sent them.
    let doomed: Vec<Vec<u8>> = req
        .names(Table::In)
        .filter(|k| {
            st.protected_headers.iter().any(|p| identity::is_lookalike(k, p))
                || (gateway != Gateway::Trusted && identity::is_weblogic_proxy_header(k))
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
    if gateway != Gateway::Trusted {
        req.unset(Table::In, &st.user_header);
        if let Some(session) = &st.session_header {
            req.unset(Table::In, session);
        }
    }
    req.set_note(NOTE_GATEWAY, gateway.note());
    DECLINED
}

pub fn header_parser(req: &mut Request<'_>) -> c_int {
    let st = configured_or_decline!(req);
    if req.is_internal_redirect() {
        // The request line was checked when it arrived; this target is Apache's own.
        return DECLINED;
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
        error_page(
            req,
            status::BAD_REQUEST,
            "Bad request",
            "The address is ambiguous (encoded or dot segments, path parameters, or similar) and was refused.",
        );
        return status::BAD_REQUEST;
    }
    let connection_trick =
        req.values(Table::In, "Connection").any(|v| identity::connection_names_protected(v, &st.protected_headers));
    if connection_trick {
        event!(req, Level::Warn, "deny", "reason" = "bad-header", "detail" = "connection-names-security-header");
        error_page(req, status::BAD_REQUEST, "Bad request", "A security header is named in the Connection header.");
        return status::BAD_REQUEST;
    }
    DECLINED
}

/// Whether this request is in an enforced scope, and whether it is for the
/// challenge handler. A request without our per-directory record (never
/// seen, but possible after an allocation failure) counts as enforced.
fn scope(req: &Request<'_>, st: &ServerState) -> (bool, bool) {
    let enforced = req.dir_conf().is_none_or(|d| d.parsed.enabled());
    let challenge = st.settings.is_challenge_path_bytes(req.uri());
    (enforced, challenge)
}

pub fn access_checker(req: &mut Request<'_>) -> c_int {
    let st = configured_or_decline!(req);
    #[cfg(feature = "test-hooks")]
    if req.uri() == b"/__twofactor_test/panic" {
        panic!("deliberate panic in the access checker (test builds only)");
    }
    let (enforced, challenge) = scope(req, st);
    if !enforced && !challenge {
        return DECLINED;
    }
    // mod_cache's quick handler serves what it stored before any access
    // check runs: nothing of an enforced scope may be stored.
    req.set_no_cache();
    decide(req, st, challenge)
}

pub fn fixups(req: &mut Request<'_>) -> c_int {
    let st = configured_or_decline!(req);
    let (enforced, challenge) = scope(req, st);
    if !enforced && !challenge {
        // Out of enforcement the gateway's name is unverified: no backend
        // may read it as an identity.
        req.unset(Table::In, &st.user_header);
        strip_session_cookie(req, st);
        return DECLINED;
    }
    req.set_no_cache();
    if req.get(Table::Notes, NOTE_VERDICT) != Some(ALLOW.to_bytes()) {
        let status = decide(req, st, challenge);
        if status != OK {
            return status;
        }
    }
    if challenge {
        // Only our handler ever serves the challenge path: never a proxy.
        req.set_handler(CHALLENGE_HANDLER);
    }
    DECLINED
}

/// The decision for a request in scope; records an allow on the request.
fn decide(req: &mut Request<'_>, st: &ServerState, challenge: bool) -> c_int {
    let status = evaluate(req, st, challenge);
    if status == OK {
        req.set_note(NOTE_VERDICT, ALLOW);
    }
    status
}

fn evaluate(req: &mut Request<'_>, st: &ServerState, challenge: bool) -> c_int {
    let gateway = Gateway::from_note(req.initial().get(Table::Notes, NOTE_GATEWAY));
    if gateway != Gateway::Trusted {
        let reason = if gateway == Gateway::BadSecret { "bad-proxy-secret" } else { "untrusted-peer" };
        let peer = req.peer_ip().map_or_else(|| "-".to_string(), |ip| ip.to_string());
        event!(req, Level::Warn, "spoof", "reason" = reason, "peer" = peer);
        error_page(req, status::FORBIDDEN, "Forbidden", "This server accepts requests from the sign-in gateway only.");
        return status::FORBIDDEN;
    }

    let user = match validated_identity(req, st) {
        Ok(user) => user,
        Err(status) => return status,
    };
    if let Err(status) = validated_session_header(req, st, user) {
        return status;
    }
    req.set_user(user);
    if challenge {
        return OK;
    }
    check_completion(req, st, user)
}

/// The directory's verdict for a valid identity in an enforced scope.
fn check_completion(req: &mut Request<'_>, st: &ServerState, user: &str) -> c_int {
    let s = &st.settings;
    let (Some(keys), Some(directory)) = (&s.keys, &st.directory) else {
        event!(req, Level::Error, "internal-error", "reason" = "no-key-or-directory");
        return status::INTERNAL_SERVER_ERROR;
    };
    let max_age = req.dir_conf().map_or_else(|| DirConfig::default().max_age(), |d| d.parsed.max_age()).as_secs();
    let (now, clock) = (now(), Instant::now());

    // A subrequest or internal redirect of a request that was let in
    // carries the same identity and session: reuse that verdict (only this
    // scope's TwoFactorMaxAge can still say no). First, because the allowed
    // request no longer carries the session cookie: backends never see it.
    if let Some((canonical, issued)) = initial_allow(req) {
        if canonical.eq_ignore_ascii_case(user) && issued.saturating_add(max_age) > now {
            return allow(req, st, &canonical, issued, "initial-request");
        }
    }

    // Without the binding's cookie or session id there can be no completion.
    let Some(presented) = presented(req, st) else {
        return refuse(req, st, user, "no-session");
    };

    let cache_key = presented.cache_key(user);
    if let Some(hit) = st.cache.get(&cache_key, clock) {
        if hit.issued.saturating_add(max_age) > now {
            return allow(req, st, &hit.canonical, hit.issued, "cache");
        }
    }

    let completion_attr = s.attribute(Role::Completion);
    let failures_attr = s.attribute(Role::Failures);
    let found = directory.find_user(user, &[completion_attr, failures_attr]);
    if found.is_ok() {
        note_directory_answered(req, st);
    }
    let entry = match found {
        Ok(Lookup::Found(entry)) => entry,
        Ok(Lookup::NotFound) => return unknown_user(req, user, "not-found"),
        Ok(Lookup::Ambiguous) => return unknown_user(req, user, "ambiguous"),
        Err(e) => return directory_error(req, st, &e),
    };
    req.set_user(&entry.username);
    if let Some(until) = codec::locked_until(entry.values(failures_attr), now) {
        return locked(req, st, &entry.username, until);
    }
    match completion::find_valid(entry.values(completion_attr), &presented, keys, now, max_age) {
        Some(found) => {
            let hit = Hit { canonical: Arc::from(entry.username.as_str()), issued: found.issued };
            st.cache.put(cache_key, hit, Duration::from_secs(found.expires.saturating_sub(now)), clock);
            allow(req, st, &entry.username, found.issued, "directory")
        }
        None => refuse(req, st, &entry.username, "no-completion"),
    }
}

/// The user and completion time with which the client's request (of
/// which this one is a subrequest or internal redirect) was let in.
fn initial_allow(req: &Request<'_>) -> Option<(String, u64)> {
    let initial = req.initial();
    if std::ptr::eq(initial.as_ptr(), req.as_ptr()) || initial.get(Table::Notes, NOTE_VERDICT) != Some(ALLOW.to_bytes())
    {
        return None;
    }
    let issued = std::str::from_utf8(initial.get(Table::Notes, NOTE_ISSUED)?).ok()?.parse().ok()?;
    Some((initial.user()?.to_string(), issued))
}

/// What this request presents for `TwoFactorSessionBinding`, if anything.
pub fn presented<'r>(req: &Request<'r>, st: &ServerState) -> Option<Presented<'r>> {
    let s = &st.settings;
    match s.session_binding {
        SessionBinding::Cookie => req
            .values(Table::In, "Cookie")
            .find_map(|v| completion::find_cookie(v, &s.cookie_name))
            .filter(|v| completion::is_plausible_cookie(v))
            .map(Presented::Cookie),
        SessionBinding::Header => {
            let name = st.session_header.as_deref()?;
            req.get(Table::In, name).filter(|v| !v.is_empty() && v.len() <= 4096).map(Presented::GatewaySession)
        }
        SessionBinding::None => Some(Presented::Anywhere),
    }
}

fn allow(req: &mut Request<'_>, st: &ServerState, canonical: &str, issued: u64, source: &str) -> c_int {
    if req.user() != Some(canonical) {
        req.set_user(canonical);
    }
    let mut digits = [0u8; 20];
    req.set(Table::Notes, NOTE_ISSUED, format_u64(issued, &mut digits));
    // The backend sees the directory's spelling of the name, nothing else.
    if req.get(Table::In, &st.user_header) != Some(canonical.as_bytes()) {
        req.set(Table::In, &st.user_header, canonical);
    }
    strip_session_cookie(req, st);
    event!(req, Level::Debug, "allow", "user" = canonical, "source" = source);
    OK
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

fn unknown_user(req: &mut Request<'_>, user: &str, detail: &str) -> c_int {
    event!(req, Level::Warn, "deny", "reason" = "unknown-user", "detail" = detail, "user" = user);
    error_page(
        req,
        status::FORBIDDEN,
        "Forbidden",
        "Your account is not set up for this site. Please contact your administrator.",
    );
    status::FORBIDDEN
}

fn directory_error(req: &mut Request<'_>, st: &ServerState, e: &StoreError) -> c_int {
    log_directory_error(req, st, e, None);
    req.set(Table::ErrOut, c"Retry-After", "30");
    error_page(
        req,
        status::SERVICE_UNAVAILABLE,
        "Sign-in temporarily unavailable",
        "The second sign-in step cannot reach its directory right now. Please try again in a minute.",
    );
    status::SERVICE_UNAVAILABLE
}

fn locked(req: &mut Request<'_>, st: &ServerState, user: &str, until: u64) -> c_int {
    let navigation =
        policy::refusal(req.method(), req.get(Table::In, c"Accept"), req.get(Table::In, c"X-Requested-With"));
    event!(req, Level::Warn, "deny", "reason" = "locked", "user" = user, "until" = until);
    if navigation == Refusal::Redirect {
        // The challenge shows the locked page and when it unlocks.
        return redirect_to_challenge(req, st, user);
    }
    error_page(
        req,
        status::FORBIDDEN,
        "Account locked",
        "Too many wrong codes: the second sign-in step is locked for now.",
    );
    status::FORBIDDEN
}

/// The identity header's single valid value, or a 400.
fn validated_identity<'r>(req: &mut Request<'r>, st: &ServerState) -> Result<&'r str, c_int> {
    let name = &st.settings.user_header;
    // Two slots are enough to tell one value from several.
    let mut values: [&[u8]; 2] = [b""; 2];
    let mut count = 0;
    for v in req.values(Table::In, name) {
        if count < values.len() {
            values[count] = v;
        }
        count += 1;
    }
    match identity::validate(&values[..count.min(values.len())], &st.settings.username_pattern) {
        Ok(user) => Ok(user),
        Err(e) => {
            event!(
                req,
                Level::Warn,
                "deny",
                "reason" = "bad-identity",
                "detail" = e.as_str(),
                "user" = log_field(values[0], 64),
            );
            error_page(req, status::BAD_REQUEST, "Bad request", "The sign-in gateway sent no valid user name.");
            Err(status::BAD_REQUEST)
        }
    }
}

/// With `TwoFactorSessionBinding header`, the gateway's session id must come
/// as one value: repeated or comma-joined copies are refused like a bad
/// identity (a proxy may have merged a client's copy with its own).
fn validated_session_header(req: &mut Request<'_>, st: &ServerState, user: &str) -> Result<(), c_int> {
    if st.settings.session_binding != SessionBinding::Header {
        return Ok(());
    }
    let Some(name) = st.settings.session_header.as_deref() else { return Ok(()) };
    let detail = {
        let mut values = req.values(Table::In, name);
        match (values.next(), values.next()) {
            (Some(_), Some(_)) => "repeated",
            (Some(v), None) if v.contains(&b',') => "comma-joined",
            _ => return Ok(()),
        }
    };
    event!(req, Level::Warn, "deny", "reason" = "bad-session-header", "detail" = detail, "user" = user);
    error_page(req, status::BAD_REQUEST, "Bad request", "The sign-in gateway sent no valid session id.");
    Err(status::BAD_REQUEST)
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Sends a request without a valid completion away: navigations to the
/// challenge, other reads 401, everything else 403.
fn refuse(req: &mut Request<'_>, st: &ServerState, user: &str, reason: &str) -> c_int {
    let refusal = policy::refusal(req.method(), req.get(Table::In, c"Accept"), req.get(Table::In, c"X-Requested-With"));
    event!(
        req,
        Level::Info,
        "challenge",
        "user" = user,
        "reason" = reason,
        "response" = refusal.status(),
        "method" = req.method()
    );
    match refusal {
        Refusal::Redirect => redirect_to_challenge(req, st, user),
        Refusal::Unauthorized => {
            req.set(Table::ErrOut, c"Cache-Control", "no-store");
            error_page(
                req,
                status::UNAUTHORIZED,
                "Second sign-in step required",
                "Complete the second sign-in step in your browser, then try again.",
            );
            status::UNAUTHORIZED
        }
        Refusal::Forbidden => {
            error_page(
                req,
                status::FORBIDDEN,
                "Second sign-in step required",
                "Complete the second sign-in step in your browser, then try again.",
            );
            status::FORBIDDEN
        }
    }
}

/// 303 to the challenge with a signed token back to the original path and query.
fn redirect_to_challenge(req: &mut Request<'_>, st: &ServerState, user: &str) -> c_int {
    let s = &st.settings;
    let Some(keys) = &s.keys else {
        event!(req, Level::Error, "internal-error", "reason" = "no-key");
        return status::INTERNAL_SERVER_ERROR;
    };
    // The client's request line as sent: Apache decodes r->parsed_uri.path in place.
    let target = req.initial().unparsed_uri().map_or_else(|| "/".to_string(), token::return_target);
    let token = token::sign_return(keys, &target, user, now() + RETURN_TOKEN_LIFETIME_SECS);
    // A path, never an absolute URL built from Host or X-Forwarded-Host.
    let location = format!("{}/?r={token}", s.challenge_url);
    req.set(Table::ErrOut, c"Location", &location);
    req.set(Table::ErrOut, c"Cache-Control", "no-store");
    status::SEE_OTHER
}

/// For the handler: the verdict of the access phase, re-evaluated if it is
/// missing (never serve without one).
pub fn ensure_verdict(req: &mut Request<'_>, st: &ServerState, challenge: bool) -> c_int {
    if req.get(Table::Notes, NOTE_VERDICT) == Some(ALLOW.to_bytes()) {
        return OK;
    }
    decide(req, st, challenge)
}

/// The body Apache sends with an error status of ours: short and plain.
pub fn error_page(req: &mut Request<'_>, status: c_int, title: &str, message: &str) {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} {title}</title></head>\
         <body><h1>{title}</h1><p>{message}</p></body></html>\n"
    );
    req.custom_response(status, &html);
}
