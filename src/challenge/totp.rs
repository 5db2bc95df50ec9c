//! `POST /totp`: a code from an authenticator app or a hardware token.

use twofactor_core::config::Role;
use twofactor_core::factors;
use twofactor_core::totp::{self, seal_context, LastStep, TotpRecord};

use super::ctx::Ctx;
use crate::apache::log::{event, Level};
use crate::apache::{status, Request};
use crate::outcome::Outcome;
use twofactor_core::pages;

pub fn submit(req: &mut Request<'_>, ctx: &mut Ctx<'_>) -> Outcome {
    let code = ctx.field("code").unwrap_or("").to_string();
    let entry = match ctx.unlocked_entry(req) {
        Ok(entry) => entry,
        Err(outcome) => return outcome,
    };
    let s = &ctx.st.settings;
    let signer = ctx.signer();
    let Some(record) = entry.values(s.attribute(Role::Totp)).first().and_then(|v| TotpRecord::open(&signer, v)) else {
        return super::steps::start(req, ctx, Some("No authenticator is set up for your account."));
    };
    let Some((secret, _current_key)) = ctx.keys.open(&seal_context(&entry.username), &record.sealed) else {
        event!(req, Level::Error, "totp-error", "reason" = "cannot-open-secret", "user" = entry.username.as_str());
        return Outcome::Page(
            status::INTERNAL_SERVER_ERROR,
            pages::message(
                "Your authenticator cannot be checked",
                "The stored setup of your authenticator cannot be read (was the key file changed?). \
                 Please contact your administrator.",
                None,
            ),
        );
    };
    // Counted before it is checked: parallel guesses cannot outrun the lock.
    let count = match super::steps::reserve_attempt(req, ctx, &entry, &factors::TOTP) {
        Ok(count) => count,
        Err(outcome) => return outcome,
    };
    let s = &ctx.st.settings;
    let last_attr = s.attribute(Role::TotpLast);
    let last = entry.values(last_attr).first().and_then(|v| LastStep::open(&signer, v));
    let verdict = totp::verify(secret.expose(), record.params, &code, ctx.now, s.totp_skew.as_secs(), last);
    let reason = match verdict {
        Ok(accepted) => {
            // Accepted once: of concurrent submissions of one code exactly one wins.
            match factors::totp::use_step(&ctx.directory, s, ctx.anchor(), &ctx.user, accepted) {
                Ok(true) => {
                    if accepted.drift != 0 {
                        event!(
                            req,
                            Level::Debug,
                            "totp-drift",
                            "user" = entry.username.as_str(),
                            "steps" = accepted.drift
                        );
                    }
                    return super::steps::finish(req, ctx, &entry.username, "totp", true);
                }
                Ok(false) => "replayed",
                Err(e) => return super::ctx::directory_trouble(req, ctx, &e),
            }
        }
        Err(rejection) => rejection.as_str(),
    };
    match super::steps::wrong_code(req, ctx, &entry, &factors::TOTP, reason, count) {
        Ok(message) => {
            let message = if reason == "replayed" {
                "That code was already used. Wait for the next one.".to_string()
            } else {
                message
            };
            super::steps::totp_page(req, ctx, Some(&message))
        }
        Err(outcome) => outcome,
    }
}
