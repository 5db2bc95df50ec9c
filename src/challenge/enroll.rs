//! Self-enrollment of a TOTP secret: `GET /enroll` shows a new secret
//! (QR code and text), `POST /enroll` saves it after a first valid code.
//!
//! The secret is not stored until confirmed: it travels in the form,
//! sealed to this user and browser. With `TwoFactorEnrollmentProof email`
//! the page is reached only through an emailed passcode (`email.rs`).

use std::ffi::c_int;
use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use twofactor_core::completion;
use twofactor_core::config::{EnrollmentProof, Method, Role};
use twofactor_core::csrf::{self, Use};
use twofactor_core::factors::recovery;
use twofactor_core::secret::Secret;
use twofactor_core::store::{Change, Directory, StoreError, UserEntry};
use twofactor_core::totp::{self, LastStep, TotpParams, TotpRecord};

use super::{pages, send_page, Ctx};
use crate::apache::log::{event, Level};
use crate::apache::{status, Request};

/// Re-enrolling without mail proof needs a completion this recent.
const RECENT_COMPLETION_SECS: u64 = 900;
/// How long a shown secret may wait for its first code.
const PENDING_LIFETIME_SECS: u64 = 900;

#[derive(Serialize, Deserialize)]
struct Pending {
    /// base32 secret
    s: String,
    a: String,
    d: u32,
    p: u32,
    e: u64,
}

fn pending_context(ctx: &Ctx<'_>) -> Vec<u8> {
    format!("enroll-pending\n{}\n{}", ctx.user.to_ascii_lowercase(), ctx.nonce).into_bytes()
}

/// Enrollment is on, TOTP is offered, and the end user's address (as the
/// trusted gateway forwarded it) is inside `TwoFactorEnrollmentFrom`.
pub fn allowed_here(ctx: &Ctx<'_>) -> bool {
    let s = &ctx.st.settings;
    s.enrollment
        && s.methods.contains(&Method::Totp)
        && (s.enrollment_from.is_empty()
            || ctx.end_user.is_some_and(|ip: IpAddr| s.enrollment_from.iter().any(|net| net.contains(ip))))
}

pub fn needs_mail_proof(ctx: &Ctx<'_>) -> bool {
    ctx.st.settings.enrollment_proof == EnrollmentProof::Email
}

/// Whether this browser holds a valid completion (re-enrollment without
/// mail proof needs one: the old factor was shown in this session).
fn has_completion(req: &Request<'_>, ctx: &Ctx<'_>, entry: &UserEntry) -> bool {
    crate::enforce::presented(req, ctx.st).is_some_and(|p| {
        let values = entry.values(ctx.st.settings.attribute(Role::Completion));
        completion::find_valid(values, &p, ctx.keys, ctx.now, RECENT_COMPLETION_SECS).is_some()
    })
}

/// Checks everything that must hold before a secret is shown or saved.
/// `Err` is the response already decided.
fn permitted(req: &mut Request<'_>, ctx: &mut Ctx<'_>, proof: &str) -> Result<UserEntry, c_int> {
    let entry = ctx.unlocked_entry(req)?;
    if !allowed_here(ctx) {
        event!(req, Level::Warn, "deny", "reason" = "enrollment-not-allowed", "user" = ctx.user.as_str());
        return Err(super::start(req, ctx, Some("Setting up a second factor is not possible from here.")));
    }
    let enrolled = !entry.values(ctx.st.settings.attribute(Role::Totp)).is_empty();
    let proven = if needs_mail_proof(ctx) {
        csrf::verify(ctx.keys, Use::EnrollProof, proof, &ctx.user, &ctx.nonce, ctx.now)
    } else {
        !enrolled || has_completion(req, ctx, &entry)
    };
    if !proven {
        event!(req, Level::Warn, "deny", "reason" = "enrollment-without-proof", "user" = ctx.user.as_str());
        let why = if needs_mail_proof(ctx) {
            "First confirm a code sent to your mail address."
        } else {
            "An authenticator is already set up: sign in with it (or ask your administrator to reset it) first."
        };
        return Err(super::start(req, ctx, Some(why)));
    }
    Ok(entry)
}

pub fn page(req: &mut Request<'_>, ctx: &mut Ctx<'_>) -> c_int {
    show(req, ctx, "")
}

/// A new secret, shown once with its QR code.
pub fn show(req: &mut Request<'_>, ctx: &mut Ctx<'_>, proof: &str) -> c_int {
    if let Err(status) = permitted(req, ctx, proof) {
        return status;
    }
    let defaults = ctx.st.settings.totp_defaults;
    let params = match TotpParams::new(defaults.algorithm, defaults.digits, defaults.period) {
        Ok(p) => p,
        Err(_) => return status::INTERNAL_SERVER_ERROR,
    };
    let secret = match totp::generate_secret(params.algorithm) {
        Ok(s) => s,
        Err(_) => return status::INTERNAL_SERVER_ERROR,
    };
    let pending = Pending {
        s: totp::base32_encode(secret.expose()),
        a: params.algorithm.as_str().into(),
        d: params.digits,
        p: params.period,
        e: ctx.now + PENDING_LIFETIME_SECS,
    };
    let sealed = serde_json::to_vec(&pending).ok().and_then(|json| ctx.keys.seal(&pending_context(ctx), &json).ok());
    let Some(sealed) = sealed else { return status::INTERNAL_SERVER_ERROR };
    render(req, ctx, proof, &secret, params, &URL_SAFE_NO_PAD.encode(sealed), None)
}

