//! Reads the `TwoFactor*` directives out of an Apache configuration, so
//! that `twofactorctl` uses the very settings the module uses: one place
//! to configure.
//!
//! Understands what Debian's layout needs: `Include`/`IncludeOptional`
//! with wildcards, `ServerRoot`, line continuations, quoting, `${VAR}`
//! from the environment, and sections. Conditional sections (`<IfModule>`,
//! `<IfDefine>`, `<IfVersion>`, `<IfFile>`) are read as if true; a
//! `<VirtualHost>` counts only when asked for by name.

use std::fs;
use std::path::{Path, PathBuf};

use crate::config::{self, DirConfig, ServerConfig, Target};

/// The module's server-level configuration found in a file tree.
#[derive(Debug)]
pub struct Found {
    pub server: ServerConfig,
    pub server_root: PathBuf,
    /// `ServerName` of the main server (or of the virtual host asked for).
    pub server_name: Option<String>,
}

/// Reads `path` (and what it includes). With `vhost`, the directives of
/// the `<VirtualHost>` whose `ServerName` or `ServerAlias` is `vhost` are
/// merged over the main server's, as Apache does.
pub fn read(path: &Path, vhost: Option<&str>) -> Result<Found, String> {
    let server_root = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let mut reader = Reader { server_root, lines: Vec::new(), depth: 0 };
    reader.load(path)?;
    interpret(reader, vhost)
}

/// As `read`, for a configuration given as text (`label` names it in
/// messages; `Include`s are read from `server_root`).
pub fn read_text(text: &str, label: &Path, server_root: &Path, vhost: Option<&str>) -> Result<Found, String> {
    let mut reader = Reader { server_root: server_root.to_path_buf(), lines: Vec::new(), depth: 0 };
    reader.load_text(label, text)?;
    interpret(reader, vhost)
}

/// The TwoFactor* settings of the lines read.
fn interpret(reader: Reader, vhost: Option<&str>) -> Result<Found, String> {
    let lines = reader.lines;
    let server_root = reader.server_root;

    let mut main = ServerConfig::default();
    let mut main_name = None;
    let mut vhosts: Vec<(Vec<String>, ServerConfig)> = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut current_vhost: Option<(Vec<String>, ServerConfig)> = None;
    let mut scratch_dir = DirConfig::default();

    for line in &lines {
        let words = &line.words;
        let Some(first) = words.first() else { continue };
        if let Some(close) = first.strip_prefix("</") {
            let name = close.trim_end_matches('>').to_ascii_lowercase();
            if stack.last().is_some_and(|open| *open == name) {
                stack.pop();
                if name == "virtualhost" {
                    vhosts.extend(current_vhost.take());
                }
            }
            continue;
        }
        if let Some(open) = first.strip_prefix('<') {
            let name = open.trim_end_matches('>').to_ascii_lowercase();
            if name == "virtualhost" {
                current_vhost = Some((Vec::new(), ServerConfig::default()));
            }
            stack.push(name);
            continue;
        }
        let in_vhost = stack.iter().any(|s| s == "virtualhost");
        let in_dir_section = stack.iter().any(|s| {
            matches!(
                s.as_str(),
                "location"
                    | "locationmatch"
                    | "directory"
                    | "directorymatch"
                    | "files"
                    | "filesmatch"
                    | "if"
                    | "elseif"
                    | "else"
            )
        });
        let name = first.as_str();
        if name.eq_ignore_ascii_case("ServerName") || name.eq_ignore_ascii_case("ServerAlias") {
            match (&mut current_vhost, in_vhost) {
                (Some((names, _)), true) => names.extend(words[1..].iter().map(|w| host_of(w))),
                _ if name.eq_ignore_ascii_case("ServerName") => main_name = words.get(1).map(|w| host_of(w)),
                _ => {}
            }
            continue;
        }
        if !name.to_ascii_lowercase().starts_with("twofactor") {
            continue;
        }
        let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        let target_server = match (&mut current_vhost, in_vhost) {
            (Some((_, cfg)), true) => cfg,
            _ => &mut main,
        };
        let mut dir = DirConfig::default();
        let target = if in_dir_section {
            Target::Section { server: target_server, dir: &mut dir }
        } else {
            Target::Server { server: target_server, dir: &mut scratch_dir }
        };
        config::apply(target, name, &args, &server_root)
            .map_err(|e| format!("{}:{}: {e}", line.file.display(), line.number))?;
    }

    let (server, server_name) = match vhost {
        None => (main, main_name),
        Some(wanted) => {
            let (names, cfg) = vhosts
                .into_iter()
                .find(|(names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(wanted)))
                .ok_or_else(|| format!("no <VirtualHost> with ServerName or ServerAlias {wanted}"))?;
            (ServerConfig::merge(&main, &cfg), names.into_iter().next())
        }
    };
    Ok(Found { server, server_root, server_name })
}

