//! Self-tests of the integration-test harness (the testkit crate): slapd with the
//! twofactor schema and ACLs, smtp-sink, and the schema files themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use testkit as common;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::process::{test_dir, ServerProcess};
use common::slapd::{schema_file, schema_ldif_file, spawn_slapd, Slapd};
use common::smtp::SmtpSink;

fn entry_count(ldif: &str) -> usize {
    ldif.lines().filter(|l| l.starts_with("dn:")).count()
}

#[test]
fn slapd_schema_acls_and_exact_value_modifies() {
    let dir = test_dir("selftest-slapd-");
    let mut slapd = Slapd::start(dir.path());
    let alice = slapd.user_dn("alice");
    let carol = slapd.user_dn("carol");
    let (service, service_pw) = (slapd.service_dn.clone(), slapd.service_password.clone());

    assert!(slapd.attr_values(&alice, "objectClass").contains(&"twoFactorUser".to_string()));
    assert!(!slapd.attr_values(&carol, "objectClass").contains(&"twoFactorUser".to_string()));
    assert_eq!(slapd.attr_values(&alice, "mail"), ["alice@example.test"]);

    // The service account adds the auxiliary class and a first value.
    let first = r#"v1:{"session":"AbC","expires":1}"#;
    slapd
        .modify_ldif_as(
            &service,
            &service_pw,
            &format!(
                "dn: {carol}\nchangetype: modify\nadd: objectClass\nobjectClass: twoFactorUser\n-\n\
                 add: twoFactorCompletion\ntwoFactorCompletion: {first}\n"
            ),
        )
        .expect("service adds twoFactorUser and a completion to carol");
    assert!(slapd.attr_values(&carol, "objectClass").contains(&"twoFactorUser".to_string()));
    assert_eq!(slapd.attr_values(&carol, "twoFactorCompletion"), [first]);

    // A value-exact delete that differs only in case matches nothing under
    // caseExactMatch: the whole modify fails, nothing changes.
    let swap = |old: &str, new: &str| {
        format!(
            "dn: {carol}\nchangetype: modify\ndelete: twoFactorCompletion\ntwoFactorCompletion: {old}\n-\n\
             add: twoFactorCompletion\ntwoFactorCompletion: {new}\n"
        )
    };
    let second = r#"v1:{"session":"XyZ","expires":2}"#;
    let err = slapd
        .modify_ldif_as(&service, &service_pw, &swap(&first.to_lowercase(), second))
        .expect_err("case-folded delete must not match");
    assert!(err.contains("No such attribute (16)"), "{err}");
    assert_eq!(slapd.attr_values(&carol, "twoFactorCompletion"), [first]);

    // Compare-and-swap with the exact value succeeds...
    slapd.modify_ldif_as(&service, &service_pw, &swap(first, second)).expect("exact delete + add");
    assert_eq!(slapd.attr_values(&carol, "twoFactorCompletion"), [second]);
    // ...and repeating it (stale old value) fails without adding anything.
    let err = slapd
        .modify_ldif_as(&service, &service_pw, &swap(first, "v1:{}"))
        .expect_err("stale compare-and-swap must fail");
    assert!(err.contains("No such attribute (16)"), "{err}");
    assert_eq!(slapd.attr_values(&carol, "twoFactorCompletion"), [second]);

    // Two values that differ only in case are distinct values.
    slapd
        .modify_ldif_as(
            &service,
            &service_pw,
            &format!(
                "dn: {carol}\nchangetype: modify\nadd: twoFactorRecovery\n\
                 twoFactorRecovery: v1:AbCd\ntwoFactorRecovery: v1:aBcD\n"
            ),
        )
        .expect("case-distinct recovery values");
    assert_eq!(slapd.attr_values(&carol, "twoFactorRecovery").len(), 2);

    // SINGLE-VALUE is enforced.
    let err = slapd
        .modify_ldif_as(
            &service,
            &service_pw,
            &format!("dn: {carol}\nchangetype: modify\nadd: twoFactorTOTP\ntwoFactorTOTP: v1:a\ntwoFactorTOTP: v1:b\n"),
        )
        .expect_err("two values of a SINGLE-VALUE attribute");
    assert!(err.contains("Constraint violation (19)"), "{err}");

    // The service account may not write anything else...
    let err = slapd
        .modify_ldif_as(&service, &service_pw, &format!("dn: {carol}\nchangetype: modify\nreplace: cn\ncn: Mallory\n"))
        .expect_err("service must not write cn");
    assert!(err.contains("Insufficient access (50)"), "{err}");
    assert_eq!(slapd.attr_values(&carol, "cn"), ["Carol Example"]);
    // ...nor twoFactor* attributes outside ou=people.
    let err = slapd
        .modify_ldif_as(
            &service,
            &service_pw,
            &format!(
                "dn: uid=dup,ou=others,{}\nchangetype: modify\nadd: twoFactorFailures\ntwoFactorFailures: v1:1\n",
                slapd.base_dn
            ),
        )
        .expect_err("service must not write outside ou=people");
    assert!(err.contains("Insufficient access (50)"), "{err}");

    // The service account reads entries, but not passwords.
    let found =
        slapd.search_as(&service, &service_pw, "(uid=alice)", &["mail", "userPassword"]).expect("service search");
    assert_eq!(entry_count(&found), 1, "{found}");
    assert!(found.contains("mail: alice@example.test"), "{found}");
    assert!(!found.contains("userPassword"), "{found}");

    // Users can bind (password checked) but read nothing, not even the base
    // entry (hence "No such object"); anonymous neither.
    let sees_nothing = |result: Result<String, String>| match result {
        Ok(found) => assert_eq!(entry_count(&found), 0, "{found}"),
        Err(err) => assert!(err.contains("No such object (32)"), "{err}"),
    };
    let alice_pw = slapd.user_password("alice");
    sees_nothing(slapd.search_as(&alice, &alice_pw, "(uid=*)", &[]));
    let err = slapd.search_as(&alice, "wrong", "(uid=*)", &[]).expect_err("wrong password");
    assert!(err.contains("Invalid credentials (49)"), "{err}");
    sees_nothing(slapd.search_as("", "", "(uid=*)", &[]));

    slapd.stop();
    assert!(!slapd.is_running());
}

