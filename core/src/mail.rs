//! Sending passcode mails over SMTP (lettre): plain to a local relay,
//! STARTTLS, or implicit TLS, per `TwoFactorSMTPServer`.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::config::{SmtpSecurity, SmtpSettings};

/// Sends one plain-text mail; `Err` says why, without the message's content.
pub trait Mailer: Send + Sync {
    fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String>;
}

pub struct SmtpMailer {
    settings: SmtpSettings,
    timeout: Duration,
}

impl SmtpMailer {
    pub fn new(settings: &SmtpSettings, timeout: Duration) -> SmtpMailer {
        SmtpMailer { settings: settings.clone(), timeout }
    }

    fn transport(&self) -> Result<SmtpTransport, String> {
        let url = &self.settings.url;
        let tls = || -> Result<TlsParameters, String> {
            let mut params = TlsParameters::builder(url.host.clone());
            if let Some(pem) = &self.settings.ca_certificate {
                // Only the configured CA: the relay's certificate must chain to it.
                params = params.certificate_store(CertificateStore::None);
                for cert in pem_certificates(pem) {
                    let cert = Certificate::from_pem(&cert).map_err(|e| format!("TwoFactorSMTPCACertificate: {e}"))?;
                    params = params.add_root_certificate(cert);
                }
            }
            params.build().map_err(|e| e.to_string())
        };
        let builder = SmtpTransport::builder_dangerous(&url.host);
        let builder = match url.security {
            SmtpSecurity::Plain => builder,
            SmtpSecurity::StartTls => builder.tls(Tls::Required(tls()?)),
            SmtpSecurity::Tls => builder.tls(Tls::Wrapper(tls()?)),
        };
        let mut builder = builder.port(url.port).timeout(Some(self.timeout));
        if let (Some(user), Some(password)) = (&url.user, &self.settings.password) {
            let password =
                String::from_utf8(password.expose().to_vec()).map_err(|_| "the SMTP password is not UTF-8")?;
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(builder.build())
    }
}

impl Mailer for SmtpMailer {
    /// Sends within the timeout as a whole, however the relay dawdles:
    /// lettre's timeout bounds each step (and the QUIT after a failure), so
    /// the conversation runs in a thread of its own and is given up, not
    /// waited for, when time is up. A mail given up may still arrive later.
    fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let mailer = SmtpMailer { settings: self.settings.clone(), timeout: self.timeout };
        let (to, subject, body) = (to.to_string(), subject.to_string(), body.to_string());
        std::thread::Builder::new()
            .name("twofactor-smtp".into())
            .spawn(move || {
                let _ = tx.send(mailer.converse(&to, &subject, &body));
            })
            .map_err(|e| format!("cannot start the mail conversation: {e}"))?;
        let url = &self.settings.url;
        match rx.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                Err(format!("SMTP {}:{}: no answer within {} s", url.host, url.port, self.timeout.as_secs()))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err("the mail conversation failed".into()),
        }
    }
}

impl SmtpMailer {
    /// One SMTP conversation, each step bounded by the timeout.
    fn converse(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        let from: Mailbox =
            self.settings.from.parse().map_err(|_| "TwoFactorMailFrom is not a valid address".to_string())?;
        let to: Mailbox = to.parse().map_err(|_| "the user's mail address is not valid".to_string())?;
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|e| format!("cannot build the mail: {e}"))?;
        let url = &self.settings.url;
        self.transport()?
            .send(&message)
            .map(|_| ())
            .map_err(|e| format!("SMTP {}:{}: {}", url.host, url.port, first_line(&e.to_string())))
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Each PEM certificate block of `pem`, as its own PEM text.
fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(pem);
    text.split_inclusive(END)
        .filter_map(|chunk| chunk.find("-----BEGIN CERTIFICATE-----").map(|start| chunk.as_bytes()[start..].to_vec()))
        .filter(|block| block.ends_with(END.as_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn pem_blocks() {
        let one = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----";
        let two = format!("junk\n{one}\n{one}\ntrailing");
        assert_eq!(super::pem_certificates(two.as_bytes()), vec![one.as_bytes().to_vec(), one.as_bytes().to_vec()]);
        assert!(super::pem_certificates(b"no certificate").is_empty());
    }
}
