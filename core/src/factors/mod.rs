//! The second factors' rules, apart from the TOTP algorithm itself
//! (`crate::totp`): lockout, emailed passcodes, recovery codes, the single
//! use of a TOTP step.

pub mod email;
pub mod lockout;
pub mod recovery;
pub mod totp;

/// Whether a completion made with `method` proves a factor the user holds
/// (an authenticator, a recovery code, or a new authenticator just
/// confirmed with its first code); an emailed passcode proves the mailbox
/// only, and never opens the way to adding or replacing a factor.
pub fn proves_a_held_factor(method: &str) -> bool {
    matches!(method, "totp" | "recovery" | "enrolled")
}

/// A uniformly random decimal string of `digits` digits from the system CSPRNG.
pub fn random_digits(digits: u32) -> Result<String, String> {
    let mut out = String::with_capacity(digits as usize);
    while out.len() < digits as usize {
        let mut byte = [0u8; 1];
        crate::random::fill(&mut byte)?;
        // Rejection sampling: 250 is the largest multiple of 10 below 256.
        if byte[0] < 250 {
            out.push(char::from(b'0' + byte[0] % 10));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_mailbox_is_no_held_factor() {
        for method in ["totp", "recovery", "enrolled"] {
            assert!(super::proves_a_held_factor(method), "{method}");
        }
        for method in ["email", "test", "", "TOTP"] {
            assert!(!super::proves_a_held_factor(method), "{method}");
        }
    }

    #[test]
    fn random_digits_look_random() {
        let a = super::random_digits(8).unwrap();
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        let samples: std::collections::HashSet<String> = (0..50).map(|_| super::random_digits(8).unwrap()).collect();
        assert!(samples.len() > 45);
    }
}
