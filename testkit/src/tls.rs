//! Throwaway TLS material for tests, made with the `openssl` command-line
//! tool: a CA, and server certificates it signs for 127.0.0.1 (what every
//! test server listens on) and localhost.
//!
//! Keys are P-256 (quick to generate; GnuTLS, OpenSSL and rustls all take
//! them), unencrypted, and readable by everyone: they are made per test in
//! the test's temporary directory and vanish with it. The extensions are
//! written out in our own config file rather than taken from the system's
//! openssl.cnf, because webpki (rustls) insists on a proper v3 CA
//! (basicConstraints CA:TRUE) and on a subjectAltName for the address the
//! client connects to; the common name is ignored.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

const OPENSSL_CONF: &str = "\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// How long the certificates are valid: tests never run that long.
const DAYS: &str = "2";

/// A throwaway certificate authority.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// The CA certificate (PEM): what clients are told to trust.
    pub cert: PathBuf,
    /// Its private key (PEM, unencrypted).
    pub key: PathBuf,
    dir: PathBuf,
}

/// A server certificate signed by a `TestCa`, for IP 127.0.0.1 and DNS localhost.
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, unencrypted PKCS#8).
    pub key: PathBuf,
    /// The certificate of the CA that signed it (PEM).
    pub ca_cert: PathBuf,
}

impl TestCa {
    /// Makes a new CA in `dir` (created if needed): `dir/ca.pem`,
    /// `dir/ca.key`. `name` becomes its common name. Panics on failure.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let conf = write_conf(dir);
        let ca = TestCa { cert: dir.join("ca.pem"), key: dir.join("ca.key"), dir: dir.to_path_buf() };
        let subject = format!("/CN={name}");
        let mut cmd = openssl("req");
        cmd.args(["-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-sha256"])
            .args(["-days", DAYS, "-subj", &subject, "-extensions", "v3_ca"])
            .arg("-config")
            .arg(&conf)
            .arg("-keyout")
            .arg(&ca.key)
            .arg("-out")
            .arg(&ca.cert);
        run(cmd);
        make_readable(&[&ca.cert, &ca.key]);
        ca
    }

    /// Makes a server certificate for 127.0.0.1 and localhost signed by this
    /// CA: `dir/NAME.pem` and `dir/NAME.key` (`dir` created if needed).
    /// Panics on failure.
    pub fn server_cert(&self, dir: &Path, name: &str) -> ServerCert {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let conf = write_conf(dir);
        let cert = ServerCert {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
            ca_cert: self.cert.clone(),
        };
        let csr = dir.join(format!("{name}.csr"));
        let mut cmd = openssl("req");
        cmd.args(["-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1"])
            .arg("-config")
            .arg(&conf)
            .arg("-keyout")
            .arg(&cert.key)
            .arg("-out")
            .arg(&csr);
        run(cmd);
        let mut cmd = openssl("x509");
        cmd.args(["-req", "-sha256", "-days", DAYS, "-set_serial", &random_serial()])
            .args(["-extensions", "v3_server"])
            .arg("-extfile")
            .arg(&conf)
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&self.cert)
            .arg("-CAkey")
            .arg(&self.key)
            .arg("-out")
            .arg(&cert.cert);
        run(cmd);
        let _ = fs::remove_file(&csr);
        make_readable(&[&cert.cert, &cert.key]);
        cert
    }

    /// The directory the CA's files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A new CA in `dir/ca` and a server certificate it signed in `dir/server`:
/// what a TLS test server needs.
pub fn ca_and_server_cert(dir: &Path) -> ServerCert {
    let ca = TestCa::new(&dir.join("ca"), "mod_twofactor test CA");
    ca.server_cert(&dir.join("server"), "server")
}

fn write_conf(dir: &Path) -> PathBuf {
    let conf = dir.join("openssl.cnf");
    fs::write(&conf, OPENSSL_CONF).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
    conf
}

/// `openssl SUBCOMMAND`, reading no configuration but the `-config` or
/// `-extfile` given (`req` without `-config` would read the system's).
fn openssl(subcommand: &str) -> Command {
    let mut cmd = Command::new("openssl");
    cmd.arg(subcommand).env_remove("OPENSSL_CONF");
    cmd
}

/// Runs `cmd`; panics with its stderr on failure.
fn run(mut cmd: Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run openssl (apt-get install openssl): {e}"));
    if !out.status.success() {
        panic!("{cmd:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
}

/// A positive serial number that differs between certificates of one run.
fn random_serial() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let pid = u128::from(std::process::id());
    format!("0x{:x}", (nanos ^ (pid << 64)) & ((1u128 << 120) - 1) | 1)
}

/// Mode 0644: whichever user the server runs as can read them (throwaway keys).
fn make_readable(paths: &[&Path]) {
    for path in paths {
        fs::set_permissions(path, fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl_output(args: &[&str]) -> (bool, String) {
        let out = Command::new("openssl").args(args).output().expect("run openssl");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    #[test]
    fn server_cert_verifies_against_its_ca_only() {
        let dir = tempfile::tempdir().unwrap();
        let cert = ca_and_server_cert(dir.path());
        let (ok, text) = openssl_output(&[
            "verify",
            "-CAfile",
            cert.ca_cert.to_str().unwrap(),
            "-purpose",
            "sslserver",
            "-verify_ip",
            "127.0.0.1",
            cert.cert.to_str().unwrap(),
        ]);
        assert!(ok, "{text}");
        let (_, text) = openssl_output(&["x509", "-noout", "-text", "-in", cert.cert.to_str().unwrap()]);
        assert!(text.contains("IP Address:127.0.0.1") && text.contains("DNS:localhost"), "{text}");

        let other = TestCa::new(&dir.path().join("other"), "another CA");
        let (ok, text) =
            openssl_output(&["verify", "-CAfile", other.cert.to_str().unwrap(), cert.cert.to_str().unwrap()]);
        assert!(!ok, "verified against the wrong CA: {text}");
    }
}
