//! Sending passcode mails over SMTP (lettre): plain to a local relay,
//! STARTTLS, or implicit TLS, per `TwoFactorSMTPServer`.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
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
        let builder = match url.security {
            SmtpSecurity::Plain => SmtpTransport::builder_dangerous(&url.host),
            SmtpSecurity::StartTls => SmtpTransport::starttls_relay(&url.host).map_err(|e| e.to_string())?,
            SmtpSecurity::Tls => SmtpTransport::relay(&url.host).map_err(|e| e.to_string())?,
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
    fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
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
