//! Passkeys and security keys (WebAuthn): the relying party, the stored
//! credentials (`twoFactorWebAuthn`, one value each) and the ceremonies in
//! progress (`twoFactorWebAuthnPending`, one value each, bound to the
//! browser's challenge nonce and used up by deleting that exact value).
//!
//! The signatures, origins, RP id hashes, flags and counters are checked
//! by `webauthn-rs-core`; what is ours is where the state lives, that it
//! is single use, and what a counter that goes backwards means.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AuthenticationState, CreationChallengeResponse, Credential, PublicKeyCredential, RegisterPublicKeyCredential,
    RegistrationState, RequestChallengeResponse, UserVerificationPolicy,
};
pub use webauthn_rs_core::WebauthnCore as RelyingParty;

use crate::completion::no_key;
use crate::config::{Role, Settings, WebAuthnSettings};
use crate::keys::Keys;
use crate::secret::constant_time_eq;
use crate::store::schema::class_for;
use crate::store::signed::Signer;
use crate::store::{Change, Directory, Lookup, StoreError, UserEntry};

/// How long the browser may take for the prompt (and the pending state lives).
pub const CEREMONY_SECS: u64 = 300;
/// Ceremonies a user may have in progress at once (several browsers or tabs);
/// the oldest goes first.
const MAX_PENDING: usize = 8;
/// Longest credential name kept.
pub const MAX_NAME_CHARS: usize = 40;
/// Attempts of a counter update that met a concurrent one.
const UPDATE_ATTEMPTS: usize = 8;

/// The relying party of `settings`' origin.
pub fn relying_party(settings: &WebAuthnSettings) -> Result<RelyingParty, String> {
    let origin = url::Url::parse(&settings.origin).map_err(|e| format!("origin: {e}"))?;
    Ok(RelyingParty::new_unsafe_experts_only(
        &settings.rp_id,
        &settings.rp_id,
        vec![origin],
        std::time::Duration::from_secs(CEREMONY_SECS),
        Some(false),
        Some(false),
    ))
}

/// One registered passkey or security key.
#[derive(Clone)]
pub struct StoredCredential {
    pub name: String,
    /// Unix seconds.
    pub created: u64,
    pub last_used: Option<u64>,
    pub credential: Credential,
}

#[derive(Serialize, Deserialize)]
struct StoredV1 {
    v: u8,
    n: String,
    c: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<u64>,
    k: Credential,
}

impl StoredCredential {
    /// The credential id as `twofactorctl` and the pages show it (base64url).
    pub fn id(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.credential.cred_id.as_ref())
    }

    pub fn counter(&self) -> u32 {
        self.credential.counter
    }

    pub fn seal(&self, signer: &Signer<'_>) -> String {
        let value =
            StoredV1 { v: 1, n: self.name.clone(), c: self.created, u: self.last_used, k: self.credential.clone() };
        signer.sign(Role::WebAuthn, &serde_json::to_string(&value).unwrap_or_default())
    }

    pub fn open(signer: &Signer<'_>, stored: &str) -> Option<StoredCredential> {
        signer.decode(Role::WebAuthn, stored, StoredCredential::decode)
    }

    fn decode(text: &str) -> Option<StoredCredential> {
        let v: StoredV1 = serde_json::from_str(text).ok().filter(|v: &StoredV1| v.v == 1)?;
        Some(StoredCredential { name: v.n, created: v.c, last_used: v.u, credential: v.k })
    }
}

impl std::fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredential").field("id", &self.id()).field("name", &self.name).finish_non_exhaustive()
    }
}

/// A user's credentials, with the stored value each came from (values
/// that do not pass their check are no credential: a key someone wrote
/// into the entry is never offered nor accepted).
pub fn credentials<'a>(entry: &'a UserEntry, settings: &Settings) -> Vec<(&'a String, StoredCredential)> {
    let Some(signer) = settings.signer(&entry.username) else { return Vec::new() };
    entry
        .values(settings.attribute(Role::WebAuthn))
        .iter()
        .filter_map(|v| Some((v, StoredCredential::open(&signer, v)?)))
        .collect()
}