#[test]
fn slapd_duplicate_uid_returns_two_entries() {
    let dir = test_dir("selftest-dup-");
    let mut slapd = Slapd::start(dir.path());
    let found = slapd.search("(uid=dup)", &["dn"]);
    assert_eq!(entry_count(&found), 2, "{found}");
    assert!(found.contains("ou=people") && found.contains("ou=others"), "{found}");
    slapd.stop();
}

#[test]
fn slapd_restart_keeps_port_and_data() {
    let dir = test_dir("selftest-restart-");
    let mut slapd = Slapd::start(dir.path());
    let bob = slapd.user_dn("bob");
    slapd.modify_ldif(&format!(
        "dn: {bob}\nchangetype: modify\nadd: twoFactorTOTPLastStep\ntwoFactorTOTPLastStep: v1:58000000\n"
    ));
    let (port, url, pid) = (slapd.port, slapd.url.clone(), slapd.pid());

    slapd.restart();
    assert_eq!((slapd.port, slapd.url.as_str()), (port, url.as_str()));
    assert_ne!(slapd.pid(), pid);
    assert_eq!(slapd.attr_values(&bob, "twoFactorTOTPLastStep"), ["v1:58000000"]);

    // A crash (SIGKILL) and a start on the same port also keep the data.
    slapd.kill();
    assert!(!slapd.is_running());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "port still open after kill");
    slapd.start_again();
    assert_eq!(slapd.attr_values(&bob, "twoFactorTOTPLastStep"), ["v1:58000000"]);
    slapd.stop();
}

#[test]
fn two_slapd_instances_run_in_parallel() {
    let dir = test_dir("selftest-parallel-");
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let starter = |d: std::path::PathBuf| std::thread::spawn(move || Slapd::start(&d));
    let (a, b) = (starter(one), starter(two));
    let (mut a, mut b) = (a.join().expect("first slapd"), b.join().expect("second slapd"));
    assert_ne!(a.port, b.port);
    assert_ne!(a.pid(), b.pid());

    let alice = a.user_dn("alice");
    a.modify_ldif(&format!(
        "dn: {alice}\nchangetype: modify\nadd: twoFactorFailures\ntwoFactorFailures: v1:only-in-a\n"
    ));
    assert_eq!(a.attr_values(&alice, "twoFactorFailures"), ["v1:only-in-a"]);
    assert!(b.attr_values(&alice, "twoFactorFailures").is_empty());
    a.stop();
    // The other one is unaffected.
    assert_eq!(entry_count(&b.search("(uid=alice)", &["dn"])), 1);
    b.stop();
}

