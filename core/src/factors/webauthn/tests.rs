//! The ceremonies against the library, with a software authenticator
//! (P-256 keys from ring, "none" attestation): what reaches the directory,
//! and what is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use testkit::softkey::SoftKey;

use super::*;
use crate::config::WebAuthnSettings;
use crate::keys::Keys;
use crate::store::memory::MemoryDirectory;
use crate::testing;

const ORIGIN: &str = "https://gateway.example.org";
const NOW: u64 = 1_900_000_000;

fn rp() -> RelyingParty {
    relying_party(&WebAuthnSettings { origin: ORIGIN.into(), rp_id: "example.org".into() }).unwrap()
}

fn keys() -> crate::keys::Keys {
    testing::settings(&[]).keys.unwrap()
}

/// A registered credential of `key`.
fn registered(key: &mut SoftKey) -> StoredCredential {
    let (options, state) = start_registration(&rp(), &keys(), "alice", &[]).unwrap();
    let answer = key.register(&serde_json::to_value(&options).unwrap());
    let credential = finish_registration(&rp(), &answer, &state).unwrap();
    StoredCredential { name: "Laptop".into(), created: NOW, last_used: None, credential }
}

fn sign_in(key: &mut SoftKey, stored: &StoredCredential) -> Result<Assertion, Rejection> {
    let (options, state) = start_sign_in(&rp(), std::slice::from_ref(stored)).unwrap();
    let answer = key.sign(&serde_json::to_value(&options).unwrap());
    finish_sign_in(&rp(), &answer, &state)
}

#[test]
fn a_registered_key_signs_in_and_its_counter_moves_on() {
    let mut key = SoftKey::new(ORIGIN, "example.org");
    let stored = registered(&mut key);
    assert_eq!(stored.credential.cred_id.as_ref(), key.id.as_slice());
    assert_eq!(stored.counter(), 1);
    let assertion = sign_in(&mut key, &stored).unwrap();
    assert_eq!(assertion, Assertion { credential_id: key.id.clone(), counter: 2 });
    // The stored value round-trips, public key and all.
    let k = keys();
    let alice = Signer::new(&k, "alice", false);
    let back = StoredCredential::open(&alice, &stored.seal(&alice)).unwrap();
    assert_eq!((back.name.as_str(), back.created, back.id()), ("Laptop", NOW, stored.id()));
    assert!(sign_in(&mut key, &back).is_ok());
    assert!(!format!("{back:?}").contains("EC_EC2"), "Debug shows id and name only");
}

#[test]
fn registration_options_ask_for_user_verification_preferred_and_exclude_known_keys() {
    let mut key = SoftKey::new(ORIGIN, "example.org");
    let stored = registered(&mut key);
    let (options, _) = start_registration(&rp(), &keys(), "alice", std::slice::from_ref(&stored)).unwrap();
    let options = serde_json::to_value(&options).unwrap();
    let pk = &options["publicKey"];
    assert_eq!(pk["rp"]["id"], "example.org");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "preferred");
    assert_eq!(pk["attestation"], "none");
    assert_eq!(pk["excludeCredentials"][0]["id"], stored.id());
    // The user handle is opaque: not the name.
    let handle = URL_SAFE_NO_PAD.decode(pk["user"]["id"].as_str().unwrap()).unwrap();
    assert!(handle.len() == 32 && !handle.windows(5).any(|w| w == b"alice"));
}

#[test]
fn another_origin_or_relying_party_is_refused() {
    let mut key = SoftKey::new(ORIGIN, "example.org");
    let stored = registered(&mut key);
    key.origin = "https://gateway.example.org.evil.test".into();
    assert_eq!(sign_in(&mut key, &stored), Err(Rejection::Invalid("wrong-origin")));
    key.origin = ORIGIN.into();
    key.rp_id = "evil.test".into();
    assert_eq!(sign_in(&mut key, &stored), Err(Rejection::Invalid("wrong-rp-id")));
    // A registration through a look-alike page is refused too.
    let mut phished = SoftKey::new("https://evil.test", "example.org");
    let (options, state) = start_registration(&rp(), &keys(), "alice", &[]).unwrap();
    let answer = phished.register(&serde_json::to_value(&options).unwrap());
    assert!(finish_registration(&rp(), &answer, &state).is_err());
}

