//! Security notices (`TwoFactorNotify`): queued on the request by the
//! challenge, mailed from the log-transaction hook, after the response went
//! out, so that a slow or broken mail relay never holds up the user. A
//! failure is logged; the user's flow has long finished.

use std::ffi::CStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use twofactor_core::mail::{Mailer, SmtpMailer};
use twofactor_core::notify::{self, Notice, Origin};
use twofactor_core::store::UserEntry;

use super::ctx::Ctx;
use crate::apache::log::{event, Level};
use crate::apache::{Request, Table};
use crate::enforce;
use crate::outcome::Outcome;

/// The request note that carries a queued notice (one value per notice);
/// the request is marked too, so that requests without one cost nothing.
const NOTE: &CStr = c"twofactor-notice";
/// Limit of one SMTP conversation for a notice.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize)]
struct Queued {
    kind: String,
    user: String,
    to: String,
    subject: String,
    body: String,
}

/// Queues a notice to the owner of `entry`, if notices are on and the
/// directory knows a mail address.
pub(crate) fn queue(req: &mut Request<'_>, ctx: &Ctx<'_>, entry: &UserEntry, notice: Notice) {
    let s = &ctx.st.settings;
    if !s.notify {
        return;
    }
    let Some(to) = ctx.mail_address(entry) else {
        event!(
            req,
            Level::Info,
            "notice-skipped",
            "kind" = notice.kind(),
            "user" = entry.username.as_str(),
            "reason" = "no-mail-address"
        );
        return;
    };
    let (subject, body) =
        notify::message(&s.totp_issuer, &entry.username, notice, ctx.now, Origin::Browser(ctx.end_user));
    let queued = Queued { kind: notice.kind().into(), user: entry.username.clone(), to: to.into(), subject, body };
    if let Ok(json) = serde_json::to_string(&queued) {
        req.add(Table::Notes, NOTE, &json);
        req.mark();
    }
}

/// The log-transaction hook: mails what the request queued.
pub fn deliver(req: &mut Request<'_>) -> Outcome {
    if !req.marked_along_redirects() {
        return Outcome::Declined;
    }
    let queued: Vec<Queued> = req
        .marked_notes(NOTE.to_str().unwrap_or_default())
        .into_iter()
        .filter_map(|v| serde_json::from_slice(v).ok())
        .collect();
    if queued.is_empty() {
        return Outcome::Declined;
    }
    let Ok(Some(st)) = enforce::state(req) else { return Outcome::Declined };
    let Some(smtp) = &st.settings.smtp else { return Outcome::Declined };
    let mailer = SmtpMailer::new(smtp, SMTP_TIMEOUT);
    for notice in queued {
        let sent = mailer.send(&notice.to, &notice.subject, &notice.body);
        crate::metrics::count(|m| m.mail("notice", sent.is_ok()));
        match sent {
            Ok(()) => {
                event!(req, Level::Info, "notified", "kind" = notice.kind.as_str(), "user" = notice.user.as_str())
            }
            Err(e) => event!(
                req,
                Level::Error,
                "smtp-error",
                "purpose" = "notice",
                "kind" = notice.kind.as_str(),
                "user" = notice.user.as_str(),
                "detail" = twofactor_core::text::log_field(e.as_bytes(), 300)
            ),
        }
    }
    Outcome::Declined
}