/// `www.example.org:443` -> `www.example.org`; `https://x` -> `x`.
fn host_of(word: &str) -> String {
    let w = word.split("://").last().unwrap_or(word);
    w.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(w, |(h, _)| h).to_string()
}

struct Line {
    file: PathBuf,
    number: usize,
    words: Vec<String>,
}

/// Largest configuration file read (Apache's own are a few kilobytes).
const MAX_CONFIG_FILE_BYTES: u64 = 16 << 20;

struct Reader {
    server_root: PathBuf,
    lines: Vec<Line>,
    depth: usize,
}

impl Reader {
    fn load(&mut self, path: &Path) -> Result<(), String> {
        // A configuration file is a regular file of reasonable size: never
        // a device or a FIFO that an Include could name (reading
        // /dev/zero would never end).
        let meta = fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{}: not a regular file", path.display()));
        }
        if meta.len() > MAX_CONFIG_FILE_BYTES {
            return Err(format!("{}: larger than {MAX_CONFIG_FILE_BYTES} bytes", path.display()));
        }
        let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        self.load_text(path, &text)
    }

    fn load_text(&mut self, path: &Path, text: &str) -> Result<(), String> {
        if self.depth > 16 {
            return Err(format!("{}: Include nested too deeply", path.display()));
        }
        self.depth += 1;
        let mut logical = String::new();
        let mut start = 0;
        for (i, raw) in text.lines().enumerate() {
            if logical.is_empty() {
                start = i + 1;
            }
            if let Some(head) = raw.strip_suffix('\\') {
                logical.push_str(head);
                continue;
            }
            logical.push_str(raw);
            let line = std::mem::take(&mut logical);
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let words = split_words(&expand_env(trimmed));
            self.directive(path, start, words)?;
        }
        self.depth -= 1;
        Ok(())
    }

    fn directive(&mut self, file: &Path, number: usize, words: Vec<String>) -> Result<(), String> {
        let Some(name) = words.first() else { return Ok(()) };
        if name.eq_ignore_ascii_case("ServerRoot") {
            if let Some(root) = words.get(1) {
                self.server_root = PathBuf::from(root);
            }
            return Ok(());
        }
        let optional = name.eq_ignore_ascii_case("IncludeOptional");
        if optional || name.eq_ignore_ascii_case("Include") {
            for pattern in &words[1..] {
                let pattern = self.server_root.join(pattern);
                let files = expand_glob(&pattern);
                if files.is_empty() && !optional && !has_wildcard(&pattern) {
                    return Err(format!(
                        "{}:{number}: Include of a missing file {}",
                        file.display(),
                        pattern.display()
                    ));
                }
                for f in files {
                    self.load(&f)?;
                }
            }
            return Ok(());
        }
        self.lines.push(Line { file: file.to_path_buf(), number, words });
        Ok(())
    }
}

/// Splits a directive line into words as Apache does (`ap_getword_conf`):
/// double or single quotes group, a backslash escapes a quote inside them.
pub fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' || c == '\'' {
            chars.next();
            while let Some(ch) = chars.next() {
                match ch {
                    '\\' if chars.peek() == Some(&c) => word.extend(chars.next()),
                    ch if ch == c => break,
                    ch => word.push(ch),
                }
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                word.push(ch);
                chars.next();
            }
        }
        words.push(word);
    }
    words
}