/// A minimal SMTP client: each command's reply code is checked.
struct SmtpClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl SmtpClient {
    fn connect(port: u16) -> SmtpClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to smtp-sink");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut client = SmtpClient { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream };
        client.expect(220);
        client
    }

    /// Reads a (possibly multi-line) reply; panics unless its code is `code`.
    fn expect(&mut self, code: u16) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("read SMTP reply");
            assert!(line.len() >= 4, "short SMTP reply {line:?} after {reply:?}");
            reply.push_str(&line);
            if line.as_bytes()[3] == b' ' {
                break;
            }
        }
        assert!(reply.starts_with(&code.to_string()), "expected {code}, got {reply:?}");
        reply
    }

    fn command(&mut self, command: &str, code: u16) -> String {
        self.writer.write_all(format!("{command}\r\n").as_bytes()).expect("send SMTP command");
        self.expect(code)
    }

    fn send(&mut self, from: &str, to: &str, subject: &str, body: &str) {
        self.command(&format!("MAIL FROM:<{from}>"), 250);
        self.command(&format!("RCPT TO:<{to}>"), 250);
        self.command("DATA", 354);
        let mut data = format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\n");
        for line in body.lines() {
            // Dot-stuffing.
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        self.writer.write_all(data.as_bytes()).expect("send message");
        self.expect(250);
    }
}

#[test]
fn smtp_sink_keeps_messages_in_order() {
    let dir = test_dir("selftest-smtp-");
    let mut sink = SmtpSink::start(dir.path());
    assert!(sink.messages().is_empty());

    let mut client = SmtpClient::connect(sink.port);
    client.command("EHLO selftest.example.test", 250);
    client.send(
        "twofactor@example.test",
        "alice@example.test",
        "Your passcode",
        "Your passcode is 123456.\n.leading dot",
    );
    // Acknowledged mail is already in the dump: no waiting needed.
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let first = &messages[0];
    assert!(first.contains("\nSubject: Your passcode\n"), "{first}");
    assert!(first.contains("X-Rcpt-Args: <alice@example.test>\n"), "{first}");
    assert!(first.contains("X-Mail-Args: <twofactor@example.test>\n"), "{first}");
    assert!(first.contains("\nYour passcode is 123456.\n.leading dot\n"), "{first}");

    // Several messages in one session and from another connection.
    for i in 2..=4 {
        client.send("twofactor@example.test", "bob@example.test", &format!("Message {i}"), "x");
    }
    client.command("QUIT", 221);
    let mut other = SmtpClient::connect(sink.port);
    other.command("HELO other", 250);
    other.send("a@example.test", "carol@example.test", "Message 5", "y");
    other.command("QUIT", 221);

    let messages = sink.wait_for_messages(5, Duration::from_secs(10));
    assert_eq!(messages.len(), 5);
    for (i, message) in messages.iter().enumerate().skip(1) {
        assert!(message.contains(&format!("Subject: Message {}\n", i + 1)), "{i}: {message}");
    }
    sink.stop();
    assert!(!sink.is_running());
}

/// The definitions of the schema file, comments and whitespace normalized.
fn schema_definitions() -> BTreeSet<String> {
    let text = std::fs::read_to_string(schema_file()).unwrap();
    let text: String = text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    let mut defs = BTreeSet::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        if (word.eq_ignore_ascii_case("attributetype") || word.eq_ignore_ascii_case("objectclass"))
            && current.is_empty()
        {
            current = format!("{}:", word.to_ascii_lowercase());
            continue;
        }
        current.push(' ');
        current.push_str(word);
        // A definition ends with the ")" that closes its first "(".
        let depth: i32 = current.chars().map(|c| i32::from(c == '(') - i32::from(c == ')')).sum();
        if depth == 0 && current.ends_with(')') {
            defs.insert(std::mem::take(&mut current));
        }
    }
    assert!(current.is_empty(), "unterminated definition: {current}");
    defs
}

/// The definitions of the LDIF file (unfolded), whitespace normalized.
fn ldif_definitions() -> BTreeSet<String> {
    let text = std::fs::read_to_string(schema_ldif_file()).unwrap();
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        match line.strip_prefix(' ') {
            Some(cont) => lines.last_mut().expect("continuation of nothing").push_str(cont),
            None => lines.push(line.to_string()),
        }
    }
    let mut defs = BTreeSet::new();
    for line in lines {
        let (attr, value) = match line.split_once(": ") {
            Some(pair) => pair,
            None => continue,
        };
        let kind = match attr {
            "olcAttributeTypes" => "attributetype",
            "olcObjectClasses" => "objectclass",
            _ => continue,
        };
        defs.insert(format!("{kind}: {}", value.split_whitespace().collect::<Vec<_>>().join(" ")));
    }
    defs
}

#[test]
fn schema_files_define_the_same_schema() {
    let (schema, ldif) = (schema_definitions(), ldif_definitions());
    assert_eq!(schema.len(), 9, "{schema:#?}");
    assert_eq!(schema, ldif);
    for def in &schema {
        assert!(def.contains("2.25.264553228879727479037717307863733081609."), "{def}");
        if def.starts_with("attributetype") {
            assert!(def.contains(" EQUALITY caseExactMatch "), "{def}");
            assert!(def.contains(" SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 "), "{def}");
            assert!(def.contains(" DESC '"), "{def}");
        }
    }
}