fn render(
    req: &mut Request<'_>,
    ctx: &Ctx<'_>,
    proof: &str,
    secret: &Secret,
    params: TotpParams,
    pending: &str,
    error: Option<&str>,
) -> c_int {
    let s = &ctx.st.settings;
    let uri = totp::otpauth_uri(&s.totp_issuer, &ctx.user, secret.expose(), params);
    let Ok(svg) = totp::qr_svg(&uri, "QR code for your authenticator app") else {
        return status::INTERNAL_SERVER_ERROR;
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
    };
    send_page(req, status::OK, &pages::enroll(&ctx.form_base(), &view, error))
}

/// The pending secret of the form, if it is this user's and browser's and fresh.
fn open_pending(ctx: &Ctx<'_>) -> Option<(Secret, TotpParams, String)> {
    let raw = ctx.field("pending")?;
    let sealed = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let (json, _) = ctx.keys.open(&pending_context(ctx), &sealed)?;
    let pending: Pending = serde_json::from_slice(json.expose()).ok()?;
    if pending.e < ctx.now {
        return None;
    }
    let algorithm = twofactor_core::config::Algorithm::parse(&pending.a)?;
    let params = TotpParams::new(algorithm, pending.d, pending.p).ok()?;
    let secret = Secret::new(totp::base32_decode(&pending.s)?);
    Some((secret, params, raw.to_string()))
}

pub fn submit(req: &mut Request<'_>, ctx: &mut Ctx<'_>) -> c_int {
    let proof = ctx.field("proof").unwrap_or("").to_string();
    let entry = match permitted(req, ctx, &proof) {
        Ok(entry) => entry,
        Err(status) => return status,
    };
    let Some((secret, params, pending)) = open_pending(ctx) else {
        return super::start(req, ctx, Some("That setup page expired. Please start again."));
    };
    let code = ctx.field("code").unwrap_or("").to_string();
    let s = &ctx.st.settings;
    let accepted = match totp::verify(secret.expose(), params, &code, ctx.now, s.totp_skew.as_secs(), None) {
        Ok(accepted) => accepted,
        Err(rejection) => {
            event!(req, Level::Info, "enroll-fail", "user" = ctx.user.as_str(), "reason" = rejection.as_str());
            let message = "That code does not match. Check the time on your device, then enter the current code.";
            return render(req, ctx, &proof, &secret, params, &pending, Some(message));
        }
    };
    let Ok(sealed) = ctx.keys.seal(&totp::seal_context(&entry.username), secret.expose()) else {
        return status::INTERNAL_SERVER_ERROR;
    };
    let record = TotpRecord { sealed, params, serial: None };
    let codes = match (s.recovery_codes, s.methods.contains(&Method::Recovery)) {
        (Some(n), true) => match recovery::generate(n) {
            Ok(codes) => codes,
            Err(_) => return status::INTERNAL_SERVER_ERROR,
        },
        _ => Vec::new(),
    };
    let totp_attr = s.attribute(Role::Totp);
    let enrolled = !entry.values(totp_attr).is_empty();
    let mut changes = Vec::with_capacity(4);
    let own_schema = totp_attr == Role::Totp.default_attribute();
    if own_schema && !entry.has_object_class(completion::OBJECT_CLASS) {
        changes.push(Change::Add("objectClass".into(), vec![completion::OBJECT_CLASS.into()]));
    }
    // A first enrollment adds: if another browser enrolled meanwhile, this
    // one fails instead of overwriting it.
    changes.push(if enrolled {
        Change::Replace(totp_attr.into(), vec![record.encode()])
    } else {
        Change::Add(totp_attr.into(), vec![record.encode()])
    });
    changes.push(Change::Replace(s.attribute(Role::TotpLast).into(), vec![LastStep::from(accepted).encode()]));
    let hashes = codes.iter().map(|c| recovery::stored_value(ctx.keys, &entry.username, c)).collect();
    changes.push(Change::Replace(s.attribute(Role::Recovery).into(), hashes));
    match ctx.directory.modify(&entry.dn, &changes) {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return super::start(req, ctx, Some("An authenticator was set up meanwhile. Sign in with it."));
        }
        Err(e) => return super::directory_trouble(req, ctx, &e),
    }
    match super::record_success(req, ctx, &entry.username, "enrolled") {
        Ok(target) => send_page(req, status::OK, &pages::enrolled(&codes, &target)),
        Err(status) => status,
    }
}
