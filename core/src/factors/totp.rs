//! The directory's part of a TOTP check: a time step is used once.

use crate::completion::class_for;
use crate::config::{Role, Settings};
use crate::store::cas::{self, Decision};
use crate::store::{Directory, StoreError};
use crate::totp::{Accepted, LastStep};

/// Moves `user`'s last used step forward to `accepted` in one
/// compare-and-swap. `Ok(false)`: that step (or a later one) was used
/// already, the code is a replay. Of concurrent submissions of one code,
/// exactly one gets `Ok(true)`.
pub fn use_step(
    directory: &dyn Directory,
    settings: &Settings,
    user: &str,
    accepted: Accepted,
) -> Result<bool, StoreError> {
    let attr = settings.attribute(Role::TotpLast);
    cas::update(directory, user, attr, class_for(attr), |_, current| match current.and_then(LastStep::decode) {
        Some(stored) if stored.step >= accepted.step => Decision::Keep(false),
        _ => Decision::Write(Some(LastStep::from(accepted).encode()), true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryDirectory;
    use crate::testing;

    #[test]
    fn a_step_is_used_once_and_never_an_earlier_one() {
        let settings = testing::settings(&[]);
        let directory = MemoryDirectory::default().with_user("alice", &[]);
        let at = |step| Accepted { step, drift: 0 };
        assert_eq!(use_step(&directory, &settings, "alice", at(100)), Ok(true));
        assert_eq!(use_step(&directory, &settings, "alice", at(100)), Ok(false), "replay");
        assert_eq!(use_step(&directory, &settings, "alice", at(99)), Ok(false), "an earlier code");
        assert_eq!(use_step(&directory, &settings, "alice", at(101)), Ok(true));
        assert_eq!(directory.values("alice", "objectClass"), ["twoFactorUser"]);
        directory.set_down(true);
        assert!(matches!(use_step(&directory, &settings, "alice", at(102)), Err(StoreError::Unavailable(_))));
    }

    #[test]
    fn forty_submissions_of_one_code_at_once_succeed_once() {
        let settings = testing::settings(&[]);
        let directory = MemoryDirectory::default().with_user("alice", &[]);
        let accepted = Accepted { step: 7, drift: 0 };
        let results: Vec<Result<bool, StoreError>> = std::thread::scope(|scope| {
            let runs: Vec<_> =
                (0..40).map(|_| scope.spawn(|| use_step(&directory, &settings, "alice", accepted))).collect();
            runs.into_iter().map(|run| run.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|r| **r == Ok(true)).count(), 1, "{results:?}");
        assert!(results.iter().all(|r| matches!(r, Ok(_) | Err(StoreError::Conflict))), "{results:?}");
    }
}