/// `ldapi://` URL of a socket path (every byte but [A-Za-z0-9._-] escaped).
fn ldapi_url(path: &std::path::Path) -> String {
    let mut url = String::from("ldapi://");
    for &b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

#[test]
fn schema_ldif_loads_into_a_cn_config_server() {
    let dir = test_dir("selftest-cnconfig-");
    let base = dir.path();
    std::fs::create_dir_all(base.join("slapd.d")).unwrap();
    std::fs::create_dir_all(base.join("data")).unwrap();
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let conf = format!(
        "include /etc/ldap/schema/core.schema\n\
         include /etc/ldap/schema/cosine.schema\n\
         include /etc/ldap/schema/inetorgperson.schema\n\
         pidfile {d}/slapd.pid\n\
         modulepath /usr/lib/ldap\n\
         moduleload back_mdb\n\
         database config\n\
         access to * by dn.exact=gidNumber={gid}+uidNumber={uid},cn=peercred,cn=external,cn=auth manage by * none\n\
         database mdb\n\
         suffix dc=example,dc=test\n\
         rootdn cn=admin,dc=example,dc=test\n\
         rootpw admin-secret\n\
         directory {d}/data\n",
        d = base.display()
    );
    std::fs::write(base.join("slapd.conf"), conf).unwrap();
    // -n 0: convert and check the config database only (slaptest opens the
    // others read-only, which fails for a new, empty mdb).
    let out = Command::new("slaptest")
        .arg("-n")
        .arg("0")
        .arg("-f")
        .arg(base.join("slapd.conf"))
        .arg("-F")
        .arg(base.join("slapd.d"))
        .output()
        .expect("run slaptest");
    assert!(out.status.success(), "slaptest: {}", String::from_utf8_lossy(&out.stderr));

    let url = ldapi_url(&base.join("ldapi"));
    let config = [OsString::from("-F"), base.join("slapd.d").into_os_string()];
    let mut slapd: ServerProcess =
        spawn_slapd(&url, &config, &base.join("slapd.log")).unwrap_or_else(|e| panic!("{e}"));

    let ldap = |tool: &str, args: &[&str], input: Option<&str>| {
        let mut cmd = Command::new(tool);
        cmd.env("LDAPNOINIT", "1").args(["-H", &url]).args(args);
        if let Some(input) = input {
            let file = base.join("input.ldif");
            std::fs::write(&file, input).unwrap();
            cmd.arg("-f").arg(file);
        }
        let out = cmd.output().expect("run ldap tool");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = Command::new("ldapadd")
        .env("LDAPNOINIT", "1")
        .args(["-Q", "-Y", "EXTERNAL", "-H", &url, "-f"])
        .arg(schema_ldif_file())
        .output()
        .expect("run ldapadd");
    assert!(out.status.success(), "ldapadd -Y EXTERNAL: {}", String::from_utf8_lossy(&out.stderr));

    let schemas = ldap(
        "ldapsearch",
        &["-Q", "-Y", "EXTERNAL", "-LLL", "-b", "cn=schema,cn=config", "(cn=*twofactor)", "dn"],
        None,
    );
    assert!(schemas.contains("twofactor,cn=schema,cn=config"), "{schemas}");

    // The loaded schema is usable at once.
    let admin = ["-x", "-D", "cn=admin,dc=example,dc=test", "-w", "admin-secret"];
    ldap(
        "ldapadd",
        &admin,
        Some(
            "dn: dc=example,dc=test\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
             dn: uid=alice,dc=example,dc=test\nobjectClass: inetOrgPerson\nobjectClass: twoFactorUser\n\
             uid: alice\ncn: Alice\nsn: Example\ntwoFactorRecovery: v1:Ab\ntwoFactorRecovery: v1:aB\n",
        ),
    );
    let found = ldap(
        "ldapsearch",
        &[&admin[..], &["-LLL", "-b", "dc=example,dc=test", "(twoFactorRecovery=v1:aB)", "dn"]].concat(),
        None,
    );
    assert_eq!(entry_count(&found), 1, "{found}");
    slapd.stop();
}

#[test]
fn slapd_reports_a_port_that_is_taken() {
    let dir = test_dir("selftest-taken-");
    let mut slapd = Slapd::start(dir.path());
    // A second slapd on the same port must fail to bind and say so: Slapd
    // relies on this to retry with another port.
    let config = [OsString::from("-f"), slapd.conf_path().into_os_string()];
    let err = match spawn_slapd(&format!("{}/", slapd.url), &config, &dir.path().join("second.log")) {
        Ok(mut second) => {
            second.stop();
            panic!("a second slapd started on port {}", slapd.port);
        }
        Err(err) => err,
    };
    assert!(err.contains("Address already in use"), "{err}");
    assert!(slapd.is_running());
    slapd.stop();
}