/// A name for a new credential: trimmed, control characters dropped,
/// shortened; `fallback` when nothing is left.
pub fn clean_name(name: &str, fallback: &str) -> String {
    let cleaned: String = name.chars().filter(|c| !c.is_control()).take(MAX_NAME_CHARS).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        fallback.to_string()
    } else {
        cleaned.to_string()
    }
}

/// What a ceremony in progress is.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum Ceremony {
    #[serde(rename = "register")]
    Register { name: String, state: RegistrationState },
    #[serde(rename = "sign-in")]
    SignIn { state: AuthenticationState },
}

/// The kind only: the state holds the challenge and the user's keys.
impl std::fmt::Debug for Ceremony {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ceremony({})", self.kind())
    }
}

impl Ceremony {
    pub fn kind(&self) -> &'static str {
        match self {
            Ceremony::Register { .. } => "register",
            Ceremony::SignIn { .. } => "sign-in",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PendingV1 {
    v: u8,
    /// Keyed hash of the browser's challenge nonce.
    b: String,
    e: u64,
    c: Ceremony,
}

fn nonce_domain(user: &str) -> String {
    format!("webauthn-pending\n{}", user.to_ascii_lowercase())
}

/// A pending value: `(binding hash, expiry, ceremony)`.
fn decode_pending(signer: &Signer<'_>, stored: &str) -> Option<(Vec<u8>, u64, Ceremony)> {
    signer.decode(Role::WebAuthnPending, stored, |text| {
        let v: PendingV1 = serde_json::from_str(text).ok().filter(|v: &PendingV1| v.v == 1)?;
        Some((URL_SAFE_NO_PAD.decode(v.b).ok()?, v.e, v.c))
    })
}

/// The changes that start `ceremony` for this browser: its value comes,
/// and the browser's earlier ceremony, expired ones and the oldest beyond
/// [`MAX_PENDING`] go (deleted by value: a concurrent start makes it fail).
pub fn start_changes(
    keys: &Keys,
    settings: &Settings,
    entry: &UserEntry,
    nonce: &str,
    ceremony: Ceremony,
    now: u64,
) -> Vec<Change> {
    let attr = settings.attribute(Role::WebAuthnPending);
    let signer = Signer::new(keys, &entry.username, settings.accept_unsigned_state);
    let ours: Vec<Vec<u8>> = keys.hashes(&nonce_domain(&entry.username), nonce.as_bytes()).collect();
    let mut live: Vec<(u64, &String)> = Vec::new();
    let mut stale: Vec<String> = Vec::new();
    for value in entry.values(attr) {
        match decode_pending(&signer, value) {
            Some((bound, expires, _)) if expires > now && !ours.iter().any(|h| constant_time_eq(h, &bound)) => {
                live.push((expires, value))
            }
            _ => stale.push(value.clone()),
        }
    }
    live.sort();
    let excess = (live.len() + 1).saturating_sub(MAX_PENDING);
    stale.extend(live.iter().take(excess).map(|(_, v)| (*v).clone()));
    let value = PendingV1 {
        v: 1,
        b: URL_SAFE_NO_PAD.encode(keys.hash(&nonce_domain(&entry.username), nonce.as_bytes())),
        e: now + CEREMONY_SECS,
        c: ceremony,
    };
    let mut changes = Vec::with_capacity(3);
    if let Some(class) = class_for(attr).filter(|c| !entry.has_object_class(c)) {
        changes.push(Change::Add("objectClass".into(), vec![class.into()]));
    }
    if !stale.is_empty() {
        changes.push(Change::Delete(attr.into(), stale));
    }
    let payload = serde_json::to_string(&value).unwrap_or_default();
    changes.push(Change::Add(attr.into(), vec![signer.sign(Role::WebAuthnPending, &payload)]));
    changes
}

/// This browser's live ceremony of `kind`, with its stored value (to use it up).
pub fn pending_of(
    keys: &Keys,
    settings: &Settings,
    entry: &UserEntry,
    nonce: &str,
    kind: &str,
    now: u64,
) -> Option<(String, Ceremony)> {
    let ours: Vec<Vec<u8>> = keys.hashes(&nonce_domain(&entry.username), nonce.as_bytes()).collect();
    let signer = Signer::new(keys, &entry.username, settings.accept_unsigned_state);
    entry.values(settings.attribute(Role::WebAuthnPending)).iter().find_map(|value| {
        let (bound, expires, ceremony) = decode_pending(&signer, value)?;
        let mine = ours.iter().fold(false, |hit, h| hit | constant_time_eq(h, &bound));
        (mine && expires > now && ceremony.kind() == kind).then(|| (value.clone(), ceremony))
    })
}

/// Uses up a pending ceremony (before its answer is checked): of two
/// answers to one challenge, one gets `Ok(true)`.
pub fn use_up(directory: &dyn Directory, settings: &Settings, dn: &str, value: &str) -> Result<bool, StoreError> {
    let change = Change::Delete(settings.attribute(Role::WebAuthnPending).into(), vec![value.to_string()]);
    match directory.modify(dn, &[change]) {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The user handle the authenticator stores: opaque, stable for the user.
fn user_handle(keys: &Keys, user: &str) -> Vec<u8> {
    let mut handle = keys.hash("webauthn-user", user.to_ascii_lowercase().as_bytes());
    handle.truncate(32);
    handle
}

/// Options for `navigator.credentials.create()` and the state to keep.
/// User verification preferred (the gateway's password is the first
/// factor); the user's credentials are excluded (no second registration
/// of one authenticator); no attestation asked (no vendor list to check it against).
pub fn start_registration(
    rp: &RelyingParty,
    keys: &Keys,
    user: &str,
    existing: &[StoredCredential],
) -> Result<(CreationChallengeResponse, RegistrationState), WebauthnError> {
    let exclude = existing.iter().map(|c| c.credential.cred_id.clone()).collect::<Vec<_>>();
    let builder = rp
        .new_challenge_register_builder(&user_handle(keys, user), user, user)?
        .user_verification_policy(UserVerificationPolicy::Preferred)
        .exclude_credentials((!exclude.is_empty()).then_some(exclude))
        .require_resident_key(false);
    rp.generate_challenge_register(builder)
}

/// Checks the browser's answer to a registration; the new credential.
pub fn finish_registration(
    rp: &RelyingParty,
    answer: &str,
    state: &RegistrationState,
) -> Result<Credential, Rejection> {
    let answer: RegisterPublicKeyCredential = serde_json::from_str(answer).map_err(|_| Rejection::Malformed)?;
    rp.register_credential(&answer, state, None).map_err(Rejection::from)
}

/// Options for `navigator.credentials.get()` over the user's credentials.
pub fn start_sign_in(
    rp: &RelyingParty,
    credentials: &[StoredCredential],
) -> Result<(RequestChallengeResponse, AuthenticationState), WebauthnError> {
    let creds = credentials.iter().map(|c| c.credential.clone()).collect();
    let builder = rp
        .new_challenge_authenticate_builder(creds, Some(UserVerificationPolicy::Preferred))?
        .allow_backup_eligible_upgrade(true);
    rp.generate_challenge_authenticate(builder)
}

/// A checked sign-in: which credential, and its new counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub credential_id: Vec<u8>,
    pub counter: u32,
}

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not JSON of the right shape.
    Malformed,
    /// The counter did not go forward: a copy of the credential may be in use.
    Clone,
    /// Anything else the library refused (signature, origin, RP id, challenge, flags).
    Invalid(&'static str),
}

impl Rejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::Clone => "counter-regressed",
            Rejection::Invalid(reason) => reason,
        }
    }
}

