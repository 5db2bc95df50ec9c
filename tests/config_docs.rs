//! The three lists of directives agree: the table Apache registers
//! (c-shim/mod_twofactor.c), the list the configuration parser knows
//! (`directives::ALL`), and the shipped example configuration
//! (apache-conf/twofactor.conf), where every directive is documented at the
//! start of a line with a value the parser accepts. No processes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::collections::BTreeSet;
use std::path::Path;

use twofactor_core::config::directives::{Context, ALL};
use twofactor_core::config::{apply, DirConfig, ServerConfig, Target};

/// Directives compiled into test builds only; never documented.
const TEST_ONLY: &[&str] = &["TwoFactorTestPanic", "TwoFactorTestNoDirConfig"];

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `(name, context)` of every `TF_SERVER("Name", ...)` / `TF_SCOPED("Name", ...)`
/// entry of the C directive table, test-only ones left out.
fn c_table() -> Vec<(String, Context)> {
    let source = read("c-shim/mod_twofactor.c");
    let mut entries = Vec::new();
    for line in source.lines() {
        let line = line.trim_start();
        let (context, rest) = if let Some(rest) = line.strip_prefix("TF_SERVER(\"") {
            (Context::Server, rest)
        } else if let Some(rest) = line.strip_prefix("TF_SCOPED(\"") {
            (Context::Scoped, rest)
        } else {
            continue;
        };
        let name = rest.split('"').next().unwrap_or_default();
        if !TEST_ONLY.contains(&name) {
            entries.push((name.to_string(), context));
        }
    }
    entries
}

/// The first word of a line, after leading blanks and `#` comment marks.
fn first_word(line: &str) -> Option<&str> {
    line.trim_start().trim_start_matches('#').split_whitespace().next()
}

/// The arguments after the directive name, split as Apache does.
fn arguments(line: &str) -> Vec<String> {
    let mut words = twofactor_core::apacheconf::split_words(line.trim_start().trim_start_matches('#'));
    if !words.is_empty() {
        words.remove(0);
    }
    words
}

#[test]
fn c_table_and_directive_list_name_the_same_directives_in_the_same_contexts() {
    let table = c_table();
    assert!(table.len() >= 30, "the C directive table was not parsed: {table:?}");

    let c_names: BTreeSet<&str> = table.iter().map(|(n, _)| n.as_str()).collect();
    let rust_names: BTreeSet<&str> = ALL.iter().map(|(n, _)| *n).collect();
    assert_eq!(c_names.len(), table.len(), "a directive is listed twice in the C table");
    assert_eq!(rust_names.len(), ALL.len(), "a directive is listed twice in directives::ALL");

    let only_c: Vec<_> = c_names.difference(&rust_names).collect();
    let only_rust: Vec<_> = rust_names.difference(&c_names).collect();
    assert!(only_c.is_empty(), "in c-shim/mod_twofactor.c but not in directives::ALL: {only_c:?}");
    assert!(only_rust.is_empty(), "in directives::ALL but not in c-shim/mod_twofactor.c: {only_rust:?}");

    for (name, context) in &table {
        let (_, expected) = ALL.iter().find(|(n, _)| n == name).expect("compared above");
        let macro_name = |c: &Context| if *c == Context::Scoped { "TF_SCOPED" } else { "TF_SERVER" };
        assert_eq!(
            context,
            expected,
            "{name}: the C table uses {} but directives::ALL says {expected:?} (expected {})",
            macro_name(context),
            macro_name(expected),
        );
    }
}

#[test]
fn every_directive_is_documented_in_the_example_conf() {
    let conf = read("apache-conf/twofactor.conf");
    let missing: Vec<&str> =
        ALL.iter().map(|(n, _)| *n).filter(|name| !conf.lines().any(|line| first_word(line) == Some(name))).collect();
    assert!(
        missing.is_empty(),
        "not documented at the start of a (possibly commented) line of apache-conf/twofactor.conf: {missing:?}"
    );
}

#[test]
fn every_directive_line_of_the_example_conf_is_valid() {
    let conf = read("apache-conf/twofactor.conf");
    let mut checked = 0;
    for (number, line) in conf.lines().enumerate() {
        let Some(word) = first_word(line) else { continue };
        // Directives are written as in the table; twoFactor* words are LDAP names.
        if !word.starts_with("TwoFactor") {
            continue;
        }
        let number = number + 1;
        let Some(&(name, _)) = ALL.iter().find(|(n, _)| *n == word) else {
            panic!("apache-conf/twofactor.conf:{number}: '{word}' is not a directive (or not spelled as one)");
        };
        let args = arguments(line);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut server = ServerConfig::default();
        let mut dir = DirConfig::default();
        let result =
            apply(Target::Server { server: &mut server, dir: &mut dir }, name, &args, Path::new("/etc/apache2"));
        if let Err(e) = result {
            panic!("apache-conf/twofactor.conf:{number}: the example is refused: {e}\n{line}");
        }
        checked += 1;
    }
    assert!(checked >= ALL.len(), "only {checked} directive lines found");
}

#[test]
fn example_conf_is_a_debian_module_conf() {
    let conf = read("apache-conf/twofactor.conf");
    let active: Vec<&str> = conf.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(active.first(), Some(&"<IfModule twofactor_module>"), "the settings must be wrapped in <IfModule>");
    assert_eq!(active.last(), Some(&"</IfModule>"));
    // Apache joins a line ending in a backslash with the next one, comments included.
    for (number, line) in conf.lines().enumerate() {
        assert!(!line.trim_end().ends_with('\\'), "apache-conf/twofactor.conf:{}: ends with a backslash", number + 1);
    }

    let load = read("apache-conf/twofactor.load");
    assert_eq!(load.trim(), "LoadModule twofactor_module /usr/lib/apache2/modules/mod_twofactor.so");
}
