//! Recovery codes: `GET /recovery` and `POST /recovery`.

use twofactor_core::config::{Method, Role};
use twofactor_core::factors::{self, recovery};
use twofactor_core::notify::Notice;
use twofactor_core::store::{Change, Directory, StoreError};

use super::ctx::Ctx;
use crate::apache::{status, Request};
use crate::outcome::Outcome;
use twofactor_core::pages;

pub fn page(req: &mut Request<'_>, ctx: &mut Ctx<'_>, error: Option<&str>) -> Outcome {
    if !ctx.offers(Method::Recovery) {
        return super::steps::start(req, ctx, Some("Recovery codes are not accepted here."));
    }
    Outcome::Page(status::OK, pages::recovery(&ctx.form_base(), error))
}

pub fn submit(req: &mut Request<'_>, ctx: &mut Ctx<'_>) -> Outcome {
    if !ctx.offers(Method::Recovery) {
        return super::steps::start(req, ctx, Some("Recovery codes are not accepted here."));
    }
    let code = ctx.field("code").unwrap_or("").to_string();
    let entry = match ctx.unlocked_entry(req) {
        Ok(entry) => entry,
        Err(outcome) => return outcome,
    };
    let count = match super::steps::reserve_attempt(req, ctx, &entry, &factors::RECOVERY) {
        Ok(count) => count,
        Err(outcome) => return outcome,
    };
    let attr = ctx.st.settings.attribute(Role::Recovery);
    let values = entry.values(attr);
    if let Some(value) = recovery::matching(&ctx.signer(), values, &code) {
        // Using a code is deleting its value: of two uses, one wins.
        match ctx.directory.modify(&entry.dn, &[Change::Delete(attr.into(), vec![value.clone()])]) {
            Ok(()) => {
                let left = values.len().saturating_sub(1);
                super::notify::queue(req, ctx, &entry, Notice::RecoveryCodeUsed { left });
                return super::steps::finish(req, ctx, &entry.username, "recovery", true);
            }
            Err(StoreError::Conflict) => {}
            Err(e) => return super::ctx::directory_trouble(req, ctx, &e),
        }
    }
    match super::steps::wrong_code(req, ctx, &entry, &factors::RECOVERY, "wrong", count) {
        Ok(message) => page(req, ctx, Some(&message)),
        Err(outcome) => outcome,
    }
}
