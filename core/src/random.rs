//! Random bytes from the operating system's CSPRNG (getrandom), with no
//! state held across a fork.

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};

pub fn fill(buf: &mut [u8]) -> Result<(), String> {
    SystemRandom::new().fill(buf).map_err(|_| "the system random generator failed".to_string())
}

/// `n` random bytes as unpadded base64url: cookie values, CSRF nonces.
pub fn token(n: usize) -> Result<String, String> {
    let mut buf = vec![0u8; n];
    fill(&mut buf)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&buf))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_differ_and_have_the_expected_length() {
        let a = super::token(32).unwrap();
        let b = super::token(32).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }
}