#[test]
fn an_answer_to_another_prompt_or_a_forged_signature_is_refused() {
    let mut key = SoftKey::new(ORIGIN, "example.org");
    let stored = registered(&mut key);
    let (first, _) = start_sign_in(&rp(), std::slice::from_ref(&stored)).unwrap();
    let (_, second_state) = start_sign_in(&rp(), std::slice::from_ref(&stored)).unwrap();
    let replayed = key.sign(&serde_json::to_value(&first).unwrap());
    assert_eq!(finish_sign_in(&rp(), &replayed, &second_state), Err(Rejection::Invalid("wrong-challenge")));

    let (options, state) = start_sign_in(&rp(), std::slice::from_ref(&stored)).unwrap();
    let mut answer: Value = serde_json::from_str(&key.sign(&serde_json::to_value(&options).unwrap())).unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(answer["response"]["signature"].as_str().unwrap()).unwrap();
    let last = signature.len() - 1;
    signature[last] ^= 1;
    answer["response"]["signature"] = json!(URL_SAFE_NO_PAD.encode(signature));
    assert_eq!(finish_sign_in(&rp(), &answer.to_string(), &state), Err(Rejection::Invalid("bad-signature")));
    assert_eq!(finish_sign_in(&rp(), "{not json", &state), Err(Rejection::Malformed));
}

#[test]
fn a_counter_that_goes_backwards_is_a_clone() {
    let mut key = SoftKey::new(ORIGIN, "example.org");
    let mut stored = registered(&mut key);
    stored.credential.counter = 10;
    assert_eq!(sign_in(&mut key, &stored), Err(Rejection::Clone));
    assert_eq!(Rejection::Clone.reason(), "counter-regressed");
}

fn directory_with(stored: &StoredCredential) -> MemoryDirectory {
    let k = keys();
    let value = stored.seal(&Signer::new(&k, "alice", false));
    MemoryDirectory::default().with_user("alice", &[("twoFactorWebAuthn", &[value.as_str()])])
}

#[test]
fn a_key_written_into_the_entry_by_someone_without_the_key_file_is_no_credential() {
    let settings = testing::settings(&[]);
    let mut key = SoftKey::new(ORIGIN, "example.org");
    let stored = registered(&mut key);
    let attacker_keys = Keys::from_files(&[crate::secret::Secret::new(vec![0xee; 32])]).unwrap();
    let forged = stored.seal(&Signer::new(&attacker_keys, "alice", false));
    let k = keys();
    let bobs = stored.seal(&Signer::new(&k, "bob", false));
    let alice = Signer::new(&k, "alice", false);
    let sealed = stored.seal(&alice);
    let unsigned = alice.open(Role::WebAuthn, &sealed).unwrap().to_string();
    for value in [forged, bobs, unsigned] {
        let directory = MemoryDirectory::default().with_user("alice", &[("twoFactorWebAuthn", &[value.as_str()])]);
        let Lookup::Found(entry) = directory.find_user("alice", &["twoFactorWebAuthn"]).unwrap() else { panic!() };
        assert!(credentials(&entry, &settings).is_empty(), "{value}");
        let assertion = sign_in(&mut key, &stored).unwrap();
        assert_eq!(record_use(&directory, &settings, "alice", &assertion, NOW), Ok(Used::Gone));
    }
    crate::tamper::take();
}

#[test]
fn a_sign_in_is_recorded_once_and_a_copy_behind_it_is_a_regression() {
    let settings = testing::settings(&[]);
    let mut key = SoftKey::new(ORIGIN, "example.org");
    let stored = registered(&mut key);
    let directory = directory_with(&stored);
    let assertion = sign_in(&mut key, &stored).unwrap();
    let used = record_use(&directory, &settings, "alice", &assertion, NOW + 5).unwrap();
    assert_eq!(used, Used::Recorded { name: "Laptop".into() });
    let k = keys();
    let alice = Signer::new(&k, "alice", false);
    let now_stored = StoredCredential::open(&alice, &directory.values("alice", "twoFactorWebAuthn")[0]).unwrap();
    assert_eq!((now_stored.counter(), now_stored.last_used), (2, Some(NOW + 5)));
    // A second use of the same counter (a cloned key, or the same answer twice).
    assert_eq!(record_use(&directory, &settings, "alice", &assertion, NOW + 6).unwrap(), Used::Regressed);
    let other = Assertion { credential_id: vec![1, 2, 3], counter: 9 };
    assert_eq!(record_use(&directory, &settings, "alice", &other, NOW).unwrap(), Used::Gone);
}

