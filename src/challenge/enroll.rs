//! Self-enrollment of a TOTP secret: `GET /enroll` shows a new secret
//! (QR code and text), `POST /enroll` saves it after a first valid code.
//!
//! The secret is not stored until confirmed: it travels in the form,
//! sealed to this user and browser, and bound to the authenticator stored
//! when it was shown, so its first confirmation uses it up. With
//! `TwoFactorEnrollmentProof email` the page is reached only through an
//! emailed passcode (`email.rs`). A user who holds a factor already adds or
//! replaces one only after a recent completion made with it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use twofactor_core::config::{Method, Role};
use twofactor_core::factors::totp::{enrollment_changes, Enrollment, Replacing};
use twofactor_core::factors::{self, recovery};
use twofactor_core::notify::Notice;
use twofactor_core::secret::Secret;
use twofactor_core::store::{Directory, StoreError, UserEntry};
use twofactor_core::totp::{self, TotpParams, TotpRecord};

use super::ctx::Ctx;
use super::eligibility;
use crate::apache::log::{event, Level};
use crate::apache::{status, Request};
use crate::outcome::Outcome;
use twofactor_core::pages;

/// How long a shown secret may wait for its first code.
const PENDING_LIFETIME_SECS: u64 = 900;

/// A secret shown but not saved yet: it travels in the form, sealed to
/// this user and browser.
#[derive(Serialize, Deserialize)]
struct Pending {
    /// base32 secret
    s: String,
    a: String,
    d: u32,
    p: u32,
    e: u64,
    /// Keyed hash of the stored TOTP value when the secret was shown: the
    /// first confirmation changes it, so the pending secret is used up.
    t: String,
}

fn pending_context(ctx: &Ctx<'_>) -> Vec<u8> {
    format!("enroll-pending\n{}\n{}", ctx.user.to_ascii_lowercase(), ctx.nonce).into_bytes()
}

/// What the stored authenticator is now, as a keyed hash (`""` for none).
fn state_fingerprint(ctx: &Ctx<'_>, entry: &UserEntry) -> String {
    let current = entry.values(ctx.st.settings.attribute(Role::Totp)).first().map_or(&b""[..], |v| v.as_bytes());
    URL_SAFE_NO_PAD.encode(ctx.keys.hash("enroll-state", current))
}

pub fn page(req: &mut Request<'_>, ctx: &mut Ctx<'_>) -> Outcome {
    show(req, ctx, "")
}

/// A new secret, shown once with its QR code (or, where TOTP is not
/// offered, the passkey registration).
pub fn show(req: &mut Request<'_>, ctx: &mut Ctx<'_>, proof: &str) -> Outcome {
    if !ctx.offers(Method::Totp) {
        return super::webauthn::register_page(req, ctx, proof, None);
    }
    let entry = match eligibility::permitted(req, ctx, proof) {
        Ok(entry) => entry,
        Err(outcome) => return outcome,
    };
    let defaults = ctx.st.settings.totp_defaults;
    let params = match TotpParams::new(defaults.algorithm, defaults.digits, defaults.period) {
        Ok(p) => p,
        Err(_) => return Outcome::Status(status::INTERNAL_SERVER_ERROR),
    };
    let secret = match totp::generate_secret(params.algorithm) {
        Ok(s) => s,
        Err(_) => return Outcome::Status(status::INTERNAL_SERVER_ERROR),
    };
    let pending = Pending {
        s: totp::base32_encode(secret.expose()),
        a: params.algorithm.as_str().into(),
        d: params.digits,
        p: params.period,
        e: ctx.now + PENDING_LIFETIME_SECS,
        t: state_fingerprint(ctx, &entry),
    };
    let sealed = serde_json::to_vec(&pending).ok().and_then(|json| ctx.keys.seal(&pending_context(ctx), &json).ok());
    let Some(sealed) = sealed else { return Outcome::Status(status::INTERNAL_SERVER_ERROR) };
    render(ctx, proof, &secret, params, &URL_SAFE_NO_PAD.encode(sealed), None)
}

fn render(
    ctx: &Ctx<'_>,
    proof: &str,
    secret: &Secret,
    params: TotpParams,
    pending: &str,
    error: Option<&str>,
) -> Outcome {
    let s = &ctx.st.settings;
    let uri = totp::otpauth_uri(&s.totp_issuer, &ctx.user, secret.expose(), params);
    let Ok(svg) = totp::qr_svg(&uri, "QR code for your authenticator app") else {
        return Outcome::Status(status::INTERNAL_SERVER_ERROR);
    };
    let base32 = totp::base32_encode(secret.expose());
    let view = pages::Enrollment {
        qr_svg: &svg,
        secret_base32: &base32,
        issuer: &s.totp_issuer,
        account: &ctx.user,
        algorithm: params.algorithm.as_str(),
        digits: params.digits,
        period: params.period,
        pending,
        proof,
        registration_message: s.registration_message.as_deref(),
        passkey: ctx.offers(Method::WebAuthn),
    };
    Outcome::Page(status::OK, pages::enroll(&ctx.form_base(), &view, error))
}

