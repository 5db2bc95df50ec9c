//! What a hook or a challenge step answers, and the one place where that
//! answer becomes Apache's `int` (`respond`, called by the exports only).

use std::ffi::{c_int, CStr};

use crate::apache::{status, Request, Table, DECLINED, OK};

/// An answer. Steps build it and return it; nothing below the exports
/// turns it into a status or writes a page itself.
#[must_use]
#[derive(Debug)]
pub enum Outcome {
    /// Not ours to decide: the next module, or Apache, goes on (DECLINED).
    Declined,
    /// This hook is done and the request goes on (OK): an allow, or the
    /// challenge path handed to the handler.
    Proceed,
    /// Apache answers with this status and its own body (an internal
    /// error, a wrong method, no such page).
    Status(c_int),
    /// A page of ours, written as the response (the handler only).
    Page(c_int, String),
    /// A page of ours that loads the handler's own script (the passkey pages).
    ScriptedPage(c_int, String),
    /// An error page of ours, which Apache sends with this status (the
    /// access hooks: it stands in for Apache's own error document).
    ErrorPage(c_int, String),
    /// 303 See Other to this path, never stored by a cache.
    Redirect(String),
    /// Text added to a page another module writes (mod_status's section).
    Append(String),
    /// A document that is not a page (metrics, health), never stored by a
    /// cache; the handler only.
    Document { status: c_int, content_type: &'static CStr, body: String },
}

impl Outcome {
    /// Whether the request goes on.
    pub fn proceeds(&self) -> bool {
        matches!(self, Outcome::Proceed)
    }
}

/// Carries `outcome` out on `req` and returns what the hook returns.
pub fn respond(req: &mut Request<'_>, outcome: Outcome) -> c_int {
    let scripted = matches!(outcome, Outcome::ScriptedPage(..));
    match outcome {
        Outcome::Declined => DECLINED,
        Outcome::Proceed => OK,
        Outcome::Status(status) => status,
        Outcome::Page(status, body) | Outcome::ScriptedPage(status, body) => {
            for (name, value) in twofactor_core::policy::PAGE_HEADERS {
                req.set(Table::ErrOut, name, value);
            }
            if scripted {
                req.set(Table::ErrOut, c"Content-Security-Policy", twofactor_core::policy::SCRIPTED_PAGE_CSP);
            }
            req.set_status(status);
            req.set_content_type(c"text/html; charset=utf-8");
            if !req.header_only() {
                req.write(body.as_bytes());
            }
            OK
        }
        Outcome::ErrorPage(status, body) => {
            req.custom_response(status, &body);
            status
        }
        Outcome::Append(text) => {
            if !req.header_only() {
                req.write(text.as_bytes());
            }
            OK
        }
        Outcome::Document { status, content_type, body } => {
            req.set(Table::ErrOut, c"Cache-Control", "no-store");
            req.set(Table::ErrOut, c"X-Content-Type-Options", "nosniff");
            req.set_status(status);
            req.set_content_type(content_type);
            if !req.header_only() {
                req.write(body.as_bytes());
            }
            OK
        }
        Outcome::Redirect(location) => {
            req.set(Table::ErrOut, c"Location", &location);
            req.set(Table::ErrOut, c"Cache-Control", "no-store");
            status::SEE_OTHER
        }
    }
}
