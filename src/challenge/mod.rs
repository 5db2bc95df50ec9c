//! The `twofactor-challenge` content handler: the pages end users see.
//!
//! Routes below `TwoFactorChallengeURL` (default `/2fa`):
//! `GET /` start, `GET|POST /totp`, `POST /email/send`, `POST /email`,
//! `GET|POST /recovery`, `GET|POST /enroll`, `GET|POST /webauthn`,
//! `POST /webauthn/begin`, `GET|POST /webauthn/register`, `GET
//! /webauthn.js`. Every POST carries a CSRF token bound to the user and to
//! this browser's challenge nonce (a cookie scoped to the challenge path).

//!
//! Files, bottom to top: `ctx` (what every step needs), `eligibility` (who
//! may add a factor), `notify`, `steps` (what the factors share), one file
//! per factor and `enroll`; this file routes.

mod ctx;
mod eligibility;
mod email;
mod enroll;
pub(crate) mod notify;
mod recovery;
mod steps;
mod totp;
mod webauthn;

use twofactor_core::config::Method;
use twofactor_core::factors::{self, Factor};

use self::ctx::Ctx;
use crate::apache::log::{event, Level};
use crate::apache::{status, Request, Table};
use crate::enforce::{self, CHALLENGE_HANDLER};
use crate::outcome::Outcome;

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
    if route == "/webauthn.js" {
        return webauthn::script();
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
        return steps::finish(req, &ctx, &ctx.user.clone(), "test", false);
    }
    let outcome = route_to(req, &mut ctx, post, &route);
    enforce::log_tampering(req, &ctx.user);
    outcome
}

/// The step `route` names.
fn route_to(req: &mut Request<'_>, ctx: &mut Ctx<'_>, post: bool, route: &str) -> Outcome {
    match (post, route) {
        (false, "") => steps::start(req, ctx, None),
        (true, "/email/send") if ctx.field("purpose") == Some("login") => {
            refused_here(req, ctx, Method::Email).unwrap_or_else(|| email::send(req, ctx))
        }
        (true, "/email/send") => email::send(req, ctx),
        (false, "/totp") => steps::totp_page(req, ctx, None),
        (false, "/recovery") => recovery::page(req, ctx, None),
        (false, "/enroll") => enroll::page(req, ctx),
        (true, "/enroll") => enroll::submit(req, ctx),
        (false, "/webauthn") => webauthn::page(req, ctx, None),
        (true, "/webauthn/begin") => webauthn::begin(req, ctx),
        (false, "/webauthn/register") => webauthn::register_page(req, ctx, "", None),
        (true, "/webauthn/register") => webauthn::register(req, ctx),
        (true, route) => match factors::by_route(route) {
            // A mail proof for enrollment is not a sign-in with the mailbox.
            Some(factor) if factor.method == Method::Email && ctx.field("purpose") == Some("enroll") => {
                submit_code(factor)(req, ctx)
            }
            Some(factor) => refused_here(req, ctx, factor.method).unwrap_or_else(|| submit_code(factor)(req, ctx)),
            None => Outcome::Status(status::NOT_FOUND),
        },
        _ => Outcome::Status(status::NOT_FOUND),
    }
}

/// A factor the page the user came from does not accept
/// (`TwoFactorRequireMethod`): its code is not even checked; the start
/// page says what is needed. The access check refuses such a completion
/// anyway: this spares the user a useless code.
fn refused_here(req: &mut Request<'_>, ctx: &mut Ctx<'_>, method: Method) -> Option<Outcome> {
    if !ctx.offers(method) || ctx.accepts(method) {
        return None;
    }
    event!(req, Level::Info, "deny", "reason" = "step-up", "user" = ctx.user.as_str(), "method" = method.as_str());
    Some(steps::start(req, ctx, None))
}

/// Where each factor's code is checked (its route is in the registry).
fn submit_code(factor: &Factor) -> fn(&mut Request<'_>, &mut Ctx<'_>) -> Outcome {
    match factor.method {
        Method::Totp => totp::submit,
        Method::Email => email::submit,
        Method::Recovery => recovery::submit,
        Method::WebAuthn => webauthn::submit,
    }
}

/// Which methods a route takes (GET/HEAD, POST); `None`: no such route.
fn route_methods(route: &str) -> Option<(bool, bool)> {
    match route {
        "" | "/webauthn.js" => Some((true, false)),
        "/recovery" | "/enroll" | "/totp" | "/webauthn" | "/webauthn/register" => Some((true, true)),
        "/email/send" | "/email" | "/webauthn/begin" => Some((false, true)),
        #[cfg(feature = "test-hooks")]
        "/__test_complete" => Some((true, true)),
        _ => None,
    }
}
