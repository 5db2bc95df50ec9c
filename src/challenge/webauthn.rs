//! Passkeys and security keys: `GET /webauthn` (the prompt), `POST
//! /webauthn/begin` (a ceremony's options, JSON, for the script),
//! `POST /webauthn` (the browser's answer to a sign-in), `GET|POST
//! /webauthn/register` (the page, and the answer to a registration), and
//! `GET /webauthn.js` (the script).
//!
//! A ceremony's state is stored in the directory, bound to this browser's
//! challenge nonce, and used up (its value deleted) before the answer is
//! checked; a sign-in's attempt is counted before that, like a code's.

use twofactor_core::config::{Method, Role};
use twofactor_core::factors::webauthn::{self as passkeys, Ceremony, Rejection, RelyingParty, StoredCredential, Used};
use twofactor_core::factors::{self, lockout, recovery};
use twofactor_core::notify::Notice;
use twofactor_core::store::{Change, Directory, StoreError, UserEntry};
use twofactor_core::text::log_field;
use twofactor_core::{form, pages, text};

use super::ctx::{directory_trouble, not_offered, Ctx};
use super::{eligibility, steps};
use crate::apache::log::{event, Level};
use crate::apache::{status, Request};
use crate::outcome::Outcome;

const SIGN_IN: &str = "sign-in";
const REGISTER: &str = "register";

/// The script of the passkey pages.
pub fn script() -> Outcome {
    Outcome::Document {
        status: status::OK,
        content_type: c"text/javascript; charset=utf-8",
        body: pages::WEBAUTHN_SCRIPT.to_string(),
    }
}

/// A JSON answer for the script: `{"message": ...}` on errors.
fn json(status: std::ffi::c_int, body: String) -> Outcome {
    Outcome::Document { status, content_type: c"application/json", body }
}

fn json_error(status: std::ffi::c_int, message: &str) -> Outcome {
    json(status, serde_json::json!({ "message": message }).to_string())
}

/// The relying party, if passkeys are offered and configured (start-up
/// refuses `webauthn` without an origin; fail closed anyway).
fn relying_party(req: &mut Request<'_>, ctx: &Ctx<'_>) -> Option<RelyingParty> {
    if !ctx.offers(Method::WebAuthn) {
        not_offered(req, ctx, Method::WebAuthn);
        return None;
    }
    let settings = ctx.st.settings.webauthn.as_ref()?;
    match passkeys::relying_party(settings) {
        Ok(rp) => Some(rp),
        Err(reason) => {
            event!(req, Level::Error, "config-error", "reason" = "webauthn-origin", "detail" = reason.as_str());
            None
        }
    }
}

const NOT_HERE: &str = "Passkeys and security keys are not accepted here.";

/// The passkey prompt of an enrolled user.
pub fn page(req: &mut Request<'_>, ctx: &mut Ctx<'_>, error: Option<&str>) -> Outcome {
    if !ctx.accepts(Method::WebAuthn) || ctx.st.settings.webauthn.is_none() {
        return steps::start(req, ctx, Some(NOT_HERE));
    }
    let entry = match ctx.unlocked_entry(req) {
        Ok(entry) => entry,
        Err(outcome) => return outcome,
    };
    if !factors::WEBAUTHN.enrolled(&entry, &ctx.st.settings) {
        return steps::start(req, ctx, Some("No passkey or security key is registered for your account."));
    }
    let mut options = steps::options(req, ctx, &entry);
    options.passkey = false;
    options.totp = ctx.accepts(Method::Totp) && factors::TOTP.enrolled(&entry, &ctx.st.settings);
    let mail = ctx.mail_address(&entry).map(steps::mask_mail);
    let body = pages::webauthn_sign_in(&ctx.form_base(), &ctx.user, error, &options, mail.as_deref());
    Outcome::ScriptedPage(status::OK, body)
}