fn entry(directory: &MemoryDirectory, settings: &Settings) -> UserEntry {
    let attrs = [settings.attribute(Role::WebAuthnPending), "objectClass"];
    match directory.find_user("alice", &attrs).unwrap() {
        Lookup::Found(entry) => entry,
        _ => panic!("no alice"),
    }
}

#[test]
fn a_pending_ceremony_belongs_to_one_browser_expires_and_is_used_once() {
    let settings = testing::settings(&[]);
    let keys = settings.keys.as_ref().unwrap();
    let directory = MemoryDirectory::default().with_user("alice", &[]);
    let (_, state) = start_sign_in(&rp(), &[registered(&mut SoftKey::new(ORIGIN, "example.org"))]).unwrap();
    let ceremony = Ceremony::SignIn { state };
    let e = entry(&directory, &settings);
    directory.modify(&e.dn, &start_changes(keys, &settings, &e, "nonce-a", ceremony.clone(), NOW)).unwrap();
    assert_eq!(directory.values("alice", "objectClass"), ["twoFactorUser"]);
    let e = entry(&directory, &settings);
    assert!(pending_of(keys, &settings, &e, "nonce-b", "sign-in", NOW).is_none(), "another browser");
    assert!(pending_of(keys, &settings, &e, "nonce-a", "register", NOW).is_none(), "another ceremony");
    assert!(pending_of(keys, &settings, &e, "nonce-a", "sign-in", NOW + CEREMONY_SECS).is_none(), "expired");
    let (value, _) = pending_of(keys, &settings, &e, "nonce-a", "sign-in", NOW + 1).unwrap();
    assert!(!value.contains("nonce-a"), "the nonce is stored as a keyed hash");
    assert!(use_up(&directory, &settings, &e.dn, &value).unwrap());
    assert!(!use_up(&directory, &settings, &e.dn, &value).unwrap(), "used once");
}

#[test]
fn a_new_prompt_replaces_the_browsers_last_and_old_ones_are_pruned() {
    let settings = testing::settings(&[]);
    let keys = settings.keys.as_ref().unwrap();
    let directory = MemoryDirectory::default().with_user("alice", &[]);
    let (_, state) = start_sign_in(&rp(), &[registered(&mut SoftKey::new(ORIGIN, "example.org"))]).unwrap();
    let start = |nonce: &str, at: u64| {
        let e = entry(&directory, &settings);
        let ceremony = Ceremony::SignIn { state: state.clone() };
        directory.modify(&e.dn, &start_changes(keys, &settings, &e, nonce, ceremony, at)).unwrap();
    };
    start("a", NOW);
    start("a", NOW + 1);
    assert_eq!(directory.values("alice", "twoFactorWebAuthnPending").len(), 1, "one per browser");
    for (i, nonce) in ["b", "c", "d", "e", "f", "g", "h", "i", "j"].iter().enumerate() {
        start(nonce, NOW + 2 + i as u64);
    }
    assert_eq!(directory.values("alice", "twoFactorWebAuthnPending").len(), MAX_PENDING);
    let e = entry(&directory, &settings);
    assert!(pending_of(keys, &settings, &e, "a", "sign-in", NOW + 20).is_none(), "the oldest went");
    assert!(pending_of(keys, &settings, &e, "j", "sign-in", NOW + 20).is_some());
    // Long after: the next start prunes every expired one.
    start("k", NOW + 10 * CEREMONY_SECS);
    assert_eq!(directory.values("alice", "twoFactorWebAuthnPending").len(), 1);
}

#[test]
fn names_are_cleaned() {
    assert_eq!(clean_name("  YubiKey 5C\u{7}\n ", "Passkey 1"), "YubiKey 5C");
    assert_eq!(clean_name(" \t", "Passkey 2"), "Passkey 2");
    assert_eq!(clean_name(&"x".repeat(100), "-").len(), MAX_NAME_CHARS);
}
