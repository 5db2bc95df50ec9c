//! A security key in software for tests: one P-256 credential ("none"
//! attestation), answering WebAuthn prompts the way a browser passes them
//! on (JSON with base64url fields), so that the module's checks can be
//! driven over plain HTTP and in unit tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failure stops the test

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().to_vec()
}

/// Just enough CBOR for an attestation object and a COSE key.
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(&'static str),
    Map(Vec<(Cbor, Cbor)>),
}

fn cbor_head(out: &mut Vec<u8>, major: u8, n: u64) {
    match n {
        0..=23 => out.push(major << 5 | n as u8),
        24..=0xff => out.extend([major << 5 | 24, n as u8]),
        _ => {
            out.push(major << 5 | 25);
            out.extend((n as u16).to_be_bytes());
        }
    }
}

fn cbor(value: &Cbor, out: &mut Vec<u8>) {
    match value {
        Cbor::Int(i) if *i >= 0 => cbor_head(out, 0, *i as u64),
        Cbor::Int(i) => cbor_head(out, 1, (-1 - i) as u64),
        Cbor::Bytes(b) => {
            cbor_head(out, 2, b.len() as u64);
            out.extend(b);
        }
        Cbor::Text(t) => {
            cbor_head(out, 3, t.len() as u64);
            out.extend(t.as_bytes());
        }
        Cbor::Map(pairs) => {
            cbor_head(out, 5, pairs.len() as u64);
            for (k, v) in pairs {
                cbor(k, out);
                cbor(v, out);
            }
        }
    }
}

/// A security key in software: one P-256 credential and its counter.
pub struct SoftKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    pub id: Vec<u8>,
    /// The signature counter (the next answer carries one more).
    pub counter: u32,
    /// What the "browser" puts into clientDataJSON.
    pub origin: String,
    /// What the "authenticator" hashes into its data.
    pub rp_id: String,
}

impl SoftKey {
    /// A new key that answers as a browser at `origin` would, for `rp_id`.
    pub fn new(origin: &str, rp_id: &str) -> SoftKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pkcs8 = pkcs8.as_ref().to_vec();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng).unwrap();
        let mut id = vec![0u8; 16];
        ring::rand::SecureRandom::fill(&rng, &mut id).unwrap();
        SoftKey { pair, pkcs8, id, counter: 0, origin: origin.into(), rp_id: rp_id.into() }
    }

    /// A copy of this key (its private key extracted), whose counter starts at `counter`.
    pub fn copy(&self, counter: u32) -> SoftKey {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.pkcs8, &SystemRandom::new()).unwrap();
        SoftKey {
            pair,
            pkcs8: self.pkcs8.clone(),
            id: self.id.clone(),
            counter,
            origin: self.origin.clone(),
            rp_id: self.rp_id.clone(),
        }
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({ "type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false })
            .to_string()
            .into_bytes()
    }

    fn auth_data(&mut self, attested: bool) -> Vec<u8> {
        self.counter += 1;
        let mut data = sha256(self.rp_id.as_bytes());
        data.push(if attested { 0x45 } else { 0x05 }); // UP, UV (and AT)
        data.extend(self.counter.to_be_bytes());
        if attested {
            let public = self.pair.public_key().as_ref();
            let key = Cbor::Map(vec![
                (Cbor::Int(1), Cbor::Int(2)),
                (Cbor::Int(3), Cbor::Int(-7)),
                (Cbor::Int(-1), Cbor::Int(1)),
                (Cbor::Int(-2), Cbor::Bytes(public[1..33].to_vec())),
                (Cbor::Int(-3), Cbor::Bytes(public[33..65].to_vec())),
            ]);
            data.extend([0u8; 16]);
            data.extend((self.id.len() as u16).to_be_bytes());
            data.extend(&self.id);
            cbor(&key, &mut data);
        }
        data
    }

    /// The browser's answer to `navigator.credentials.create()`.
    pub fn register(&mut self, options: &Value) -> String {
        let challenge = options["publicKey"]["challenge"].as_str().unwrap();
        let client_data = self.client_data("webauthn.create", challenge);
        let object = Cbor::Map(vec![
            (Cbor::Text("fmt"), Cbor::Text("none")),
            (Cbor::Text("attStmt"), Cbor::Map(vec![])),
            (Cbor::Text("authData"), Cbor::Bytes(self.auth_data(true))),
        ]);
        let mut attestation = Vec::new();
        cbor(&object, &mut attestation);
        let id = URL_SAFE_NO_PAD.encode(&self.id);
        json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "attestationObject": URL_SAFE_NO_PAD.encode(attestation),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data),
            },
        })
        .to_string()
    }

    /// The browser's answer to `navigator.credentials.get()`.
    pub fn sign(&mut self, options: &Value) -> String {
        let challenge = options["publicKey"]["challenge"].as_str().unwrap();
        let client_data = self.client_data("webauthn.get", challenge);
        let auth_data = self.auth_data(false);
        let mut signed = auth_data.clone();
        signed.extend(sha256(&client_data));
        let signature = self.pair.sign(&SystemRandom::new(), &signed).unwrap();
        let id = URL_SAFE_NO_PAD.encode(&self.id);
        json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "authenticatorData": URL_SAFE_NO_PAD.encode(auth_data),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data),
                "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
                "userHandle": null,
            },
        })
        .to_string()
    }
}
