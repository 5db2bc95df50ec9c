//! The `twofactor-challenge` content handler: the pages end users see.
//!
//! Routes below `TwoFactorChallengeURL` (default `/2fa`):
//! `GET /` start, `POST /totp`, `POST /email/send`, `POST /email`,
//! `GET|POST /recovery`, `GET|POST /enroll`. Every POST carries a CSRF
//! token bound to the user and to this browser's challenge nonce (a
//! cookie scoped to the challenge path).

mod email;
mod enroll;
pub(crate) mod notify;
mod recovery;
mod totp;

use std::net::IpAddr;
use std::time::Instant;

use twofactor_core::completion;
use twofactor_core::config::{DirConfig, Method, Role};
use twofactor_core::csrf::{self, Use};
use twofactor_core::factors::lockout::{self, Reservation};
use twofactor_core::factors::{self, Factor};
use twofactor_core::keys::Keys;
use twofactor_core::notify::Notice;
use twofactor_core::store::codec::{self as store_codec, LOCKED_UNTIL_UNLOCKED};
use twofactor_core::store::{Directory, LdapDirectory, Lookup, Seeded, StoreError, UserEntry};
use twofactor_core::success::{self, Failure, Recorded, Success};
use twofactor_core::{admin, form, pages, random, text, token};

use crate::apache::log::{event, Level};
use crate::apache::{status, Request, Table};
use crate::enforce::{self, now, CHALLENGE_HANDLER};
use crate::outcome::Outcome;
use crate::state::ServerState;

/// Largest form body accepted.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Life of a CSRF token (and so of a challenge page left open).
const FORM_LIFETIME_SECS: u64 = 3600;

pub fn handler(req: &mut Request<'_>) -> Outcome {
    if req.handler() != Some(CHALLENGE_HANDLER.to_bytes()) {
        return Outcome::Declined;
    }
    let st = match enforce::state(req) {
        Ok(Some(st)) => st,
        Ok(None) => {
            event!(req, Level::Error, "config-error", "reason" = "handler-without-twofactor-configuration");
            return Outcome::Status(status::NOT_FOUND);
        }
        Err(outcome) => return outcome,
    };
    let Ok(uri) = std::str::from_utf8(req.uri()) else { return Outcome::Status(status::NOT_FOUND) };
    if !st.settings.is_challenge_path(uri) {
        event!(req, Level::Error, "config-error", "reason" = "handler-outside-challenge-url");
        return Outcome::Status(status::NOT_FOUND);
    }
    let route = uri[st.settings.challenge_url.len()..].trim_end_matches('/').to_string();
    #[cfg(feature = "test-hooks")]
    if route == "/__panic" {
        panic!("deliberate panic in the handler (test builds only)");
    }
    let verdict = enforce::ensure_verdict(req, st, true);
    if !verdict.proceeds() {
        return verdict;
    }
    let (Some(keys), Some(directory)) = (&st.settings.keys, &st.directory) else {
        event!(req, Level::Error, "internal-error", "reason" = "no-key-or-directory");
        return Outcome::Status(status::INTERNAL_SERVER_ERROR);
    };
    let Some((takes_get, takes_post)) = route_methods(&route) else { return Outcome::Status(status::NOT_FOUND) };
    let post = req.method() == "POST";
    let method_ok = if post { takes_post } else { takes_get && matches!(req.method(), "GET" | "HEAD") };
    if !method_ok {
        let allow = match (takes_get, takes_post) {
            (true, true) => "GET, HEAD, POST",
            (true, false) => "GET, HEAD",
            _ => "POST",
        };
        req.set(Table::ErrOut, c"Allow", allow);
        return Outcome::Status(status::METHOD_NOT_ALLOWED);
    }
    let user = req.user().unwrap_or("").to_string();
    let mut ctx = match Ctx::new(req, st, keys, directory, user, post) {
        Ok(ctx) => ctx,
        Err(outcome) => return outcome,
    };
    #[cfg(feature = "test-hooks")]
    if route == "/__test_complete" {
        // Test builds only: the success path without a factor, so that
        // enforcement can be tested on its own.
        return finish(req, &ctx, &ctx.user.clone(), "test", false);
    }
    match (post, route.as_str()) {
        (false, "") => start(req, &mut ctx, None),
        (true, "/email/send") => email::send(req, &mut ctx),
        (false, "/recovery") => recovery::page(req, &mut ctx, None),
        (false, "/enroll") => enroll::page(req, &mut ctx),
        (true, "/enroll") => enroll::submit(req, &mut ctx),
        (true, route) => match factors::by_route(route) {
            Some(factor) => submit_code(factor)(req, &mut ctx),
            None => Outcome::Status(status::NOT_FOUND),
        },
        _ => Outcome::Status(status::NOT_FOUND),
    }
}

