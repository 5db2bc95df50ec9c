//! What every step of the challenge shares: the request's context (the
//! user, this browser's nonce, the form, the directory view) and the two
//! answers any step may give (the locked page, directory trouble).

use std::net::IpAddr;

use twofactor_core::anchor::Anchor;
use twofactor_core::clock::now;
use twofactor_core::config::{Method, MethodSet, Role};
use twofactor_core::csrf::{self, Use};
use twofactor_core::keys::Keys;
use twofactor_core::store::codec::{self as store_codec, LOCKED_UNTIL_UNLOCKED};
use twofactor_core::store::signed::Signer;
use twofactor_core::store::{Directory, LdapDirectory, Lookup, Seeded, StoreError, UserEntry};
use twofactor_core::{admin, completion, factors, form, pages, random, token};

use crate::apache::log::{event, Level};
use crate::apache::{status, Request, Table};
use crate::enforce;
use crate::outcome::Outcome;
use crate::state::ServerState;

/// Largest form body accepted.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Life of a CSRF token (and so of a challenge page left open).
const FORM_LIFETIME_SECS: u64 = 3600;

/// What every step of the challenge needs.
pub(crate) struct Ctx<'a> {
    pub st: &'a ServerState,
    pub keys: &'a Keys,
    /// The directory through this request's view of the user's entry.
    pub directory: Seeded<'a>,
    /// The validated name from the gateway.
    pub user: String,
    /// This browser's challenge nonce (cookie `<TwoFactorCookieName>-nonce`).
    pub nonce: String,
    /// The raw return token (`r`), from the query or the form.
    pub return_token: String,
    /// The decoded form of a POST.
    pub fields: Vec<(String, String)>,
    pub now: u64,
    /// The end user's address as mod_remoteip derived it (`None`: unknown).
    pub end_user: Option<IpAddr>,
    /// The methods the return token's target requires (empty: any).
    pub required: MethodSet,
    csrf: String,
}

