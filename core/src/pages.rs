//! Every page the module sends: the challenge's plain HTML forms (they
//! work without JavaScript and read well on a phone) and the short error
//! pages of the access check. Every value from outside goes through
//! `text::html`; the pages hold no script, so the CSP of
//! `policy::PAGE_HEADERS` can forbid scripts outright.

use crate::config::{Method, MethodSet};
use crate::text::html;

/// Hidden fields every form carries: the CSRF token and the return token.
pub struct FormBase<'a> {
    /// `TwoFactorChallengeURL` without its trailing slash.
    pub base: &'a str,
    pub csrf: &'a str,
    pub return_token: &'a str,
}

impl FormBase<'_> {
    fn open(&self, action: &str) -> String {
        format!(
            "<form method=\"post\" action=\"{base}/{action}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"r\" value=\"{r}\">",
            base = html(self.base),
            csrf = html(self.csrf),
            r = html(self.return_token),
        )
    }

    /// A link to a page of the challenge, keeping the return token.
    pub fn link(&self, page: &str) -> String {
        format!("{}/{page}?r={}", html(self.base), html(&crate::form::encode(self.return_token)))
    }
}

/// The code input: named `code`, for one-time codes, numeric keyboard.
fn code_input(label: &str, numeric: bool) -> String {
    let mode = if numeric { " inputmode=\"numeric\" pattern=\"[0-9 ]*\"" } else { "" };
    format!(
        "<label for=\"code\">{}</label>\
         <input id=\"code\" name=\"code\" type=\"text\" autocomplete=\"one-time-code\"{mode} required autofocus \
         spellcheck=\"false\" autocapitalize=\"off\">",
        html(label)
    )
}

