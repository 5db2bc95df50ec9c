//! A minimal browser for the challenge pages over the raw HTTP client: it
//! keeps cookies, sends the gateway's identity (or Basic credentials to the
//! stand-in gateway), and reads forms' hidden fields.

use crate::http::{Request, Response, BROWSER_ACCEPT};

pub struct Session {
    pub port: u16,
    /// Headers sent with every request (identity or Authorization).
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<(String, String)>,
}

impl Session {
    /// Straight to the protected server, as the gateway would send `user`.
    pub fn direct(port: u16, user: &str) -> Session {
        Session { port, headers: vec![("X-Remote-User".into(), user.into())], cookies: Vec::new() }
    }

    /// Through the stand-in gateway with Basic credentials.
    pub fn via_gateway(port: u16, user: &str, password: &str) -> Session {
        Session {
            port,
            headers: vec![("Authorization".into(), crate::http::basic_auth(user, password))],
            cookies: Vec::new(),
        }
    }

    fn request(&self, method: &str, path: &str) -> Request {
        let mut req = Request::new(method, path).header("Accept", BROWSER_ACCEPT);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("Cookie", &jar.join("; "));
        }
        req
    }

    fn keep_cookies(&mut self, response: &Response) {
        for header in response.header_all("Set-Cookie") {
            let pair = header.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(n, _)| n != name);
                self.cookies.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
    }

    pub fn get(&mut self, path: &str) -> Response {
        let response = self.request("GET", path).send(self.port);
        self.keep_cookies(&response);
        response
    }

    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        let response = self
            .request("POST", path)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.join("&").as_bytes())
            .send(self.port);
        self.keep_cookies(&response);
        response
    }

    /// GET, following redirects (at most 5).
    pub fn follow(&mut self, path: &str) -> Response {
        let mut response = self.get(path);
        for _ in 0..5 {
            match (response.status, response.header("Location")) {
                (301 | 302 | 303 | 307, Some(location)) => {
                    let location = location.to_string();
                    response = self.get(&location);
                }
                _ => break,
            }
        }
        response
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A form on a page: its action and hidden fields.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

impl Form {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The hidden fields, those named in `extra` replaced by its values.
    pub fn replacing<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut fields: Vec<(&str, &str)> = self
            .fields
            .iter()
            .filter(|(n, _)| !extra.iter().any(|(e, _)| e == n))
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        fields.extend_from_slice(extra);
        fields
    }

    /// The hidden fields plus `extra`, ready for `Session::post`.
    pub fn with<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut fields: Vec<(&str, &str)> = self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        fields.extend_from_slice(extra);
        fields
    }
}

/// Every `<form>` of a page whose action ends with `action_suffix`.
pub fn forms(html: &str, action_suffix: &str) -> Vec<Form> {
    html.split("<form ")
        .skip(1)
        .filter_map(|chunk| {
            let chunk = chunk.split("</form>").next()?;
            let action = unescape(&attr(chunk, "action")?);
            if !action.ends_with(action_suffix) {
                return None;
            }
            let fields = chunk
                .split("<input ")
                .skip(1)
                .filter(|i| i.contains("type=\"hidden\""))
                .filter_map(|i| Some((attr(i, "name")?, unescape(&attr(i, "value").unwrap_or_default()))))
                .collect();
            Some(Form { action, fields })
        })
        .collect()
}

/// The first form whose action ends with `action_suffix`; panics with the page otherwise.
pub fn form(html: &str, action_suffix: &str) -> Form {
    forms(html, action_suffix).into_iter().next().unwrap_or_else(|| panic!("no form for {action_suffix} in:\n{html}"))
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_string())
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// The text of the element with `id` (tags stripped).
pub fn element_text(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let open_end = html[start..].find('>')? + start + 1;
    let mut depth = 0usize;
    let mut out = String::new();
    let mut in_tag = false;
    for (i, c) in html[open_end..].char_indices() {
        match c {
            '<' => {
                in_tag = true;
                if html[open_end + i..].starts_with("</") {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                } else {
                    depth += 1;
                }
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    Some(unescape(out.trim()))
}

/// The `<li>` texts of the list with `id`.
pub fn list_items(html: &str, id: &str) -> Vec<String> {
    let Some(start) = html.find(&format!("id=\"{id}\"")) else { return Vec::new() };
    let rest = &html[start..];
    let end = rest.find("</ol>").or_else(|| rest.find("</ul>")).unwrap_or(rest.len());
    rest[..end].split("<li>").skip(1).map(|item| unescape(item.split("</li>").next().unwrap_or("").trim())).collect()
}

/// The passcode in a mail sent by the module (its only 8-digit word).
pub fn passcode_in(mail: &str) -> Option<String> {
    mail.split_whitespace().find(|w| w.len() == 8 && w.bytes().all(|b| b.is_ascii_digit())).map(str::to_string)
}

/// The form for `action_suffix` whose hidden `field` is `value`.
pub fn form_where(html: &str, action_suffix: &str, field: &str, value: &str) -> Form {
    forms(html, action_suffix)
        .into_iter()
        .find(|f| f.field(field) == Some(value))
        .unwrap_or_else(|| panic!("no form for {action_suffix} with {field}={value} in:\n{html}"))
}