/// `POST /webauthn/begin`: starts a sign-in or a registration for this
/// browser and answers the options for the browser's prompt.
pub fn begin(req: &mut Request<'_>, ctx: &mut Ctx<'_>) -> Outcome {
    let Some(rp) = relying_party(req, ctx) else { return json_error(status::FORBIDDEN, NOT_HERE) };
    let kind = ctx.field("ceremony").unwrap_or("").to_string();
    let started = match kind.as_str() {
        SIGN_IN => begin_sign_in(req, ctx, &rp),
        REGISTER => begin_registration(req, ctx, &rp),
        _ => {
            event!(req, Level::Warn, "deny", "reason" = "bad-form", "user" = ctx.user.as_str(), "detail" = "ceremony");
            return json_error(status::BAD_REQUEST, "Unknown request. Reload the page and try again.");
        }
    };
    let (entry, ceremony, options) = match started {
        Ok(started) => started,
        Err(outcome) => return outcome,
    };
    let changes = passkeys::start_changes(ctx.keys, &ctx.st.settings, &entry, &ctx.nonce, ceremony, ctx.now);
    match ctx.directory.modify(&entry.dn, &changes) {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            event!(req, Level::Warn, "deny", "reason" = "busy", "user" = ctx.user.as_str(), "method" = "webauthn");
            return json_error(status::SERVICE_UNAVAILABLE, "Several prompts started at once. Try again.");
        }
        Err(e) => {
            crate::enforce::log_directory_error(req, ctx.st, &e, Some(&ctx.user));
            return json_error(status::SERVICE_UNAVAILABLE, "The directory is not answering. Try again shortly.");
        }
    }
    event!(req, Level::Debug, "webauthn-begin", "user" = entry.username.as_str(), "ceremony" = kind.as_str());
    json(status::OK, options)
}

type Started = (UserEntry, Ceremony, String);

fn begin_sign_in(req: &mut Request<'_>, ctx: &mut Ctx<'_>, rp: &RelyingParty) -> Result<Started, Outcome> {
    let entry = ctx.entry(req).map_err(|_| json_error(status::SERVICE_UNAVAILABLE, "Try again shortly."))?;
    if ctx.locked_until(&entry).is_some() {
        return Err(json_error(
            status::FORBIDDEN,
            "Too many failed attempts: your account is locked. Reload the page.",
        ));
    }
    let credentials: Vec<StoredCredential> =
        passkeys::credentials(&entry, &ctx.st.settings).into_iter().map(|(_, c)| c).collect();
    if credentials.is_empty() {
        return Err(json_error(status::BAD_REQUEST, "No passkey or security key is registered for your account."));
    }
    let (options, state) = passkeys::start_sign_in(rp, &credentials).map_err(|_| internal(req))?;
    let options = serde_json::to_string(&options).map_err(|_| internal(req))?;
    Ok((entry, Ceremony::SignIn { state }, options))
}

fn begin_registration(req: &mut Request<'_>, ctx: &mut Ctx<'_>, rp: &RelyingParty) -> Result<Started, Outcome> {
    let proof = ctx.field("proof").unwrap_or("").to_string();
    let entry = eligibility::permitted(req, ctx, &proof)
        .map_err(|_| json_error(status::FORBIDDEN, "Registering a passkey is not possible now. Reload the page."))?;
    let existing: Vec<StoredCredential> =
        passkeys::credentials(&entry, &ctx.st.settings).into_iter().map(|(_, c)| c).collect();
    let fallback = format!("Passkey {}", existing.len() + 1);
    let name = passkeys::clean_name(ctx.field("name").unwrap_or(""), &fallback);
    let (options, state) =
        passkeys::start_registration(rp, ctx.keys, &entry.username, &existing).map_err(|_| internal(req))?;
    let options = serde_json::to_string(&options).map_err(|_| internal(req))?;
    Ok((entry, Ceremony::Register { name, state }, options))
}

fn internal(req: &mut Request<'_>) -> Outcome {
    event!(req, Level::Error, "internal-error", "reason" = "webauthn-options");
    json_error(status::INTERNAL_SERVER_ERROR, "Something went wrong. Try again.")
}

