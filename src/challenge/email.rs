//! Emailed passcodes: `POST /email/send` (purpose `login` or `enroll`) and
//! `POST /email`.

use std::time::Duration;

use twofactor_core::config::{Method, Role};
use twofactor_core::csrf::{self, Use};
use twofactor_core::factors::{self, email::EmailCode};
use twofactor_core::mail::{Mailer, SmtpMailer};
use twofactor_core::store::cas::{self, Decision};
use twofactor_core::store::{schema, Change, Directory, StoreError, UserEntry};

use super::ctx::Ctx;
use crate::apache::log::{event, Level};
use crate::apache::{status, Request};
use crate::outcome::Outcome;
use twofactor_core::pages;

/// Limit of each step of one SMTP conversation: how long a user may wait
/// for the "mail could not be sent" page when the relay hangs.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the passcode is wanted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Login,
    Enroll,
}

impl Purpose {
    fn parse(value: Option<&str>) -> Purpose {
        if value == Some("enroll") {
            Purpose::Enroll
        } else {
            Purpose::Login
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::Enroll => "enroll",
        }
    }

    /// `Err` (the answer instead) when mail may not be used for this
    /// purpose here: the enrollment rules are checked before a mail is
    /// sent or a code used, not only by the pages that offer the button.
    fn check(self, req: &mut Request<'_>, ctx: &mut Ctx<'_>, entry: &UserEntry) -> Result<(), Outcome> {
        let refusal = match self {
            Purpose::Login if ctx.offers(Method::Email) => None,
            Purpose::Login => Some(("email-not-offered", "Codes by mail are not offered here.")),
            Purpose::Enroll => super::eligibility::refusal(req, ctx, entry),
        };
        match refusal {
            None => Ok(()),
            Some((reason, why)) => {
                event!(
                    req,
                    Level::Warn,
                    "deny",
                    "reason" = reason,
                    "user" = ctx.user.as_str(),
                    "purpose" = self.as_str()
                );
                Err(super::steps::start(req, ctx, Some(why)))
            }
        }
    }
}

pub fn send(req: &mut Request<'_>, ctx: &mut Ctx<'_>) -> Outcome {
    let purpose = Purpose::parse(ctx.field("purpose"));
    let entry = match ctx.unlocked_entry(req) {
        Ok(entry) => entry,
        Err(outcome) => return outcome,
    };
    if let Err(status) = purpose.check(req, ctx, &entry) {
        return status;
    }
    let (Some(smtp), Some(to)) = (&ctx.st.settings.smtp, ctx.mail_address(&entry)) else {
        return super::steps::start(req, ctx, Some("A code cannot be sent by mail for this account."));
    };
    let s = &ctx.st.settings;
    let code = match factors::random_digits(factors::email::DIGITS) {
        Ok(code) => code,
        Err(_) => return Outcome::Status(status::INTERNAL_SERVER_ERROR),
    };
    let (keys, user, now, signer) = (ctx.keys, ctx.user.clone(), ctx.now, ctx.signer());
    let ttl = s.email_code_ttl.as_secs();
    let interval = s.email_resend_interval.as_secs();
    let attr = s.attribute(Role::EmailCode);
    let stored = cas::update(&ctx.directory, &user, attr, schema::class_for(attr), |_, current| {
        let wait = current.and_then(|c| EmailCode::open(&signer, c)).map_or(0, |c| c.resend_wait(now, interval));
        if wait > 0 {
            return Decision::Keep(Err(wait));
        }
        let value = EmailCode::new(keys, &user, &code, now, ttl).seal(&signer);
        Decision::Write(Some(value.clone()), Ok(value))
    });
    let value = match stored {
        Ok(Ok(value)) => value,
        Ok(Err(wait)) => {
            // Throttled: no mail; the form for the code already sent.
            event!(req, Level::Info, "email-throttled", "user" = ctx.user.as_str(), "wait" = wait);
            let notice = format!("A code was sent moments ago. You can ask for a new one in {wait} seconds.");
            return Outcome::Page(
                status::OK,
                pages::email_code(&ctx.form_base(), purpose.as_str(), Some(&notice), None),
            );
        }
        Err(e) => return super::ctx::directory_trouble(req, ctx, &e),
    };
    let (subject, body) = factors::email::message(&s.totp_issuer, &code, ttl.div_ceil(60));
    let sent = SmtpMailer::new(smtp, SMTP_TIMEOUT).send(to, &subject, &body);
    crate::metrics::count(|m| m.mail("passcode", sent.is_ok()));
    if let Err(e) = sent {
        event!(
            req,
            Level::Error,
            "smtp-error",
            "user" = ctx.user.as_str(),
            "detail" = twofactor_core::text::log_field(e.as_bytes(), 300)
        );
        // The code never reached the user: withdraw it, so that the resend
        // throttle does not hold them back.
        let _ = ctx.directory.modify(&entry.dn, &[Change::Delete(s.attribute(Role::EmailCode).into(), vec![value])]);
        return Outcome::Page(status::SERVICE_UNAVAILABLE, pages::message(
                "Mail could not be sent",
                "The sign-in service cannot send mail right now. Please try again in a few minutes, or use another way.",
                Some((&s.challenge_url, "Back")),
            ));
    }
    event!(req, Level::Info, "email-sent", "user" = ctx.user.as_str(), "purpose" = purpose.as_str());
    Outcome::Page(status::OK, pages::email_code(&ctx.form_base(), purpose.as_str(), None, None))
}