/// `${NAME}` from the environment; unknown names stay as written.
fn expand_env(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match std::env::var(name) {
                    Ok(value) => out.push_str(&value),
                    Err(_) => out.push_str(&rest[start..start + 3 + end]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn has_wildcard(path: &Path) -> bool {
    path.to_string_lossy().contains(['*', '?', '['])
}

/// Files matching `pattern`, whose last component may hold `*` and `?`
/// (Apache's own rule for Include); a directory includes all its files.
fn expand_glob(pattern: &Path) -> Vec<PathBuf> {
    if pattern.is_dir() {
        return sorted_files(pattern, |_| true);
    }
    if !has_wildcard(pattern) {
        return if pattern.is_file() { vec![pattern.to_path_buf()] } else { Vec::new() };
    }
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else { return Vec::new() };
    let name = name.to_string_lossy().into_owned();
    sorted_files(dir, |file| wildcard_match(name.as_bytes(), file.as_bytes()))
}

fn sorted_files(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file() && keep(&e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            wildcard_match(rest, name) || (!name.is_empty() && wildcard_match(pattern, &name[1..]))
        }
        (Some((b'?', rest)), Some((_, name_rest))) => wildcard_match(rest, name_rest),
        (Some((p, rest)), Some((n, name_rest))) if p == n => wildcard_match(rest, name_rest),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(
            split_words(r#"TwoFactorRegistrationMessage "Hello \"you\" there""#),
            vec!["TwoFactorRegistrationMessage", "Hello \"you\" there"]
        );
        assert_eq!(split_words("  A  b   'c d' "), vec!["A", "b", "c d"]);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match(b"*.load", b"twofactor.load"));
        assert!(!wildcard_match(b"*.load", b"twofactor.conf"));
        assert!(wildcard_match(b"a?c", b"abc"));
        assert!(wildcard_match(b"*", b""));
    }

    #[test]
    fn environment() {
        std::env::set_var("TWOFACTOR_TEST_DIR", "/srv/x");
        assert_eq!(
            expand_env("a ${TWOFACTOR_TEST_DIR}/k ${TWOFACTOR_UNSET_VAR} ${"),
            "a /srv/x/k ${TWOFACTOR_UNSET_VAR} ${"
        );
    }

    #[test]
    fn debian_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("mods-enabled")).unwrap();
        fs::create_dir_all(root.join("sites-enabled")).unwrap();
        fs::write(
            root.join("apache2.conf"),
            format!(
                "ServerRoot \"{}\"\nServerName main.example.test\nIncludeOptional mods-enabled/*.conf\nIncludeOptional conf-enabled/*.conf\nIncludeOptional sites-enabled/*.conf\n",
                root.display()
            ),
        )
        .unwrap();
        fs::write(
            root.join("mods-enabled/twofactor.conf"),
            "<IfModule twofactor_module>\n  TwoFactorMaxAttempts 3\n  TwoFactorSecretKeyFile \\\n     keys/2fa.key\n  <Location /app>\n    TwoFactor On\n  </Location>\n</IfModule>\n",
        )
        .unwrap();
        fs::write(
            root.join("sites-enabled/site.conf"),
            "<VirtualHost *:443>\n  ServerName app.example.test:443\n  TwoFactorMaxAttempts 7\n</VirtualHost>\n",
        )
        .unwrap();
        let main = read(&root.join("apache2.conf"), None).unwrap();
        assert_eq!(main.server.max_attempts, Some(3));
        assert!(main.server.enforcement_used);
        assert_eq!(main.server.secret_key_files, Some(vec![root.join("keys/2fa.key")]));
        assert_eq!(main.server_name.as_deref(), Some("main.example.test"));
        let vhost = read(&root.join("apache2.conf"), Some("app.example.test")).unwrap();
        assert_eq!(vhost.server.max_attempts, Some(7));
        assert_eq!(vhost.server.secret_key_files, Some(vec![root.join("keys/2fa.key")]), "inherited");
        assert!(read(&root.join("apache2.conf"), Some("other.example.test")).is_err());
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.conf"), "# comment\n\nTwoFactorMaxAttempts 99\n").unwrap();
        let err = read(&dir.path().join("a.conf"), None).unwrap_err();
        assert!(
            err.ends_with("a.conf:3: TwoFactorMaxAttempts: invalid value '99': must be an integer from 1 to 20"),
            "{err}"
        );
        assert!(read(&dir.path().join("missing.conf"), None).is_err());
    }
}