impl<'a> Ctx<'a> {
    pub fn new(
        req: &mut Request<'_>,
        st: &'a ServerState,
        keys: &'a Keys,
        directory: &'a LdapDirectory,
        user: String,
        post: bool,
    ) -> Result<Ctx<'a>, Outcome> {
        let now = now();
        let nonce_cookie = format!("{}-nonce", st.settings.cookie_name);
        let existing = req
            .values(Table::In, "Cookie")
            .find_map(|v| completion::find_cookie(v, &nonce_cookie))
            .filter(|v| completion::is_plausible_cookie(v))
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_string);
        let mut fields = Vec::new();
        let return_token;
        let nonce = if post {
            let body = req.read_body(MAX_FORM_BYTES).map_err(Outcome::Status)?;
            fields = match form::parse(&body) {
                Some(fields) => fields,
                None => {
                    event!(req, Level::Warn, "deny", "reason" = "bad-form", "user" = user.as_str());
                    return Err(Outcome::Status(status::BAD_REQUEST));
                }
            };
            return_token = form::single(&fields, "r").unwrap_or("").to_string();
            let token = form::single(&fields, "csrf").unwrap_or("");
            let nonce = existing.unwrap_or_default();
            if !csrf::verify(keys, Use::Form, token, &user, &nonce, now) {
                event!(req, Level::Warn, "deny", "reason" = "csrf", "user" = user.as_str());
                return Err(Outcome::Page(
                    status::FORBIDDEN,
                    pages::message(
                        "Please start again",
                        "This form expired or did not come from this browser's sign-in page.",
                        Some((&st.settings.challenge_url, "Start again")),
                    ),
                ));
            }
            nonce
        } else {
            return_token = req
                .args()
                .and_then(|args| args.split('&').find_map(|pair| pair.strip_prefix("r=")))
                .unwrap_or("")
                .to_string();
            match existing {
                Some(nonce) => nonce,
                None => {
                    let nonce = random::token(32).map_err(|_| Outcome::Status(status::INTERNAL_SERVER_ERROR))?;
                    let cookie = format!(
                        "{nonce_cookie}={nonce}; Path={}; HttpOnly; Secure; SameSite=Lax",
                        st.settings.challenge_url
                    );
                    req.add(Table::ErrOut, c"Set-Cookie", &cookie);
                    nonce
                }
            }
        };
        let csrf = csrf::issue(keys, Use::Form, &user, &nonce, now + FORM_LIFETIME_SECS);
        let end_user = end_user_address(req);
        let directory = Seeded::new(directory);
        let required = token::required_methods(keys, &return_token, &user, now);
        Ok(Ctx { st, keys, directory, user, nonce, return_token, fields, now, end_user, required, csrf })
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        form::single(&self.fields, name)
    }

    pub fn form_base(&self) -> pages::FormBase<'_> {
        pages::FormBase { base: &self.st.settings.challenge_url, csrf: &self.csrf, return_token: &self.return_token }
    }

    pub fn offers(&self, method: Method) -> bool {
        self.st.settings.methods.contains(&method)
    }

    /// Offered, and accepted by the page the user came from
    /// (`TwoFactorRequireMethod` there, carried in the return token).
    pub fn accepts(&self, method: Method) -> bool {
        self.offers(method) && (self.required.is_empty() || self.required.contains(method))
    }

    /// The user's entry with every state attribute and the mail attribute.
    pub fn entry(&self, req: &mut Request<'_>) -> Result<UserEntry, Outcome> {
        let s = &self.st.settings;
        let mut attrs: Vec<&str> = Role::ALL.iter().map(|r| s.attribute(*r)).collect();
        attrs.push(&s.mail_attribute);
        attrs.push("objectClass");
        let found = self.directory.find_user(&self.user, &attrs);
        if found.is_ok() {
            enforce::note_directory_answered(req, self.st);
        }
        match found {
            Ok(Lookup::Found(entry)) => Ok(entry),
            Ok(Lookup::NotFound | Lookup::Ambiguous) => {
                event!(req, Level::Warn, "deny", "reason" = "unknown-user", "user" = self.user.as_str());
                Err(Outcome::Page(
                    status::FORBIDDEN,
                    pages::message(
                        "Account not set up",
                        "Your account is not set up for the second sign-in step. Please contact your administrator.",
                        None,
                    ),
                ))
            }
            Err(e) => Err(directory_trouble(req, self, &e)),
        }
    }

    /// The entry, or the locked page (as `Err`) if the account is locked.
    pub fn unlocked_entry(&self, req: &mut Request<'_>) -> Result<UserEntry, Outcome> {
        let entry = self.entry(req)?;
        match self.locked_until(&entry) {
            Some(until) => Err(locked_page(until)),
            None => Ok(entry),
        }
    }

    pub fn mail_address<'e>(&self, entry: &'e UserEntry) -> Option<&'e str> {
        factors::email::address(entry, &self.st.settings)
    }

    pub fn locked_until(&self, entry: &UserEntry) -> Option<u64> {
        store_codec::locked_until(&self.signer(), entry.values(self.st.settings.attribute(Role::Failures)), self.now)
    }

    /// Signs and opens the user's stored values (the directory's name for
    /// the user equals `user` but for ASCII case, which the MAC ignores).
    pub fn signer(&self) -> Signer<'a> {
        Signer::new(self.keys, &self.user, self.st.settings.accept_unsigned_state)
    }

    /// What this server remembers of the user's counters.
    pub fn anchor(&self) -> &'static dyn Anchor {
        crate::anchor::table()
    }
}

/// The end user's address as mod_remoteip derived it from the gateway's
/// forwarded header; `None` when it derived nothing (the address Apache
/// knows is the gateway's own). A raw `X-Forwarded-For` is never read: a
/// gateway that does not append to it lets the client write it.
fn end_user_address(req: &Request<'_>) -> Option<IpAddr> {
    let apache = req.client_ip().parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    apache.filter(|ip| Some(*ip) != req.peer_ip())
}

/// A form of a factor `TwoFactorMethods` does not offer: one log line
/// (the caller answers).
pub(crate) fn not_offered(req: &mut Request<'_>, ctx: &Ctx<'_>, method: Method) {
    let (user, method) = (ctx.user.as_str(), method.as_str());
    event!(req, Level::Warn, "deny", "reason" = "method-not-offered", "user" = user, "method" = method);
}

pub(crate) fn locked_page(until: u64) -> Outcome {
    let when = (until != LOCKED_UNTIL_UNLOCKED).then(|| admin::iso8601(until).replace('T', " ").replace('Z', ""));
    let minutes = until.saturating_sub(now()).div_ceil(60);
    Outcome::Page(status::FORBIDDEN, pages::locked(when.as_deref().map(|w| (w, minutes))))
}

/// The directory failed: one log line (summarised) and the page of the
/// access check's refusal for the same cause.
pub(crate) fn directory_trouble(req: &mut Request<'_>, ctx: &Ctx<'_>, e: &StoreError) -> Outcome {
    enforce::log_directory_error(req, ctx.st, e, Some(&ctx.user));
    req.set(Table::ErrOut, c"Retry-After", "30");
    Outcome::Page(status::SERVICE_UNAVAILABLE, pages::directory_down())
}
