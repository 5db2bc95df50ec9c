//! The steps every factor shares: the start page, counting an attempt
//! before its code is checked, a wrong or a right code, and a success.

use std::time::Instant;

use twofactor_core::config::{DirConfig, Method};
use twofactor_core::factors::lockout::{self, Reservation};
use twofactor_core::factors::{self, Factor};
use twofactor_core::notify::Notice;
use twofactor_core::store::{StoreError, UserEntry};
use twofactor_core::success::{self, Failure, Recorded, Success};
use twofactor_core::{pages, text, token};

use super::ctx::{directory_trouble, locked_page, Ctx};
use super::{eligibility, notify};
use crate::apache::log::{event, Level};
use crate::apache::{status, Request, Table};
use crate::outcome::Outcome;

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
    let s = &ctx.st.settings;
    let step_up = (!ctx.required.is_empty())
        .then(|| format!("This page asks for a recent sign-in with {}.", pages::method_names(ctx.required)));
    let error = error.or(step_up.as_deref());
    // A passkey first: it cannot be phished through a look-alike page.
    if ctx.accepts(Method::WebAuthn) && s.webauthn.is_some() && factors::WEBAUTHN.enrolled(&entry, s) {
        return super::webauthn::page(req, ctx, error);
    }
    let options = options(req, ctx, &entry);
    let mail = ctx.mail_address(&entry).map(mask_mail);
    let body = if ctx.accepts(Method::Totp) && factors::TOTP.enrolled(&entry, s) {
        pages::totp(&ctx.form_base(), &ctx.user, error, &options, mail.as_deref())
    } else {
        pages::choose(&ctx.form_base(), &ctx.user, error, &options, mail.as_deref())
    };
    Outcome::Page(status::OK, body)
}

/// `GET /totp`: the authenticator code form (linked from the passkey
/// prompt), and the same form again after a wrong code.
pub(crate) fn totp_page(req: &mut Request<'_>, ctx: &mut Ctx<'_>, error: Option<&str>) -> Outcome {
    let entry = match ctx.unlocked_entry(req) {
        Ok(entry) => entry,
        Err(outcome) => return outcome,
    };
    if !(ctx.accepts(Method::Totp) && factors::TOTP.enrolled(&entry, &ctx.st.settings)) {
        return start(req, ctx, error);
    }
    let mut options = options(req, ctx, &entry);
    options.passkey = ctx.accepts(Method::WebAuthn) && factors::WEBAUTHN.enrolled(&entry, &ctx.st.settings);
    let mail = ctx.mail_address(&entry).map(mask_mail);
    Outcome::Page(status::OK, pages::totp(&ctx.form_base(), &ctx.user, error, &options, mail.as_deref()))
}

/// What the user may do besides the main form. Enrolling behind a mail
/// proof is offered only where a mail can be sent.
pub(crate) fn options(req: &Request<'_>, ctx: &Ctx<'_>, entry: &UserEntry) -> pages::Options {
    let s = &ctx.st.settings;
    let can_mail = s.smtp.is_some() && ctx.mail_address(entry).is_some();
    let enroll = eligibility::offer(req, ctx, entry, can_mail);
    let passkeys = ctx.accepts(Method::WebAuthn) && s.webauthn.is_some();
    pages::Options {
        email: ctx.accepts(Method::Email) && can_mail,
        recovery: ctx.accepts(Method::Recovery) && factors::RECOVERY.enrolled(entry, s),
        enroll,
        passkey: false,
        totp: false,
        // The setup link leads to the authenticator app setup where TOTP is
        // offered; then passkeys get their own link.
        enroll_passkey: passkeys && enroll == pages::EnrollOffer::Link && ctx.offers(Method::Totp),
    }
}

/// `alice@example.org` -> `a***@example.org`: enough to recognise, not to harvest.
pub(crate) fn mask_mail(mail: &str) -> String {
    match mail.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".into(),
    }
}

/// Before a code is checked, its attempt is counted (one compare-and-swap
/// in the directory), so that parallel submissions cannot check more codes
/// than `TwoFactorMaxAttempts` allows. Returns the count with this attempt;
/// `Err` is the answer instead (the locked page, or trouble).
pub(crate) fn reserve_attempt(
    req: &mut Request<'_>,
    ctx: &Ctx<'_>,
    entry: &UserEntry,
    factor: &Factor,
) -> Result<u32, Outcome> {
    let method = factor.method.as_str();
    match lockout::reserve_attempt(&ctx.directory, &ctx.st.settings, ctx.anchor(), &ctx.user, ctx.now) {
        Ok(Reservation::Granted { count, ended_lock }) => {
            if ended_lock {
                event!(req, Level::Info, "unlocked", "user" = ctx.user.as_str(), "reason" = "lock-expired");
            }
            Ok(count)
        }
        Ok(Reservation::Locked { until, newly }) => {
            crate::metrics::count(|m| {
                m.attempt(method, "locked");
                if newly {
                    m.lock();
                }
            });
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
/// again; `Err` the answer instead (the locked page, or trouble).
pub(crate) fn wrong_code(
    req: &mut Request<'_>,
    ctx: &Ctx<'_>,
    entry: &UserEntry,
    factor: &Factor,
    reason: &str,
    count: u32,
) -> Result<String, Outcome> {
    let result = if reason == "replayed" { "replayed" } else { "fail" };
    crate::metrics::count(|m| m.attempt(factor.method.as_str(), result));
    event!(req, Level::Warn, factor.fail_event, "user" = ctx.user.as_str(), "reason" = reason, "failures" = count);
    match lockout::record_wrong_code(&ctx.directory, &ctx.st.settings, ctx.anchor(), &ctx.user, ctx.now) {
        Ok(Some(until)) => {
            crate::metrics::count(|m| m.lock());
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
    match lockout::record_right_code(&ctx.directory, &ctx.st.settings, ctx.anchor(), &ctx.user, ctx.now) {
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
    match success::record(&ctx.directory, s, ctx.anchor(), &ctx.st.cache, &new, ctx.now, Instant::now()) {
        Ok(Recorded::Done { session_cookie }) => {
            crate::metrics::count(|m| match method {
                factors::ENROLLED => m.enrollment("totp"),
                method => m.attempt(method, "ok"),
            });
            if let Some(value) = &session_cookie {
                let header = format!("{}={value}; Path=/; HttpOnly; Secure; SameSite=Lax", s.cookie_name);
                req.add(Table::ErrOut, c"Set-Cookie", &header);
            }
        }
        Ok(Recorded::Locked { until }) => {
            crate::metrics::count(|m| m.attempt(method, "locked"));
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
