//! Who may add or replace a factor, here and now (SPEC §3), for the start
//! page's offer and for every step of enrollment alike.

use std::net::IpAddr;

use twofactor_core::completion;
use twofactor_core::config::{EnrollmentProof, Method, Role};
use twofactor_core::csrf::{self, Use};
use twofactor_core::factors;
use twofactor_core::pages;
use twofactor_core::store::UserEntry;

use super::ctx::Ctx;
use crate::apache::log::{event, Level};
use crate::apache::Request;
use crate::outcome::Outcome;

/// Adding or replacing a factor needs a completion this recent, made with
/// a factor the user already holds.
const RECENT_COMPLETION_SECS: u64 = 900;

/// Enrollment is on, a factor that can be set up here (TOTP, passkeys) is
/// offered, and the end user's address (as mod_remoteip derived it) is
/// inside `TwoFactorEnrollmentFrom`.
pub fn allowed_here(ctx: &Ctx<'_>) -> bool {
    let s = &ctx.st.settings;
    s.enrollment
        && (s.methods.contains(&Method::Totp) || s.methods.contains(&Method::WebAuthn))
        && (s.enrollment_from.is_empty()
            || ctx.end_user.is_some_and(|ip: IpAddr| s.enrollment_from.iter().any(|net| net.contains(ip))))
}

pub fn needs_mail_proof(ctx: &Ctx<'_>) -> bool {
    ctx.st.settings.enrollment_proof == EnrollmentProof::Email
}

/// Whether this browser completed the challenge in the last minutes with a
/// factor the user already holds (the emailed passcode proves the mailbox only).
fn recent_factor_completion(req: &Request<'_>, ctx: &Ctx<'_>, entry: &UserEntry) -> bool {
    crate::enforce::presented(req, ctx.st).is_some_and(|p| {
        let values = entry.values(ctx.st.settings.attribute(Role::Completion));
        completion::find_valid(&ctx.signer(), values, &p, ctx.keys, ctx.now, RECENT_COMPLETION_SECS)
            .is_some_and(|c| factors::proves_a_held_factor(&c.method))
    })
}

/// Why this user may not add or replace a factor here and now, if not
/// (SPEC §3: a user who has a factor needs a recent completion with it;
/// otherwise only an administrator clears the way).
pub fn refusal(req: &Request<'_>, ctx: &Ctx<'_>, entry: &UserEntry) -> Option<(&'static str, &'static str)> {
    if !allowed_here(ctx) {
        return Some(("enrollment-not-allowed", "Setting up a second factor is not possible from here."));
    }
    if factors::holds_any(entry, &ctx.st.settings) && !recent_factor_completion(req, ctx, entry) {
        return Some((
            "enrollment-needs-recent-factor",
            "You already have a second factor. Sign in with it (your passkey, authenticator or a recovery code) \
             first, then set up a new one. If you lost it, ask your administrator to reset it.",
        ));
    }
    None
}

/// Everything that must hold before a factor is shown for setup or saved:
/// the user's entry, or the start page with the reason (as `Err`).
/// `proof`: the emailed passcode's token, when `TwoFactorEnrollmentProof email`.
pub fn permitted(req: &mut Request<'_>, ctx: &mut Ctx<'_>, proof: &str) -> Result<UserEntry, Outcome> {
    let entry = ctx.unlocked_entry(req)?;
    if let Some((reason, why)) = refusal(req, ctx, &entry) {
        event!(req, Level::Warn, "deny", "reason" = reason, "user" = ctx.user.as_str());
        return Err(super::steps::start(req, ctx, Some(why)));
    }
    if needs_mail_proof(ctx) && !csrf::verify(ctx.keys, Use::EnrollProof, proof, &ctx.user, &ctx.nonce, ctx.now) {
        event!(req, Level::Warn, "deny", "reason" = "enrollment-without-proof", "user" = ctx.user.as_str());
        return Err(super::steps::start(req, ctx, Some("First confirm a code sent to your mail address.")));
    }
    Ok(entry)
}

/// How the start page offers enrollment to this user, if at all.
pub fn offer(req: &Request<'_>, ctx: &Ctx<'_>, entry: &UserEntry, can_mail: bool) -> pages::EnrollOffer {
    match (refusal(req, ctx, entry), needs_mail_proof(ctx)) {
        (Some(_), _) => pages::EnrollOffer::None,
        (None, true) if can_mail => pages::EnrollOffer::ByMail,
        (None, true) => pages::EnrollOffer::None,
        (None, false) => pages::EnrollOffer::Link,
    }
}