/// Where each factor's code is checked (its route is in the registry).
fn submit_code(factor: &Factor) -> fn(&mut Request<'_>, &mut Ctx<'_>) -> Outcome {
    match factor.method {
        Method::Totp => totp::submit,
        Method::Email => email::submit,
        Method::Recovery => recovery::submit,
    }
}

/// Which methods a route takes (GET/HEAD, POST); `None`: no such route.
fn route_methods(route: &str) -> Option<(bool, bool)> {
    match route {
        "" => Some((true, false)),
        "/recovery" | "/enroll" => Some((true, true)),
        "/totp" | "/email/send" | "/email" => Some((false, true)),
        #[cfg(feature = "test-hooks")]
        "/__test_complete" => Some((true, true)),
        _ => None,
    }
}

/// What every step of the challenge needs.
pub(crate) struct Ctx<'a> {
    pub st: &'a ServerState,
    pub keys: &'a Keys,
    /// The directory through this request's view of the user's entry.
    pub directory: Seeded<'a>,
    /// The validated name from the gateway.
    pub user: String,
    /// This browser's challenge nonce (cookie `<TwoFactorCookieName>-nonce`).
    pub nonce: String,
    /// The raw return token (`r`), from the query or the form.
    pub return_token: String,
    /// The decoded form of a POST.
    pub fields: Vec<(String, String)>,
    pub now: u64,
    /// The end user's address as mod_remoteip derived it (`None`: unknown).
    pub end_user: Option<IpAddr>,
    csrf: String,
}