/// A whole page around `body` (already HTML).
pub fn layout(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>\n",
        title = html(title),
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:30rem;margin:1.5rem auto;padding:0 1rem;\
line-height:1.5;color:#1b1b1b}h1{font-size:1.5rem}label{display:block;margin:1rem 0 .25rem;font-weight:600}\
input[type=text]{font-size:1.4rem;padding:.5rem;width:100%;box-sizing:border-box;letter-spacing:.1em}\
button{font-size:1.1rem;padding:.6rem 1.2rem;margin-top:1rem;cursor:pointer}\
.error{border-left:4px solid #b00020;padding:.5rem 1rem;background:#fdecee}\
.note{color:#444;font-size:.95rem}.secret{font-family:monospace;font-size:1.2rem;word-break:break-all}\
.codes{font-family:monospace;font-size:1.2rem}svg{width:100%;max-width:16rem;height:auto}\
.other{margin-top:2rem;border-top:1px solid #ddd;padding-top:1rem}";

/// How a page names a method to the end user.
pub fn method_name(method: Method) -> &'static str {
    match method {
        Method::Totp => "your authenticator app or token",
        Method::Email => "a code by mail",
        Method::Recovery => "a recovery code",
        Method::WebAuthn => "a passkey or security key",
    }
}

/// `a passkey or security key or a recovery code`; "any second factor" for the empty set.
pub fn method_names(methods: MethodSet) -> String {
    let names: Vec<&str> = methods.methods().map(method_name).collect();
    match names.is_empty() {
        true => "any second factor".into(),
        false => names.join(" or "),
    }
}

/// An error or notice box; `role=alert` so screen readers announce it.
pub fn alert(message: &str) -> String {
    format!("<p class=\"error\" role=\"alert\">{}</p>", html(message))
}

/// How setting up an authenticator is offered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum EnrollOffer {
    None,
    /// A link to the enrollment page.
    Link,
    /// A button that mails the proof code first.
    ByMail,
}

/// What a user can do instead of (or besides) the main form.
#[derive(Clone, Copy)]
pub struct Options {
    pub email: bool,
    pub recovery: bool,
    pub enroll: EnrollOffer,
    /// A link to the passkey prompt (the user has one, and it is accepted here).
    pub passkey: bool,
    /// A link to the authenticator code form (when the passkey prompt is the main form).
    pub totp: bool,
    /// A link to register a passkey (enrollment open, no mail proof needed).
    pub enroll_passkey: bool,
}

fn enroll_by_mail(f: &FormBase<'_>, label: &str) -> String {
    format!(
        "{}<input type=\"hidden\" name=\"purpose\" value=\"enroll\"><button type=\"submit\">{}</button></form>",
        f.open("email/send"),
        html(label)
    )
}

fn other_ways(f: &FormBase<'_>, options: &Options, mail_hint: Option<&str>) -> String {
    let mut out = String::new();
    if options.passkey {
        out.push_str(&format!(
            "<p><a id=\"use-passkey\" href=\"{}\">Use a passkey or security key</a></p>",
            f.link("webauthn")
        ));
    }
    if options.totp {
        out.push_str(&format!(
            "<p><a id=\"use-totp\" href=\"{}\">Use your authenticator app or token</a></p>",
            f.link("totp")
        ));
    }
    if options.email {
        let hint = mail_hint.map(|m| format!(" to {}", html(m))).unwrap_or_default();
        out.push_str(&format!(
            "{}<input type=\"hidden\" name=\"purpose\" value=\"login\">\
             <button type=\"submit\">Sign in with a code by mail{hint}</button></form>",
            f.open("email/send")
        ));
    }
    if options.recovery {
        out.push_str(&format!("<p><a href=\"{}\">Use a recovery code</a></p>", f.link("recovery")));
    }
    match options.enroll {
        EnrollOffer::None => {}
        EnrollOffer::Link => out
            .push_str(&format!("<p><a href=\"{}\">Set up a new authenticator app or token</a></p>", f.link("enroll"))),
        EnrollOffer::ByMail => {
            out.push_str(&enroll_by_mail(f, "Email me a code to set up a new authenticator app or token"))
        }
    }
    if options.enroll_passkey {
        out.push_str(&format!(
            "<p><a id=\"add-passkey\" href=\"{}\">Register a passkey or security key</a></p>",
            f.link("webauthn/register")
        ));
    }
    if out.is_empty() {
        return out;
    }
    format!("<div class=\"other\"><h2>Other ways</h2>{out}</div>")
}

/// The TOTP code form of an enrolled user.
pub fn totp(f: &FormBase<'_>, user: &str, error: Option<&str>, options: &Options, mail_hint: Option<&str>) -> String {
    let body = format!(
        "<p>Signed in at the gateway as <strong>{user}</strong>. Enter the code shown by your authenticator app \
         or hardware token.</p>{error}{form}{input}<button type=\"submit\">Verify</button></form>{others}",
        user = html(user),
        error = error.map(alert).unwrap_or_default(),
        form = f.open("totp"),
        input = code_input("Code", true),
        others = other_ways(f, options, mail_hint),
    );
    layout("Second sign-in step", &body)
}

/// For a user without a TOTP secret: the ways that are open.
pub fn choose(f: &FormBase<'_>, user: &str, error: Option<&str>, options: &Options, mail_hint: Option<&str>) -> String {
    let mut body = format!("<p>Signed in at the gateway as <strong>{}</strong>.</p>", html(user));
    body.push_str(&error.map(alert).unwrap_or_default());
    match options.enroll {
        EnrollOffer::ByMail => body.push_str(&format!(
            "<h2>Set up an authenticator</h2>\
             <p>To set up an authenticator app, a hardware token or a passkey, first confirm a code we send to \
             your mail address.</p>{}",
            enroll_by_mail(f, "Email me a code to set up an authenticator")
        )),
        EnrollOffer::Link => body.push_str(&format!(
            "<p><a href=\"{}\">Set up an authenticator app or a hardware token</a></p>",
            f.link("enroll")
        )),
        EnrollOffer::None => {}
    }
    let rest = Options { enroll: EnrollOffer::None, ..*options };
    body.push_str(&other_ways(f, &rest, mail_hint));
    let nothing = !options.email && !options.recovery && !options.passkey && !options.totp && !options.enroll_passkey;
    if nothing && options.enroll == EnrollOffer::None {
        body.push_str(&alert(
            "No second factor is set up for your account, and none can be set up from here. \
             Please contact your administrator.",
        ));
    }
    layout("Second sign-in step", &body)
}

/// The form for an emailed passcode (after it was sent).
pub fn email_code(f: &FormBase<'_>, purpose: &str, notice: Option<&str>, error: Option<&str>) -> String {
    let body = format!(
        "{notice}{error}<p>We sent a code to your mail address. It is valid for a few minutes and works once.</p>\
         {form}<input type=\"hidden\" name=\"purpose\" value=\"{purpose}\">{input}\
         <button type=\"submit\">Verify</button></form>\
         {resend}<input type=\"hidden\" name=\"purpose\" value=\"{purpose}\">\
         <button type=\"submit\">Send a new code</button></form>",
        notice = notice.map(|n| format!("<p class=\"note\" role=\"status\">{}</p>", html(n))).unwrap_or_default(),
        error = error.map(alert).unwrap_or_default(),
        form = f.open("email"),
        purpose = html(purpose),
        input = code_input("Code from the mail", true),
        resend = f.open("email/send"),
    );
    layout("Check your mail", &body)
}

pub fn recovery(f: &FormBase<'_>, error: Option<&str>) -> String {
    let body = format!(
        "<p>Enter one of the recovery codes you saved when you set up your second factor. Each code works once.</p>\
         {error}{form}{input}<button type=\"submit\">Verify</button></form>\
         <p><a href=\"{back}\">Back</a></p>",
        error = error.map(alert).unwrap_or_default(),
        form = f.open("recovery"),
        input = code_input("Recovery code", false),
        back = f.link(""),
    );
    layout("Recovery code", &body)
}

/// What the enrollment page shows.
pub struct Enrollment<'a> {
    pub qr_svg: &'a str,
    pub secret_base32: &'a str,
    pub issuer: &'a str,
    pub account: &'a str,
    pub algorithm: &'a str,
    pub digits: u32,
    pub period: u32,
    pub pending: &'a str,
    pub proof: &'a str,
    pub registration_message: Option<&'a str>,
    /// Offer registering a passkey or security key instead.
    pub passkey: bool,
}

pub fn enroll(f: &FormBase<'_>, e: &Enrollment<'_>, error: Option<&str>) -> String {
    let message = e.registration_message.map(|m| format!("<p class=\"note\">{}</p>", html(m))).unwrap_or_default();
    let body = format!(
        "{message}{error}<p>Scan this code with your authenticator app, or enter the secret by hand \
         (hardware tokens: program it with the token's tool).</p>{svg}\
         <p>Secret: <span class=\"secret\" id=\"secret\">{secret}</span></p>\
         <p class=\"note\">Account {account} at {issuer}; {algorithm}, {digits} digits, every {period} seconds. \
         Hardware tokens: the name shown on the token can be at most 12 letters or digits.</p>\
         <p class=\"note\">This secret is shown once. Nothing is saved until you enter a first code.</p>\
         {form}<input type=\"hidden\" name=\"pending\" value=\"{pending}\">\
         <input type=\"hidden\" name=\"proof\" value=\"{proof}\">{input}\
         <button type=\"submit\">Confirm</button></form>{passkey}",
        passkey = if e.passkey { passkey_instead(f, e.proof) } else { String::new() },
        error = error.map(alert).unwrap_or_default(),
        svg = e.qr_svg,
        secret = html(&grouped(e.secret_base32)),
        account = html(e.account),
        issuer = html(e.issuer),
        algorithm = html(e.algorithm),
        digits = e.digits,
        period = e.period,
        form = f.open("enroll"),
        pending = html(e.pending),
        proof = html(e.proof),
        input = code_input("First code from the app or token", true),
    );
    layout("Set up your second factor", &body)
}

/// The offer, on the TOTP setup page, to register a passkey instead (the
/// mail proof travels along).
fn passkey_instead(f: &FormBase<'_>, proof: &str) -> String {
    format!(
        "<div class=\"other\"><h2>Or</h2>{}<input type=\"hidden\" name=\"proof\" value=\"{}\">\
         <button type=\"submit\" id=\"passkey-instead\">Register a passkey or security key instead</button></form></div>",
        f.open("webauthn/register"),
        html(proof)
    )
}

/// The script of the passkey pages (served by the handler at `webauthn.js`).
pub const WEBAUTHN_SCRIPT: &str = include_str!("pages/webauthn.js");

/// The passkey block: the prompt's button (shown by the script), the form
/// the script posts the browser's answer with, and the messages for
/// browsers without the script or without WebAuthn.
fn webauthn_block(f: &FormBase<'_>, ceremony: &str, action: &str, fields: &str, label: &str) -> String {
    format!(
        "<div id=\"webauthn\" data-ceremony=\"{ceremony}\" data-begin=\"{base}/webauthn/begin\">\
         {form}{fields}<input type=\"hidden\" name=\"credential\" value=\"\">\
         <button type=\"button\" id=\"webauthn-start\" hidden disabled>{label}</button></form>\
         <p id=\"webauthn-status\" class=\"note\" role=\"status\" aria-live=\"polite\" hidden></p>\
         <noscript><p class=\"error\">Passkeys need JavaScript in this browser. Every other way below works \
         without it.</p></noscript></div><script src=\"{base}/webauthn.js\" defer></script>",
        base = html(f.base),
        form = f.open(action),
        label = html(label),
    )
}

/// The passkey sign-in of an enrolled user.
pub fn webauthn_sign_in(
    f: &FormBase<'_>,
    user: &str,
    error: Option<&str>,
    options: &Options,
    mail_hint: Option<&str>,
) -> String {
    let body = format!(
        "<p>Signed in at the gateway as <strong>{user}</strong>. Confirm with your passkey or security key.</p>\
         {error}{block}{others}",
        user = html(user),
        error = error.map(alert).unwrap_or_default(),
        block = webauthn_block(f, "sign-in", "webauthn", "", "Use your passkey or security key"),
        others = other_ways(f, options, mail_hint),
    );
    layout("Second sign-in step", &body)
}

/// Registering a passkey or security key: its name, then the prompt.
pub fn webauthn_register(
    f: &FormBase<'_>,
    proof: &str,
    existing: &[String],
    error: Option<&str>,
    registration_message: Option<&str>,
) -> String {
    let message = registration_message.map(|m| format!("<p class=\"note\">{}</p>", html(m))).unwrap_or_default();
    let have = if existing.is_empty() {
        String::new()
    } else {
        let items: String = existing.iter().map(|n| format!("<li>{}</li>", html(n))).collect();
        format!("<p>Already registered:</p><ul id=\"passkeys\">{items}</ul>")
    };
    let fields = format!(
        "<input type=\"hidden\" name=\"proof\" value=\"{}\">\
         <label for=\"name\">Name (to tell your keys apart)</label>\
         <input id=\"name\" name=\"name\" type=\"text\" maxlength=\"40\" placeholder=\"Laptop, YubiKey…\">",
        html(proof)
    );
    let body = format!(
        "{message}{error}<p>Register a passkey on this device, or a security key. Your browser will ask you to \
         confirm with your fingerprint, face, PIN or by touching the key.</p>{have}{block}\
         <p><a href=\"{back}\">Back</a></p>",
        error = error.map(alert).unwrap_or_default(),
        block = webauthn_block(f, "register", "webauthn/register", &fields, "Register"),
        back = f.link(""),
    );
    layout("Add a passkey or security key", &body)
}

/// After a registration: the recovery codes (if new ones were issued) and
/// the way on, which signs in with the new key.
pub fn passkey_added(name: &str, codes: &[String], continue_to: &str) -> String {
    let list = if codes.is_empty() {
        String::new()
    } else {
        let items: String = codes.iter().map(|c| format!("<li>{}</li>", html(c))).collect();
        format!(
            "<p>Save these recovery codes somewhere safe. Each one lets you in once if you lose your passkey. \
             They are shown only now.</p><ol class=\"codes\" id=\"recovery-codes\">{items}</ol>"
        )
    };
    let body = format!(
        "<p>Your passkey or security key <strong id=\"passkey-name\">{}</strong> is registered. Continue to \
         sign in with it.</p>{list}<p><a id=\"continue\" href=\"{}\">Continue</a></p>",
        html(name),
        html(continue_to)
    );
    layout("Passkey added", &body)
}

/// After enrollment: the recovery codes, once, and the way on.
pub fn enrolled(codes: &[String], continue_to: &str) -> String {
    let list = if codes.is_empty() {
        String::new()
    } else {
        let items: String = codes.iter().map(|c| format!("<li>{}</li>", html(c))).collect();
        format!(
            "<p>Save these recovery codes somewhere safe. Each one lets you in once if you lose your app or token. \
             They are shown only now.</p><ol class=\"codes\" id=\"recovery-codes\">{items}</ol>"
        )
    };
    let body = format!(
        "<p>Your second factor is set up.</p>{list}<p><a id=\"continue\" href=\"{}\">Continue</a></p>",
        html(continue_to)
    );
    layout("All set", &body)
}

/// `until`: when the lock ends (UTC text) and in how many minutes; `None`:
/// only an administrator can lift it.
pub fn locked(until: Option<(&str, u64)>) -> String {
    let when = match until {
        Some((t, minutes)) => format!(
            "You can try again in about {} (after {} UTC). If you need access sooner, contact your administrator.",
            plural(minutes.max(1), "minute"),
            html(t)
        ),
        None => "An administrator must unlock your account: please contact them.".to_string(),
    };
    layout("Account locked", &format!("{}<p>{when}</p>", alert("Too many wrong codes were entered for your account.")))
}

/// `1 minute`, `3 minutes`.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A base32 secret in groups of four, as people type it (apps ignore the spaces).
fn grouped(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join(" ")
}

/// The short page Apache sends with an error status of the access check.
pub fn error(status: u16, title: &str, message: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} {title}</title></head>\
         <body><h1>{title}</h1><p>{message}</p></body></html>\n",
        title = html(title),
        message = html(message),
    )
}

