//! One-time codes for authenticator apps and hardware tokens: HOTP (RFC 4226)
//! and TOTP (RFC 6238) on `ring::hmac`, verification with replay protection
//! and drift, base32 (RFC 4648) secrets, the `otpauth://` enrollment URI and
//! its QR code as inline SVG.
//!
//! Time is always a parameter (`now`, Unix seconds): nothing here reads a
//! clock. Secrets are plain `&[u8]` borrowed from a [`Secret`](crate::secret::Secret);
//! nothing that holds one derives `Debug`.
//!
//! The engine and the verification window are in `algorithm.rs`, base32 in
//! `base32.rs`, the enrollment URI and QR codes in `otpauth.rs`. The codecs of
//! `twoFactorTOTP` and `twoFactorTOTPLastStep` ([`TotpRecord`], [`LastStep`])
//! live with the other state codecs in [`crate::store::codec`]. Everything is
//! re-exported here.

mod algorithm;
mod base32;
mod otpauth;

pub use algorithm::{
    candidates, generate_secret, hotp, seal_context, secret_len, totp, verify, Accepted, ParamsError, Rejection,
    TotpParams, DIGITS, MAX_SKEW_STEPS,
};
pub use base32::{base32_decode, base32_encode};
pub use otpauth::{otpauth_uri, qr_svg, qr_terminal};

pub use crate::store::codec::{LastStep, TotpRecord};

/// Seeds and parameters shared by the tests of the engine, enrollment and codecs.
#[cfg(test)]
pub(crate) mod test_support {
    use super::TotpParams;
    use crate::config::Algorithm;

    /// "12345678901234567890" repeated to `len` bytes (RFC 6238 Appendix B seeds).
    pub(crate) fn seed(len: usize) -> Vec<u8> {
        b"1234567890".iter().copied().cycle().take(len).collect()
    }

    pub(crate) fn p(algorithm: Algorithm, digits: u32, period: u32) -> TotpParams {
        TotpParams { algorithm, digits, period }
    }

    pub(crate) const SHA1_6_30: TotpParams = TotpParams { algorithm: Algorithm::Sha1, digits: 6, period: 30 };
}