impl<'a> Ctx<'a> {
    fn new(
        req: &mut Request<'_>,
        st: &'a ServerState,
        keys: &'a Keys,
        directory: &'a LdapDirectory,
        user: String,
        post: bool,
    ) -> Result<Ctx<'a>, Outcome> {
        let now = now();
        let nonce_cookie = format!("{}-nonce", st.settings.cookie_name);
        let existing = req
            .values(Table::In, "Cookie")
            .find_map(|v| completion::find_cookie(v, &nonce_cookie))
            .filter(|v| completion::is_plausible_cookie(v))
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_string);
        let mut fields = Vec::new();
        let return_token;
        let nonce = if post {
            let body = req.read_body(MAX_FORM_BYTES).map_err(Outcome::Status)?;
            fields = match form::parse(&body) {
                Some(fields) => fields,
                None => {
                    event!(req, Level::Warn, "deny", "reason" = "bad-form", "user" = user.as_str());
                    return Err(Outcome::Status(status::BAD_REQUEST));
                }
            };
            return_token = form::single(&fields, "r").unwrap_or("").to_string();
            let token = form::single(&fields, "csrf").unwrap_or("");
            let nonce = existing.unwrap_or_default();
            if !csrf::verify(keys, Use::Form, token, &user, &nonce, now) {
                event!(req, Level::Warn, "deny", "reason" = "csrf", "user" = user.as_str());
                return Err(Outcome::Page(
                    status::FORBIDDEN,
                    pages::message(
                        "Please start again",
                        "This form expired or did not come from this browser's sign-in page.",
                        Some((&st.settings.challenge_url, "Start again")),
                    ),
                ));
            }
            nonce
        } else {
            return_token = req
                .args()
                .and_then(|args| args.split('&').find_map(|pair| pair.strip_prefix("r=")))
                .unwrap_or("")
                .to_string();
            match existing {
                Some(nonce) => nonce,
                None => {
                    let nonce = random::token(32).map_err(|_| Outcome::Status(status::INTERNAL_SERVER_ERROR))?;
                    let cookie = format!(
                        "{nonce_cookie}={nonce}; Path={}; HttpOnly; Secure; SameSite=Lax",
                        st.settings.challenge_url
                    );
                    req.add(Table::ErrOut, c"Set-Cookie", &cookie);
                    nonce
                }
            }
        };
        let csrf = csrf::issue(keys, Use::Form, &user, &nonce, now + FORM_LIFETIME_SECS);
        let end_user = end_user_address(req);
        let directory = Seeded::new(directory);
        Ok(Ctx { st, keys, directory, user, nonce, return_token, fields, now, end_user, csrf })
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        form::single(&self.fields, name)
    }

    pub fn form_base(&self) -> pages::FormBase<'_> {
        pages::FormBase { base: &self.st.settings.challenge_url, csrf: &self.csrf, return_token: &self.return_token }
    }

    pub fn offers(&self, method: Method) -> bool {
        self.st.settings.methods.contains(&method)
    }

    /// The user's entry with every state attribute and the mail attribute.
    pub fn entry(&self, req: &mut Request<'_>) -> Result<UserEntry, Outcome> {
        let s = &self.st.settings;
        let mut attrs: Vec<&str> = Role::ALL.iter().map(|r| s.attribute(*r)).collect();
        attrs.push(&s.mail_attribute);
        attrs.push("objectClass");
        let found = self.directory.find_user(&self.user, &attrs);
        if found.is_ok() {
            enforce::note_directory_answered(req, self.st);
        }
        match found {
            Ok(Lookup::Found(entry)) => Ok(entry),
            Ok(Lookup::NotFound | Lookup::Ambiguous) => {
                event!(req, Level::Warn, "deny", "reason" = "unknown-user", "user" = self.user.as_str());
                Err(Outcome::Page(
                    status::FORBIDDEN,
                    pages::message(
                        "Account not set up",
                        "Your account is not set up for the second sign-in step. Please contact your administrator.",
                        None,
                    ),
                ))
            }
            Err(e) => Err(directory_trouble(req, self, &e)),
        }
    }

    /// The entry, or the locked page (as `Err`) if the account is locked.
    pub fn unlocked_entry(&self, req: &mut Request<'_>) -> Result<UserEntry, Outcome> {
        let entry = self.entry(req)?;
        match self.locked_until(&entry) {
            Some(until) => Err(locked_page(until)),
            None => Ok(entry),
        }
    }

    pub fn mail_address<'e>(&self, entry: &'e UserEntry) -> Option<&'e str> {
        factors::email::address(entry, &self.st.settings)
    }

    pub fn locked_until(&self, entry: &UserEntry) -> Option<u64> {
        store_codec::locked_until(entry.values(self.st.settings.attribute(Role::Failures)), self.now)
    }

    /// What the user may do besides the main form. Enrolling behind a mail
    /// proof is offered only where a mail can be sent.
    pub fn options(&self, req: &Request<'_>, entry: &UserEntry) -> pages::Options {
        let s = &self.st.settings;
        let can_mail = s.smtp.is_some() && self.mail_address(entry).is_some();
        pages::Options {
            email: self.offers(Method::Email) && can_mail,
            recovery: self.offers(Method::Recovery) && factors::RECOVERY.enrolled(entry, s),
            enroll: enroll::offer(req, self, entry, can_mail),
        }
    }
}

/// The end user's address as mod_remoteip derived it from the gateway's
/// forwarded header; `None` when it derived nothing (the address Apache
/// knows is the gateway's own). A raw `X-Forwarded-For` is never read: a
/// gateway that does not append to it lets the client write it.
fn end_user_address(req: &Request<'_>) -> Option<IpAddr> {
    let apache = req.client_ip().parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    apache.filter(|ip| Some(*ip) != req.peer_ip())
}

/// The start page: locked, the TOTP form, or the ways to get going.
pub(crate) fn start(req: &mut Request<'_>, ctx: &mut Ctx<'_>, error: Option<&str>) -> Outcome {
    if !ctx.return_token.is_empty() && token::verify_return(ctx.keys, &ctx.return_token, &ctx.user, ctx.now).is_err() {
        event!(req, Level::Info, "deny", "reason" = "bad-return-token", "user" = ctx.user.as_str());
        return Outcome::Page(
            status::BAD_REQUEST,
            pages::message(
                "This sign-in link has expired",
                "Go back to the application and open it again: you will come back here with a fresh link.",
                Some(("/", "Go to the start page")),
            ),
        );
    }
    let entry = match ctx.unlocked_entry(req) {
        Ok(entry) => entry,
        Err(outcome) => return outcome,
    };
    let enrolled = factors::TOTP.enrolled(&entry, &ctx.st.settings);
    let options = ctx.options(req, &entry);
    let mail = ctx.mail_address(&entry).map(mask_mail);
    let body = if enrolled && ctx.offers(Method::Totp) {
        pages::totp(&ctx.form_base(), &ctx.user, error, &options, mail.as_deref())
    } else {
        pages::choose(&ctx.form_base(), &ctx.user, &options, mail.as_deref())
    };
    Outcome::Page(status::OK, body)
}