impl From<WebauthnError> for Rejection {
    fn from(e: WebauthnError) -> Rejection {
        Rejection::Invalid(match e {
            WebauthnError::CredentialPossibleCompromise => return Rejection::Clone,
            WebauthnError::InvalidRPOrigin => "wrong-origin",
            WebauthnError::InvalidRPIDHash => "wrong-rp-id",
            WebauthnError::MismatchedChallenge => "wrong-challenge",
            WebauthnError::AuthenticationFailure => "bad-signature",
            WebauthnError::UserNotPresent => "user-not-present",
            WebauthnError::UserNotVerified => "user-not-verified",
            WebauthnError::CredentialNotFound | WebauthnError::CredentialRetrievalError => "unknown-credential",
            WebauthnError::CredentialAlteredAlgFromRequest => "wrong-algorithm",
            WebauthnError::InvalidClientDataType => "wrong-ceremony",
            _ => "invalid",
        })
    }
}

/// Checks the browser's answer to a sign-in.
pub fn finish_sign_in(rp: &RelyingParty, answer: &str, state: &AuthenticationState) -> Result<Assertion, Rejection> {
    let answer: PublicKeyCredential = serde_json::from_str(answer).map_err(|_| Rejection::Malformed)?;
    let result = rp.authenticate_credential(&answer, state).map_err(Rejection::from)?;
    Ok(Assertion { credential_id: result.cred_id().as_ref().to_vec(), counter: result.counter() })
}

