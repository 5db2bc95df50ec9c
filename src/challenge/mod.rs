//! The `twofactor-challenge` content handler: the pages end users see.

use std::ffi::c_int;

use twofactor_core::completion::{self, Presented};
use twofactor_core::config::{DirConfig, SessionBinding};
use twofactor_core::store::codec::Completion;
use twofactor_core::{random, text, token};

use crate::apache::log::{event, Level};
use crate::apache::{Request, Table, DECLINED, OK};
use crate::enforce::{self, error_page, now, CHALLENGE_HANDLER};
use crate::state::ServerState;

const HTTP_SEE_OTHER: c_int = 303;
const HTTP_NOT_FOUND: c_int = 404;
const HTTP_INTERNAL_SERVER_ERROR: c_int = 500;
const HTTP_SERVICE_UNAVAILABLE: c_int = 503;

pub fn handler(req: &mut Request<'_>) -> c_int {
    if req.handler() != Some(CHALLENGE_HANDLER.to_bytes()) {
        return DECLINED;
    }
    let st = match enforce::state(req) {
        Ok(Some(st)) => st,
        Ok(None) => {
            event!(req, Level::Error, "config-error", "reason" = "handler-without-twofactor-configuration");
            return HTTP_NOT_FOUND;
        }
        Err(status) => return status,
    };
    let on_challenge_path = std::str::from_utf8(req.uri()).is_ok_and(|uri| st.settings.is_challenge_path(uri));
    if !on_challenge_path {
        event!(req, Level::Error, "config-error", "reason" = "handler-outside-challenge-url");
        return HTTP_NOT_FOUND;
    }
    #[cfg(feature = "test-hooks")]
    if req.uri().ends_with(b"/__panic") {
        panic!("deliberate panic in the handler (test builds only)");
    }
    let status = enforce::ensure_verdict(req, st, true);
    if status != OK {
        return status;
    }
    let user = req.user().unwrap_or("").to_string();
    #[cfg(feature = "test-hooks")]
    if req.uri().ends_with(b"/__test_complete") {
        // Test builds only: the success path without a factor, so that the
        // enforcement can be tested before the factors exist.
        return complete(req, st, &user, "test");
    }
    let body = page(
        "Second sign-in step",
        &format!(
            "<p>You are signed in at the gateway as <strong>{}</strong>.</p>\
             <p>This site asks for a second factor before it opens.</p>",
            text::html(&user)
        ),
    );
    send_page(req, &body)
}

// Used by the test-only path until the factors' pages call it.
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
/// The end of a successful challenge: a fresh session cookie, the
/// completion written to the directory (and this process's cache primed),
/// and a 303 back to the path inside the verified return token.
pub fn complete(req: &mut Request<'_>, st: &ServerState, user: &str, method: &str) -> c_int {
    let s = &st.settings;
    let (Some(keys), Some(directory)) = (&s.keys, &st.directory) else {
        return HTTP_INTERNAL_SERVER_ERROR;
    };
    let cookie = match s.session_binding {
        SessionBinding::Cookie => match random::token(32) {
            Ok(value) => Some(value),
            Err(_) => return HTTP_INTERNAL_SERVER_ERROR,
        },
        _ => None,
    };
    let session_header = st.session_header.as_deref().and_then(|h| req.get(Table::In, h)).map(<[u8]>::to_vec);
    let presented = match (s.session_binding, &cookie, &session_header) {
        (SessionBinding::Cookie, Some(c), _) => Presented::Cookie(c.as_bytes()),
        (SessionBinding::Header, _, Some(id)) if !id.is_empty() => Presented::GatewaySession(id),
        (SessionBinding::None, _, _) => Presented::Anywhere,
        _ => {
            event!(req, Level::Warn, "deny", "reason" = "no-gateway-session", "user" = user);
            error_page(req, 400, "Bad request", "The sign-in gateway sent no session id.");
            return 400;
        }
    };
    // The expiry is the challenge location's TwoFactorMaxAge; a protected
    // location with a shorter one asks again sooner.
    let lifetime = req.dir_conf().map_or_else(|| DirConfig::default().max_age(), |d| d.parsed.max_age()).as_secs();
    let now = now();
    let new = Completion {
        bound: presented.bound(keys),
        issued: now,
        expires: now.saturating_add(lifetime),
        method: method.into(),
    };
    if let Err(e) = completion::record(directory, s, user, &new) {
        event!(
            req,
            Level::Error,
            "ldap-error",
            "reason" = e.reason(),
            "detail" = text::log_field(e.to_string().as_bytes(), 300),
            "user" = user
        );
        error_page(
            req,
            HTTP_SERVICE_UNAVAILABLE,
            "Sign-in temporarily unavailable",
            "Your code was right, but it could not be recorded. Please try again in a minute.",
        );
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if let Some(value) = &cookie {
        let header = format!("{}={value}; Path=/; HttpOnly; Secure; SameSite=Lax", s.cookie_name);
        req.add(Table::ErrOut, c"Set-Cookie", &header);
    }
    let target = return_target(req, st, user);
    event!(req, Level::Info, method_event(method), "user" = user, "return" = text::log_field(target.as_bytes(), 200));
    req.set(Table::ErrOut, c"Location", &target);
    req.set(Table::ErrOut, c"Cache-Control", "no-store");
    HTTP_SEE_OTHER
}

#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
fn method_event(method: &str) -> &'static str {
    match method {
        "totp" => "totp-ok",
        "email" => "email-ok",
        "recovery" => "recovery-ok",
        "enrolled" => "enrolled",
        _ => "completed",
    }
}

#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
/// The path inside the request's verified return token (`r=`), else "/".
fn return_target(req: &Request<'_>, st: &ServerState, user: &str) -> String {
    let Some(keys) = &st.settings.keys else { return "/".into() };
    let token_value = req.args().and_then(|args| args.split('&').find_map(|pair| pair.strip_prefix("r=")));
    match token_value.map(|t| token::verify_return(keys, t, user, now())) {
        Some(Ok(path)) => path,
        Some(Err(e)) => {
            event!(req, Level::Info, "deny", "reason" = "bad-return-token", "detail" = e.as_str(), "user" = user);
            "/".into()
        }
        None => "/".into(),
    }
}

fn send_page(req: &mut Request<'_>, body: &str) -> c_int {
    security_headers(req);
    req.set_content_type(c"text/html; charset=utf-8");
    if !req.header_only() {
        req.write(body.as_bytes());
    }
    OK
}

/// Headers every challenge response carries.
fn security_headers(req: &mut Request<'_>) {
    for (name, value) in [
        (c"Cache-Control", "no-store"),
        (c"X-Content-Type-Options", "nosniff"),
        (c"X-Frame-Options", "DENY"),
        (c"Referrer-Policy", "no-referrer"),
        (
            c"Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        req.set(Table::ErrOut, name, value);
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}</style>\
         </head><body><main><h1>{title}</h1>{body}</main></body></html>\n",
        title = text::html(title),
    )
}