/// `alice@example.org` -> `a***@example.org`: enough to recognise, not to harvest.
fn mask_mail(mail: &str) -> String {
    match mail.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".into(),
    }
}

pub(crate) fn locked_page(until: u64) -> Outcome {
    let when = (until != LOCKED_UNTIL_UNLOCKED).then(|| admin::iso8601(until).replace('T', " ").replace('Z', ""));
    let minutes = until.saturating_sub(now()).div_ceil(60);
    Outcome::Page(status::FORBIDDEN, pages::locked(when.as_deref().map(|w| (w, minutes))))
}

/// Before a code is checked, its attempt is counted (one compare-and-swap
/// in the directory), so that parallel submissions cannot check more codes
/// than `TwoFactorMaxAttempts` allows. Returns the count with this attempt;
/// `Err` is the response already sent (the locked page, or trouble).
pub(crate) fn reserve_attempt(
    req: &mut Request<'_>,
    ctx: &Ctx<'_>,
    entry: &UserEntry,
    factor: &Factor,
) -> Result<u32, Outcome> {
    let method = factor.method.as_str();
    match lockout::reserve_attempt(&ctx.directory, &ctx.st.settings, &ctx.user, ctx.now) {
        Ok(Reservation::Granted { count, ended_lock }) => {
            if ended_lock {
                event!(req, Level::Info, "unlocked", "user" = ctx.user.as_str(), "reason" = "lock-expired");
            }
            Ok(count)
        }
        Ok(Reservation::Locked { until, newly }) => {
            if newly {
                event!(req, Level::Warn, "locked", "user" = ctx.user.as_str(), "until" = until);
                notify::queue(req, ctx, entry, Notice::Locked { until });
            }
            event!(req, Level::Info, "deny", "reason" = "locked", "user" = ctx.user.as_str(), "method" = method);
            Err(locked_page(until))
        }
        // Too many writers at once: the attempt is neither counted nor checked.
        Err(StoreError::Conflict) => {
            event!(req, Level::Warn, "deny", "reason" = "busy", "user" = ctx.user.as_str(), "method" = method);
            req.set(Table::ErrOut, c"Retry-After", "5");
            Err(Outcome::Page(
                status::SERVICE_UNAVAILABLE,
                pages::message(
                    "Too many attempts at once",
                    "Several codes for your account arrived at the same moment. Wait a few seconds, then try again.",
                    Some((&ctx.st.settings.challenge_url, "Start again")),
                ),
            ))
        }
        Err(e) => Err(directory_trouble(req, ctx, &e)),
    }
}

/// A wrong (or replayed) code on a counted attempt: logged, and the lock
/// set if it was the last attempt allowed. `Ok` is the message for the form
/// again; `Err` the response already sent (the locked page, or trouble).
pub(crate) fn wrong_code(
    req: &mut Request<'_>,
    ctx: &Ctx<'_>,
    entry: &UserEntry,
    factor: &Factor,
    reason: &str,
    count: u32,
) -> Result<String, Outcome> {
    event!(req, Level::Warn, factor.fail_event, "user" = ctx.user.as_str(), "reason" = reason, "failures" = count);
    match lockout::record_wrong_code(&ctx.directory, &ctx.st.settings, &ctx.user, ctx.now) {
        Ok(Some(until)) => {
            event!(req, Level::Warn, "locked", "user" = ctx.user.as_str(), "until" = until);
            notify::queue(req, ctx, entry, Notice::Locked { until });
            Err(locked_page(until))
        }
        Ok(None) => {
            let left = lockout::attempts_left(count, ctx.st.settings.max_attempts);
            // No attempt left and yet no lock: a right code reset the count meanwhile.
            Ok(match left {
                0 => "That code is not right.".to_string(),
                _ => format!(
                    "That code is not right. {} left before the account locks.",
                    pages::plural(left.into(), "attempt")
                ),
            })
        }
        Err(e) => Err(directory_trouble(req, ctx, &e)),
    }
}