/// What recording a sign-in found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Used {
    /// The counter and the time of use are stored; the credential's name.
    Recorded { name: String },
    /// The stored counter is already at or beyond this one (another
    /// sign-in with a copy of the credential came first).
    Regressed,
    /// The credential was removed meanwhile.
    Gone,
}

/// Stores a sign-in's counter and time (one compare-and-swap on the
/// credential's value, read again when a concurrent sign-in came first).
pub fn record_use(
    directory: &dyn Directory,
    settings: &Settings,
    user: &str,
    assertion: &Assertion,
    now: u64,
) -> Result<Used, StoreError> {
    let attr = settings.attribute(Role::WebAuthn);
    for _ in 0..UPDATE_ATTEMPTS {
        let entry = match directory.find_user(user, &[attr])? {
            Lookup::Found(entry) => entry,
            Lookup::NotFound | Lookup::Ambiguous => return Ok(Used::Gone),
        };
        let found = credentials(&entry, settings)
            .into_iter()
            .find(|(_, c)| c.credential.cred_id.as_ref() == assertion.credential_id.as_slice());
        let Some((old, mut stored)) = found else { return Ok(Used::Gone) };
        if (assertion.counter > 0 || stored.counter() > 0) && assertion.counter <= stored.counter() {
            return Ok(Used::Regressed);
        }
        stored.credential.counter = assertion.counter;
        stored.last_used = Some(now);
        let signer = settings.signer(&entry.username).ok_or_else(no_key)?;
        let changes =
            [Change::Delete(attr.into(), vec![old.clone()]), Change::Add(attr.into(), vec![stored.seal(&signer)])];
        match directory.modify(&entry.dn, &changes) {
            Ok(()) => return Ok(Used::Recorded { name: stored.name }),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict)
}

/// The change that adds a new credential of the signer's user (a
/// compare-and-swap on nothing: a value is unique by its credential id and
/// creation time).
pub fn add_change(settings: &Settings, signer: &Signer<'_>, credential: &StoredCredential) -> Change {
    Change::Add(settings.attribute(Role::WebAuthn).into(), vec![credential.seal(signer)])
}

/// The stored value of the credential `id` (base64url), to remove it.
pub fn value_of<'a>(entry: &'a UserEntry, settings: &Settings, id: &str) -> Option<&'a String> {
    credentials(entry, settings).into_iter().find(|(_, c)| c.id() == id).map(|(v, _)| v)
}

#[cfg(test)]
mod tests;
