//! The `twofactor-challenge` content handler: the pages end users see.

use std::ffi::c_int;

use twofactor_core::text;

use crate::apache::log::{event, Level};
use crate::apache::{Request, Table, DECLINED, OK};
use crate::enforce::{self, CHALLENGE_HANDLER};

const HTTP_NOT_FOUND: c_int = 404;

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
    let user = req.user().unwrap_or("");
    let body = page(
        "Second sign-in step",
        &format!(
            "<p>You are signed in at the gateway as <strong>{}</strong>.</p>\
             <p>This site asks for a second factor before it opens.</p>",
            text::html(user)
        ),
    );
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