/// A right code on a counted attempt: the count goes, unless the account
/// was locked meanwhile (then the success does not count: the locked page).
pub(crate) fn right_code(req: &mut Request<'_>, ctx: &Ctx<'_>, method: &str) -> Result<(), Outcome> {
    match lockout::record_right_code(&ctx.directory, &ctx.st.settings, &ctx.user, ctx.now) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(until)) => {
            event!(req, Level::Warn, "deny", "reason" = "locked", "user" = ctx.user.as_str(), "method" = method);
            Err(locked_page(until))
        }
        Err(e) => Err(directory_trouble(req, ctx, &e)),
    }
}

/// Success: the completion recorded (fresh session cookie,
/// directory, this process's cache), and a 303 back to the original path.
///
/// With `ends_attempt`, the success is that of a counted attempt (see
/// `reserve_attempt`): its end is written in the same modify as the
/// completion, unless the account was locked meanwhile (then the locked
/// page, and no completion).
pub(crate) fn finish(
    req: &mut Request<'_>,
    ctx: &Ctx<'_>,
    canonical: &str,
    method: &str,
    ends_attempt: bool,
) -> Outcome {
    match record_success(req, ctx, canonical, method, ends_attempt) {
        Ok(target) => Outcome::Redirect(target),
        Err(outcome) => outcome,
    }
}

/// The bookkeeping of a success (`success::record`); returns where to send the user.
pub(crate) fn record_success(
    req: &mut Request<'_>,
    ctx: &Ctx<'_>,
    canonical: &str,
    method: &str,
    ends_attempt: bool,
) -> Result<String, Outcome> {
    let s = &ctx.st.settings;
    let gateway_session = ctx.st.session_header.as_deref().and_then(|h| req.get(Table::In, h));
    // The completion lives as long as the challenge location's
    // TwoFactorMaxAge; a protected location with a shorter one asks again sooner.
    let lifetime = req.dir_conf().map_or_else(|| DirConfig::default().max_age(), |d| d.parsed.max_age()).as_secs();
    let new = Success { user: canonical, method, ends_attempt, lifetime, gateway_session };
    match success::record(&ctx.directory, s, &ctx.st.cache, &new, ctx.now, Instant::now()) {
        Ok(Recorded::Done { session_cookie }) => {
            if let Some(value) = &session_cookie {
                let header = format!("{}={value}; Path=/; HttpOnly; Secure; SameSite=Lax", s.cookie_name);
                req.add(Table::ErrOut, c"Set-Cookie", &header);
            }
        }
        Ok(Recorded::Locked { until }) => {
            event!(req, Level::Warn, "deny", "reason" = "locked", "user" = ctx.user.as_str(), "method" = method);
            return Err(locked_page(until));
        }
        Ok(Recorded::NoGatewaySession) => {
            event!(req, Level::Warn, "deny", "reason" = "no-gateway-session", "user" = canonical);
            let page = pages::error(400, "Bad request", "The sign-in gateway sent no session id.");
            return Err(Outcome::ErrorPage(status::BAD_REQUEST, page));
        }
        Err(Failure::Directory(e)) => return Err(directory_trouble(req, ctx, &e)),
        Err(Failure::Internal(reason)) => {
            event!(req, Level::Error, "internal-error", "reason" = reason);
            return Err(Outcome::Status(status::INTERNAL_SERVER_ERROR));
        }
    }
    let (target, bad_token) = success::return_target(ctx.keys, &ctx.return_token, &ctx.user, ctx.now);
    if let Some(e) = bad_token {
        event!(
            req,
            Level::Info,
            "deny",
            "reason" = "bad-return-token",
            "detail" = e.as_str(),
            "user" = ctx.user.as_str()
        );
    }
    event!(
        req,
        Level::Info,
        factors::success_event(method),
        "user" = canonical,
        "return" = text::log_field(target.as_bytes(), 200)
    );
    Ok(target)
}

/// The directory failed: one log line (summarised) and the page of the
/// access check's refusal for the same cause.
pub(crate) fn directory_trouble(req: &mut Request<'_>, ctx: &Ctx<'_>, e: &StoreError) -> Outcome {
    enforce::log_directory_error(req, ctx.st, e, Some(&ctx.user));
    req.set(Table::ErrOut, c"Retry-After", "30");
    Outcome::Page(status::SERVICE_UNAVAILABLE, pages::directory_down())
}