/// `POST /webauthn`: the browser's answer to a sign-in.
pub fn submit(req: &mut Request<'_>, ctx: &mut Ctx<'_>) -> Outcome {
    let Some(rp) = relying_party(req, ctx) else { return steps::start(req, ctx, Some(NOT_HERE)) };
    let answer = ctx.field("credential").unwrap_or("").to_string();
    if answer.is_empty() {
        return page(req, ctx, Some("Your browser sent no answer. Try again."));
    }
    let entry = match ctx.unlocked_entry(req) {
        Ok(entry) => entry,
        Err(outcome) => return outcome,
    };
    let s = &ctx.st.settings;
    let Some((value, Ceremony::SignIn { state })) =
        passkeys::pending_of(ctx.keys, s, &entry, &ctx.nonce, SIGN_IN, ctx.now)
    else {
        event!(req, Level::Info, "webauthn-fail", "user" = ctx.user.as_str(), "reason" = "no-pending-prompt");
        return page(req, ctx, Some("The prompt expired or was answered already. Try again."));
    };
    // Counted before it is checked, and the prompt used up before that:
    // of two answers to one prompt, one is checked.
    let count = match steps::reserve_attempt(req, ctx, &entry, &factors::WEBAUTHN) {
        Ok(count) => count,
        Err(outcome) => return outcome,
    };
    let reason = match passkeys::use_up(&ctx.directory, s, &entry.dn, &value) {
        Ok(true) => match passkeys::finish_sign_in(&rp, &answer, &state) {
            Ok(assertion) => match passkeys::record_use(&ctx.directory, s, &entry.username, &assertion, ctx.now) {
                Ok(Used::Recorded { name }) => {
                    event!(
                        req,
                        Level::Debug,
                        "webauthn-used",
                        "user" = entry.username.as_str(),
                        "name" = log_field(name.as_bytes(), 64)
                    );
                    return steps::finish(req, ctx, &entry.username, Method::WebAuthn.as_str(), true);
                }
                Ok(Used::Regressed) => Rejection::Clone,
                Ok(Used::Gone) => Rejection::Invalid("unknown-credential"),
                Err(e) => return directory_trouble(req, ctx, &e),
            },
            Err(rejection) => rejection,
        },
        Ok(false) => Rejection::Invalid("replayed"),
        Err(e) => return directory_trouble(req, ctx, &e),
    };
    if reason == Rejection::Clone {
        // The authenticator's counter went backwards: a copy of the key may be in use.
        event!(req, Level::Error, "webauthn-clone", "user" = entry.username.as_str(), "reason" = reason.reason());
    }
    match steps::wrong_code(req, ctx, &entry, &factors::WEBAUTHN, reason.reason(), count) {
        Ok(_) => {
            let left = lockout::attempts_left(count, ctx.st.settings.max_attempts);
            let message = match left {
                0 => "That passkey or security key was not accepted.".to_string(),
                n => format!(
                    "That passkey or security key was not accepted. {} left before the account locks.",
                    pages::plural(n.into(), "attempt")
                ),
            };
            page(req, ctx, Some(&message))
        }
        Err(outcome) => outcome,
    }
}

/// The registration page (`GET /webauthn/register`, or a `POST` carrying
/// only the mail proof, from the TOTP setup page).
pub fn register_page(req: &mut Request<'_>, ctx: &mut Ctx<'_>, proof: &str, error: Option<&str>) -> Outcome {
    if !ctx.offers(Method::WebAuthn) || ctx.st.settings.webauthn.is_none() {
        return steps::start(req, ctx, Some(NOT_HERE));
    }
    let entry = match eligibility::permitted(req, ctx, proof) {
        Ok(entry) => entry,
        Err(outcome) => return outcome,
    };
    let names: Vec<String> = passkeys::credentials(&entry, &ctx.st.settings).into_iter().map(|(_, c)| c.name).collect();
    let message = ctx.st.settings.registration_message.as_deref();
    Outcome::ScriptedPage(status::OK, pages::webauthn_register(&ctx.form_base(), proof, &names, error, message))
}

