//! The `twofactor-challenge` content handler: the pages end users see.
//!
//! Routes below `TwoFactorChallengeURL` (default `/2fa`):
//! `GET /` start, `POST /totp`, `POST /email/send`, `POST /email`,
//! `GET|POST /recovery`, `GET|POST /enroll`. Every POST carries a CSRF
//! token bound to the user and to this browser's challenge nonce (a
//! cookie scoped to the challenge path).

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
    match (post, route.as_str()) {
        (false, "") => steps::start(req, &mut ctx, None),
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