/// The pending secret of the form, if it is this user's and browser's,
/// fresh, and not used up (the stored authenticator is still the one it
/// was shown against).
fn open_pending(ctx: &Ctx<'_>, entry: &UserEntry) -> Option<(Secret, TotpParams, String)> {
    let raw = ctx.field("pending")?;
    let sealed = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let (json, _) = ctx.keys.open(&pending_context(ctx), &sealed)?;
    let pending: Pending = serde_json::from_slice(json.expose()).ok()?;
    if pending.e < ctx.now || pending.t != state_fingerprint(ctx, entry) {
        return None;
    }
    let algorithm = twofactor_core::config::Algorithm::parse(&pending.a)?;
    let params = TotpParams::new(algorithm, pending.d, pending.p).ok()?;
    let secret = Secret::new(totp::base32_decode(&pending.s)?);
    Some((secret, params, raw.to_string()))
}

pub fn submit(req: &mut Request<'_>, ctx: &mut Ctx<'_>) -> Outcome {
    if !ctx.offers(Method::Totp) {
        super::ctx::not_offered(req, ctx, Method::Totp);
        return super::steps::start(req, ctx, Some("Authenticator apps are not accepted here."));
    }
    let proof = ctx.field("proof").unwrap_or("").to_string();
    let entry = match eligibility::permitted(req, ctx, &proof) {
        Ok(entry) => entry,
        Err(outcome) => return outcome,
    };
    let Some((secret, params, pending)) = open_pending(ctx, &entry) else {
        event!(req, Level::Info, "enroll-fail", "user" = ctx.user.as_str(), "reason" = "no-pending-secret");
        return super::steps::start(req, ctx, Some("That setup page expired or was used already. Please start again."));
    };
    let code = ctx.field("code").unwrap_or("").to_string();
    let s = &ctx.st.settings;
    let accepted = match totp::verify(secret.expose(), params, &code, ctx.now, s.totp_skew.as_secs(), None) {
        Ok(accepted) => accepted,
        Err(rejection) => {
            event!(req, Level::Info, "enroll-fail", "user" = ctx.user.as_str(), "reason" = rejection.as_str());
            let message = "That code does not match. Check the time on your device, then enter the current code.";
            return render(ctx, &proof, &secret, params, &pending, Some(message));
        }
    };
    let Ok(sealed) = ctx.keys.seal(&totp::seal_context(&entry.username), secret.expose()) else {
        return Outcome::Status(status::INTERNAL_SERVER_ERROR);
    };
    let record = TotpRecord { sealed, params, serial: None };
    let codes = match (s.recovery_codes, s.methods.contains(&Method::Recovery)) {
        (Some(n), true) => match recovery::generate(n) {
            Ok(codes) => codes,
            Err(_) => return Outcome::Status(status::INTERNAL_SERVER_ERROR),
        },
        _ => Vec::new(),
    };
    let previous = entry.values(s.attribute(Role::Totp)).first().map(String::as_str);
    let signer = ctx.signer();
    let hashes = codes.iter().map(|c| recovery::stored_value(&signer, c)).collect();
    // Compare-and-swap on the stored authenticator: of two confirmations
    // (two browsers, or one form posted twice) exactly one lands.
    let enrollment = Enrollment {
        record: &record,
        replacing: Replacing::Exactly(previous),
        confirmed: Some(accepted),
        recovery: Some(hashes),
    };
    let stored =
        enrollment_changes(s, &entry, enrollment).and_then(|changes| ctx.directory.modify(&entry.dn, &changes));
    match stored {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return super::steps::start(req, ctx, Some("Your authenticator was changed meanwhile. Sign in with it."));
        }
        Err(e) => return super::ctx::directory_trouble(req, ctx, &e),
    }
    let notice = Notice::Enrolled { replaced: previous.is_some(), recovery_codes: codes.len() };
    super::notify::queue(req, ctx, &entry, notice);
    match super::steps::record_success(req, ctx, &entry.username, factors::ENROLLED, false) {
        Ok(target) => Outcome::Page(status::OK, pages::enrolled(&codes, &target)),
        Err(outcome) => outcome,
    }
}