/// `POST /webauthn/register`: the browser's answer to a registration.
pub fn register(req: &mut Request<'_>, ctx: &mut Ctx<'_>) -> Outcome {
    let proof = ctx.field("proof").unwrap_or("").to_string();
    let answer = ctx.field("credential").unwrap_or("").to_string();
    if answer.is_empty() {
        return register_page(req, ctx, &proof, None);
    }
    let Some(rp) = relying_party(req, ctx) else { return steps::start(req, ctx, Some(NOT_HERE)) };
    // The enrollment rules, again: a page that offered the prompt is no rule.
    let entry = match eligibility::permitted(req, ctx, &proof) {
        Ok(entry) => entry,
        Err(outcome) => return outcome,
    };
    let s = &ctx.st.settings;
    let Some((value, Ceremony::Register { name, state })) =
        passkeys::pending_of(ctx.keys, s, &entry, &ctx.nonce, REGISTER, ctx.now)
    else {
        let message = "The prompt expired or was answered already. Try again.";
        return not_registered(req, ctx, &proof, Level::Info, "no-pending-prompt", message);
    };
    match passkeys::use_up(&ctx.directory, s, &entry.dn, &value) {
        Ok(true) => {}
        Ok(false) => {
            let message = "This registration was answered already.";
            return not_registered(req, ctx, &proof, Level::Warn, "replayed", message);
        }
        Err(e) => return directory_trouble(req, ctx, &e),
    }
    let credential = match passkeys::finish_registration(&rp, &answer, &state) {
        Ok(credential) => credential,
        Err(rejection) => {
            let message = "Your passkey or security key could not be registered. Try again.";
            return not_registered(req, ctx, &proof, Level::Warn, rejection.reason(), message);
        }
    };
    if passkeys::credentials(&entry, s).iter().any(|(_, c)| c.credential.cred_id == credential.cred_id) {
        let message = "This passkey or security key is registered already.";
        return not_registered(req, ctx, &proof, Level::Info, "duplicate", message);
    }
    let stored = StoredCredential { name, created: ctx.now, last_used: None, credential };
    let codes = new_recovery_codes(ctx, &entry);
    let Ok(codes) = codes else { return Outcome::Status(status::INTERNAL_SERVER_ERROR) };
    let signer = ctx.signer();
    let mut changes = vec![passkeys::add_change(s, &signer, &stored)];
    if !codes.is_empty() {
        let hashes = codes.iter().map(|c| recovery::stored_value(&signer, c)).collect();
        changes.push(Change::Replace(s.attribute(Role::Recovery).into(), hashes));
    }
    if let Err(e) = ctx.directory.modify(&entry.dn, &changes) {
        return directory_trouble(req, ctx, &e);
    }
    super::notify::queue(req, ctx, &entry, Notice::PasskeyAdded { recovery_codes: codes.len() });
    crate::metrics::count(|m| m.enrollment("webauthn"));
    event!(
        req,
        Level::Info,
        "enrolled",
        "user" = entry.username.as_str(),
        "method" = "webauthn",
        "name" = text::log_field(stored.name.as_bytes(), 64),
        "recovery_codes" = codes.len()
    );
    // On to the prompt: the new key signs in (registering it proves nothing yet).
    let continue_to = format!("{}/webauthn?r={}", s.challenge_url, form::encode(&ctx.return_token));
    Outcome::Page(status::OK, pages::passkey_added(&stored.name, &codes, &continue_to))
}

/// A registration answer that is not saved: one log line, and the page again saying why.
fn not_registered(
    req: &mut Request<'_>,
    ctx: &mut Ctx<'_>,
    proof: &str,
    level: Level,
    reason: &str,
    message: &str,
) -> Outcome {
    event!(req, level, "enroll-fail", "user" = ctx.user.as_str(), "method" = "webauthn", "reason" = reason);
    register_page(req, ctx, proof, Some(message))
}

/// Recovery codes for a user who registers a first factor and has none
/// (a lost only passkey must not lock the user out for good).
fn new_recovery_codes(ctx: &Ctx<'_>, entry: &UserEntry) -> Result<Vec<String>, String> {
    let s = &ctx.st.settings;
    match (s.recovery_codes, ctx.offers(Method::Recovery)) {
        (Some(n), true) if entry.values(s.attribute(Role::Recovery)).is_empty() && !factors::holds_any(entry, s) => {
            recovery::generate(n)
        }
        _ => Ok(Vec::new()),
    }
}