/// The directory does not answer: one page, wherever the request was
/// refused (the access check or a step of the challenge).
pub fn directory_down() -> String {
    message(
        "Sign-in temporarily unavailable",
        "The second sign-in step cannot reach its directory right now. Please try again in a minute.",
        None,
    )
}

/// A plain message page (errors, expired links).
pub fn message(title: &str, text: &str, link: Option<(&str, &str)>) -> String {
    let link = link.map(|(href, label)| format!("<p><a href=\"{}\">{}</a></p>", html(href), html(label)));
    layout(title, &format!("<p>{}</p>{}", html(text), link.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<script>alert(1)</script>\"'&";

    fn base<'a>(r: &'a str) -> FormBase<'a> {
        FormBase { base: "/2fa", csrf: "c\"sr<f", return_token: r }
    }

    fn all_options() -> Options {
        Options {
            email: true,
            recovery: true,
            enroll: EnrollOffer::ByMail,
            passkey: true,
            totp: true,
            enroll_passkey: true,
        }
    }

    fn enrollment<'a>() -> Enrollment<'a> {
        Enrollment {
            qr_svg: "<svg></svg>",
            secret_base32: "JBSWY3DPEHPK3PXP",
            issuer: HOSTILE,
            account: HOSTILE,
            algorithm: "SHA1",
            digits: 6,
            period: 30,
            pending: HOSTILE,
            proof: HOSTILE,
            registration_message: Some(HOSTILE),
            passkey: true,
        }
    }

    /// Every page a user can be shown, with hostile text wherever a value
    /// from outside goes.
    fn every_page() -> Vec<(&'static str, String)> {
        let f = base(HOSTILE);
        vec![
            ("totp", totp(&f, HOSTILE, Some(HOSTILE), &all_options(), Some(HOSTILE))),
            ("choose", choose(&f, HOSTILE, Some(HOSTILE), &all_options(), Some(HOSTILE))),
            ("email", email_code(&f, HOSTILE, Some(HOSTILE), Some(HOSTILE))),
            ("recovery", recovery(&f, Some(HOSTILE))),
            ("enroll", enroll(&f, &enrollment(), Some(HOSTILE))),
            ("enrolled", enrolled(&[HOSTILE.to_string()], HOSTILE)),
            ("locked", locked(Some((HOSTILE, 3)))),
            ("message", message(HOSTILE, HOSTILE, Some((HOSTILE, HOSTILE)))),
            ("error", error(403, HOSTILE, HOSTILE)),
            ("directory", directory_down()),
            ("passkey", webauthn_sign_in(&f, HOSTILE, Some(HOSTILE), &all_options(), Some(HOSTILE))),
            ("passkey-register", webauthn_register(&f, HOSTILE, &[HOSTILE.to_string()], Some(HOSTILE), Some(HOSTILE))),
            ("passkey-added", passkey_added(HOSTILE, &[HOSTILE.to_string()], HOSTILE)),
        ]
    }

    /// The passkey pages load the handler's script, nothing inline.
    const SCRIPTED: [&str; 2] = ["passkey", "passkey-register"];

    #[test]
    fn values_from_outside_are_escaped_on_every_page() {
        for (name, page) in every_page() {
            let scripts = page.matches("<script").count();
            let expected = usize::from(SCRIPTED.contains(&name));
            assert_eq!(scripts, expected, "{name}: {page}");
            if expected == 1 {
                assert!(page.contains("<script src=\"/2fa/webauthn.js\" defer></script>"), "{name}: {page}");
            }
            assert!(!page.contains("\"'&\""), "{name}");
            if name != "directory" {
                assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"), "{name}: {page}");
            }
        }
    }

    #[test]
    fn the_code_forms_name_their_input_code_and_carry_the_csrf_and_return_tokens() {
        let f = base("r-token");
        let forms = [
            ("totp", totp(&f, "alice", None, &all_options(), None), "/2fa/totp"),
            ("email", email_code(&f, "login", None, None), "/2fa/email"),
            ("recovery", recovery(&f, None), "/2fa/recovery"),
            ("enroll", enroll(&f, &enrollment(), None), "/2fa/enroll"),
        ];
        for (name, page, action) in forms {
            assert!(page.contains(&format!("<form method=\"post\" action=\"{action}\">")), "{name}: {page}");
            assert!(page.contains("<input id=\"code\" name=\"code\" type=\"text\" autocomplete=\"one-time-code\""));
            assert!(page.contains("name=\"csrf\" value=\"c&quot;sr&lt;f\""), "{name}");
            assert!(page.contains("name=\"r\" value=\"r-token\""), "{name}");
        }
        // Recovery codes hold letters: no numeric keyboard for them.
        assert!(!recovery(&f, None).contains("inputmode=\"numeric\""));
        assert!(totp(&f, "alice", None, &all_options(), None).contains("inputmode=\"numeric\""));
    }

    #[test]
    fn the_passkey_pages_allow_only_the_handlers_own_script() {
        let csp = crate::policy::SCRIPTED_PAGE_CSP;
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe-eval"), "{csp}");
        assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
        assert!(csp.contains("connect-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        let f = base("r-token");
        let page = webauthn_sign_in(&f, "alice", None, &all_options(), None);
        assert!(page.contains("<form method=\"post\" action=\"/2fa/webauthn\">"), "{page}");
        assert!(page.contains("data-begin=\"/2fa/webauthn/begin\""), "{page}");
        assert!(page.contains("<noscript>"), "{page}");
        // The script does not run inline code or handlers.
        assert!(!WEBAUTHN_SCRIPT.contains("eval(") && !WEBAUTHN_SCRIPT.contains("innerHTML"));
        let register = webauthn_register(&f, "proof-token", &[], None, None);
        assert!(register.contains("action=\"/2fa/webauthn/register\""), "{register}");
        assert!(register.contains("name=\"proof\" value=\"proof-token\""), "{register}");
    }

    #[test]
    fn the_pages_need_no_script_and_the_policy_allows_none() {
        let csp = crate::policy::PAGE_HEADERS
            .iter()
            .find(|(name, _)| *name == c"Content-Security-Policy")
            .map(|(_, value)| *value)
            .unwrap();
        assert!(csp.starts_with("default-src 'none'") && !csp.contains("script-src"), "{csp}");
        assert!(csp.contains("form-action 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        for (name, page) in every_page().into_iter().filter(|(name, _)| !SCRIPTED.contains(name)) {
            assert!(!page.contains("<script"), "{name}");
            assert!(!page.contains("onclick=") && !page.contains("onload="), "{name}");
            assert!(!page.contains("javascript:"), "{name}");
            assert!(page.starts_with("<!DOCTYPE html>"), "{name}");
        }
    }

    #[test]
    fn one_directory_page_for_the_access_check_and_the_challenge() {
        let page = directory_down();
        assert!(page.contains("<h1>Sign-in temporarily unavailable</h1>"));
        assert!(page.contains("cannot reach its directory"));
    }

    #[test]
    fn counts_read_naturally() {
        assert_eq!(plural(1, "attempt"), "1 attempt");
        assert_eq!(plural(4, "attempt"), "4 attempts");
        assert!(locked(Some(("2026-12-04 10:00:00", 0))).contains("about 1 minute"));
        assert!(locked(None).contains("An administrator must unlock"));
    }
}
