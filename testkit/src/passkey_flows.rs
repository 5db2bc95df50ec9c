//! The passkey pages as a browser's script uses them, over plain HTTP
//! with a software key (`softkey`): begin a ceremony, pass the options to
//! the key, post its answer. Shared by the passkey and directory tests.

use serde_json::Value;

use crate::http::Response;
use crate::session::{form, Form, Session};
use crate::softkey::SoftKey;

/// The options of a ceremony started with `f`'s hidden fields.
pub fn begin(b: &mut Session, f: &Form, ceremony: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut fields = f.replacing(&[("ceremony", ceremony)]);
    fields.extend_from_slice(extra);
    let response = b.post("/2fa/webauthn/begin", &fields);
    let json = serde_json::from_str(&response.text()).unwrap_or(Value::Null);
    (response.status, json)
}

/// Registers `key` as `name` for `b`'s user: the page, the prompt, the answer.
pub fn register(b: &mut Session, key: &mut SoftKey, name: &str) -> Response {
    register_at(b, key, name, "/2fa/webauthn/register")
}

/// The same from the registration page at `path` (a link of another page).
pub fn register_at(b: &mut Session, key: &mut SoftKey, name: &str, path: &str) -> Response {
    let page = b.follow(path);
    assert_eq!(page.status, 200, "{}", page.text());
    let f = form(&page.text(), "/webauthn/register");
    let (status, options) = begin(b, &f, "register", &[("name", name)]);
    assert_eq!(status, 200, "{options}");
    let answer = key.register(&options);
    b.post(&f.action, &f.replacing(&[("credential", &answer)]))
}

/// The passkey prompt's form and a fresh answer of `key` to it.
pub fn sign_in_answer(b: &mut Session, key: &mut SoftKey, page: &str) -> (Form, String) {
    let f = form(page, "/webauthn");
    let (status, options) = begin(b, &f, "sign-in", &[]);
    assert_eq!(status, 200, "{options}");
    (f.clone(), key.sign(&options))
}

/// The passkey prompt, answered by `key`.
pub fn sign_in(b: &mut Session, key: &mut SoftKey) -> Response {
    sign_in_at(b, key, "/2fa/webauthn")
}

/// The same from the prompt at `path` (a link of another page).
pub fn sign_in_at(b: &mut Session, key: &mut SoftKey, path: &str) -> Response {
    let page = b.follow(path);
    let (f, answer) = sign_in_answer(b, key, &page.text());
    b.post(&f.action, &f.replacing(&[("credential", &answer)]))
}