pub fn submit(req: &mut Request<'_>, ctx: &mut Ctx<'_>) -> Outcome {
    let purpose = Purpose::parse(ctx.field("purpose"));
    let code = ctx.field("code").unwrap_or("").to_string();
    let entry = match ctx.unlocked_entry(req) {
        Ok(entry) => entry,
        Err(outcome) => return outcome,
    };
    if let Err(status) = purpose.check(req, ctx, &entry) {
        return status;
    }
    let count = match super::steps::reserve_attempt(req, ctx, &entry, &factors::EMAIL) {
        Ok(count) => count,
        Err(outcome) => return outcome,
    };
    let attr = ctx.st.settings.attribute(Role::EmailCode);
    let stored = entry.values(attr).first().cloned();
    let signer = ctx.signer();
    let matched = stored
        .as_deref()
        .and_then(|v| EmailCode::open(&signer, v))
        .is_some_and(|c| c.matches(ctx.keys, &ctx.user, &code, ctx.now));
    if matched {
        // Single use: of two submissions of one code, one deletes it.
        let value = stored.clone().unwrap_or_default();
        match ctx.directory.modify(&entry.dn, &[Change::Delete(attr.into(), vec![value])]) {
            Ok(()) => return accepted(req, ctx, purpose, &entry.username),
            Err(StoreError::Conflict) => {}
            Err(e) => return super::ctx::directory_trouble(req, ctx, &e),
        }
    }
    let reason = if stored.is_none() { "no-code" } else { "wrong" };
    match super::steps::wrong_code(req, ctx, &entry, &factors::EMAIL, reason, count) {
        Ok(message) => {
            let message = if stored.is_none() {
                "That code has expired or was already used. Ask for a new one."
            } else {
                &message
            };
            Outcome::Page(status::OK, pages::email_code(&ctx.form_base(), purpose.as_str(), None, Some(message)))
        }
        Err(outcome) => outcome,
    }
}

fn accepted(req: &mut Request<'_>, ctx: &mut Ctx<'_>, purpose: Purpose, canonical: &str) -> Outcome {
    match purpose {
        Purpose::Login => super::steps::finish(req, ctx, canonical, "email", true),
        Purpose::Enroll => {
            if let Err(status) = super::steps::right_code(req, ctx, "email") {
                return status;
            }
            event!(req, Level::Info, "email-ok", "user" = canonical, "purpose" = "enroll");
            let proof = csrf::issue(ctx.keys, Use::EnrollProof, &ctx.user, &ctx.nonce, ctx.now + 900);
            super::enroll::show(req, ctx, &proof)
        }
    }
}
