//! The directory's part of TOTP: a time step is used once, and the one
//! modify that stores a new authenticator (for the enrollment page and for
//! `twofactorctl enroll|import` alike).

use crate::anchor::{Anchor, Counter, Key};
use crate::completion::no_key;
use crate::config::{Role, Settings};
use crate::store::cas::{self, Decision};
use crate::store::schema::class_for;
use crate::store::{Change, Directory, StoreError, UserEntry};
use crate::tamper::{self, Why};
use crate::totp::{Accepted, LastStep, TotpRecord};

/// Steps an untrusted last step holds the factor back: the widest window
/// of accepted codes (the skew both ways, at the shortest period), so that
/// no code of the current window can be a replay.
fn window_steps(settings: &Settings) -> u64 {
    2 * (settings.totp_skew.as_secs() / 30) + 1
}

/// Moves `user`'s last used step forward to `accepted` in one
/// compare-and-swap. `Ok(false)`: that step (or a later one) was used
/// already, the code is a replay. Of concurrent submissions of one code,
/// exactly one gets `Ok(true)`.
///
/// The step is checked against the highest this server has seen too
/// (`crate::anchor`), so that an older genuine value put back, or the
/// value deleted, lets no used code in again. A value that does not pass
/// its check refuses the code and is replaced by a genuine one at the end
/// of the current window: the factor works again a window later.
pub fn use_step(
    directory: &dyn Directory,
    settings: &Settings,
    anchor: &dyn Anchor,
    user: &str,
    accepted: Accepted,
) -> Result<bool, StoreError> {
    let attr = settings.attribute(Role::TotpLast);
    let key = settings.keys.as_ref().map(|k| Key::of(k, Counter::TotpStep, user));
    let window = window_steps(settings);
    let (used, written, rolled_back) = cas::update(directory, user, attr, class_for(attr), |entry, current| {
        let Some(signer) = settings.signer(&entry.username) else { return Decision::Keep(Err(no_key())) };
        // Marks are steps plus one: 0 is "none seen".
        let remembered = key.map_or(0, |k| anchor.get(k)).checked_sub(1);
        let stored = match current {
            None => None,
            Some(text) => match LastStep::open(&signer, text) {
                Some(stored) => Some(stored),
                None => {
                    let held_back = LastStep { step: accepted.step.saturating_add(window), drift: 0 };
                    return Decision::Write(Some(held_back.seal(&signer)), Ok((false, Some(held_back), false)));
                }
            },
        };
        let last = stored.map(|s| s.step).max(remembered);
        if last.is_some_and(|last| accepted.step <= last) {
            return Decision::Keep(Ok((false, None, false)));
        }
        let rolled_back = remembered.is_some_and(|r| stored.is_some_and(|s| s.step < r));
        let new = LastStep::from(accepted);
        Decision::Write(Some(new.seal(&signer)), Ok((true, Some(new), rolled_back)))
    })??;
    if let (Some(key), Some(written)) = (key, written) {
        anchor.raise(key, written.step.saturating_add(1));
    }
    if rolled_back {
        tamper::record(Role::TotpLast, Why::RolledBack);
    }
    Ok(used)
}

/// What a new authenticator replaces.
#[derive(Debug, Clone, Copy)]
pub enum Replacing<'a> {
    /// Whatever is stored (an administrator's enrollment).
    Whatever,
    /// Exactly this stored value, or nothing (`None`): a compare-and-swap,
    /// so that of two confirmations of one shown secret one lands.
    Exactly(Option<&'a str>),
}

/// A new authenticator to store.
pub struct Enrollment<'a> {
    pub record: &'a TotpRecord,
    pub replacing: Replacing<'a>,
    /// The step of the code that confirmed it, so that this code is not
    /// accepted again; `None`: the replay state starts empty.
    pub confirmed: Option<Accepted>,
    /// The stored values of new recovery codes, replacing any (`None`:
    /// the recovery codes stay as they are).
    pub recovery: Option<Vec<String>>,
}

/// The one modify that stores `enrollment` in `entry`: the auxiliary class
/// where the attribute needs it, the authenticator, its replay state and,
/// if given, the recovery codes (stored values, signed already).
pub fn enrollment_changes(
    settings: &Settings,
    entry: &UserEntry,
    enrollment: Enrollment<'_>,
) -> Result<Vec<Change>, StoreError> {
    let signer = settings.signer(&entry.username).ok_or_else(no_key)?;
    let totp_attr = settings.attribute(Role::Totp);
    let mut changes = Vec::with_capacity(5);
    if let Some(class) = class_for(totp_attr).filter(|c| !entry.has_object_class(c)) {
        changes.push(Change::Add("objectClass".into(), vec![class.into()]));
    }
    let new = enrollment.record.seal(&signer);
    match enrollment.replacing {
        Replacing::Whatever => changes.push(Change::Replace(totp_attr.into(), vec![new])),
        Replacing::Exactly(previous) => {
            if let Some(old) = previous {
                changes.push(Change::Delete(totp_attr.into(), vec![old.to_string()]));
            }
            changes.push(Change::Add(totp_attr.into(), vec![new]));
        }
    }
    let last = enrollment.confirmed.map(|accepted| LastStep::from(accepted).seal(&signer));
    changes.push(Change::Replace(settings.attribute(Role::TotpLast).into(), last.into_iter().collect()));
    if let Some(values) = enrollment.recovery {
        changes.push(Change::Replace(settings.attribute(Role::Recovery).into(), values));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anchor::Local;
    use crate::store::memory::MemoryDirectory;
    use crate::store::signed::Signer;
    use crate::testing;

    fn sealed(settings: &Settings, record: &TotpRecord) -> String {
        record.seal(&settings.signer("alice").unwrap())
    }

    #[test]
    fn a_step_is_used_once_and_never_an_earlier_one() {
        let settings = testing::settings(&[]);
        let directory = MemoryDirectory::default().with_user("alice", &[]);
        let anchor = Local::new(16);
        let at = |step| Accepted { step, drift: 0 };
        assert_eq!(use_step(&directory, &settings, &anchor, "alice", at(100)), Ok(true));
        assert_eq!(use_step(&directory, &settings, &anchor, "alice", at(100)), Ok(false), "replay");
        assert_eq!(use_step(&directory, &settings, &anchor, "alice", at(99)), Ok(false), "an earlier code");
        assert_eq!(use_step(&directory, &settings, &anchor, "alice", at(101)), Ok(true));
        assert_eq!(directory.values("alice", "objectClass"), ["twoFactorUser"]);
        directory.set_down(true);
        assert!(matches!(use_step(&directory, &settings, &anchor, "alice", at(102)), Err(StoreError::Unavailable(_))));
    }

    #[test]
    fn an_older_step_put_back_or_deleted_lets_no_used_code_in_again() {
        let settings = testing::settings(&[]);
        let directory = MemoryDirectory::default().with_user("alice", &[]);
        let anchor = Local::new(16);
        let at = |step| Accepted { step, drift: 0 };
        assert_eq!(use_step(&directory, &settings, &anchor, "alice", at(100)), Ok(true));
        let saved = directory.values("alice", "twoFactorTOTPLastStep");
        assert_eq!(use_step(&directory, &settings, &anchor, "alice", at(101)), Ok(true));
        directory.replace("alice", "twoFactorTOTPLastStep", &[&saved[0]]);
        assert_eq!(use_step(&directory, &settings, &anchor, "alice", at(101)), Ok(false), "put back");
        directory.replace("alice", "twoFactorTOTPLastStep", &[]);
        assert_eq!(use_step(&directory, &settings, &anchor, "alice", at(101)), Ok(false), "deleted");
        tamper::take();
        directory.replace("alice", "twoFactorTOTPLastStep", &[&saved[0]]);
        assert_eq!(use_step(&directory, &settings, &anchor, "alice", at(102)), Ok(true), "a new code still works");
        assert_eq!(tamper::take(), [(Role::TotpLast, Why::RolledBack)]);
    }

    #[test]
    fn a_forged_step_refuses_the_window_and_heals_after_it() {
        let settings = testing::settings(&[]);
        let directory = MemoryDirectory::default().with_user("alice", &[]);
        let anchor = Local::new(16);
        let forged = LastStep { step: 0, drift: 0 }.seal(&Signer::new(&testing::keys(), "bob", false));
        directory.replace("alice", "twoFactorTOTPLastStep", &[&forged]);
        let at = |step| Accepted { step, drift: 0 };
        tamper::take();
        assert_eq!(use_step(&directory, &settings, &anchor, "alice", at(100)), Ok(false));
        assert_eq!(tamper::take(), [(Role::TotpLast, Why::BadMac)]);
        assert_eq!(use_step(&directory, &settings, &anchor, "alice", at(105)), Ok(false), "within the window");
        assert_eq!(use_step(&directory, &settings, &anchor, "alice", at(106)), Ok(true), "after it");
    }

    #[test]
    fn forty_submissions_of_one_code_at_once_succeed_once() {
        let settings = testing::settings(&[]);
        let directory = MemoryDirectory::default().with_user("alice", &[]);
        let accepted = Accepted { step: 7, drift: 0 };
        let anchor = Local::new(16);
        let results: Vec<Result<bool, StoreError>> = std::thread::scope(|scope| {
            let runs: Vec<_> =
                (0..40).map(|_| scope.spawn(|| use_step(&directory, &settings, &anchor, "alice", accepted))).collect();
            runs.into_iter().map(|run| run.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|r| **r == Ok(true)).count(), 1, "{results:?}");

        assert!(results.iter().all(|r| matches!(r, Ok(_) | Err(StoreError::Conflict))), "{results:?}");
    }

    fn record(settings: &Settings, secret: &[u8]) -> TotpRecord {
        let sealed = settings.keys.as_ref().unwrap().seal(b"test", secret).unwrap();
        TotpRecord { sealed, params: crate::totp::TotpParams::default(), serial: None }
    }

    fn find(directory: &MemoryDirectory, user: &str) -> UserEntry {
        match directory.find_user(user, &[]).unwrap() {
            crate::store::Lookup::Found(entry) => entry,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_confirmed_enrollment_lands_once_and_uses_up_its_code() {
        let settings = testing::settings(&[]);
        let directory = MemoryDirectory::default().with_user("alice", &[("twoFactorRecovery", &["old-code"])]);
        let entry = find(&directory, "alice");
        let first = record(&settings, b"first secret");
        let confirmed = |record| Enrollment {
            record,
            replacing: Replacing::Exactly(None),
            confirmed: Some(Accepted { step: 9, drift: 0 }),
            recovery: Some(vec!["new-code".into()]),
        };
        directory.modify(&entry.dn, &enrollment_changes(&settings, &entry, confirmed(&first)).unwrap()).unwrap();
        assert_eq!(directory.values("alice", "objectClass"), ["twoFactorUser"]);
        assert_eq!(directory.values("alice", "twoFactorTOTP"), [sealed(&settings, &first)]);
        assert_eq!(directory.values("alice", "twoFactorRecovery"), ["new-code"]);
        let anchor = Local::new(16);
        let its_code = Accepted { step: 9, drift: 0 };
        assert_eq!(use_step(&directory, &settings, &anchor, "alice", its_code), Ok(false), "its code");
        // The same shown secret confirmed again, from the entry read before:
        // the compare-and-swap fails, nothing changes.
        let second = record(&settings, b"second secret");
        let changes = enrollment_changes(&settings, &entry, confirmed(&second)).unwrap();
        assert_eq!(directory.modify(&entry.dn, &changes), Err(StoreError::Conflict));
        assert_eq!(directory.values("alice", "twoFactorTOTP"), [sealed(&settings, &first)]);
        // Replacing exactly what is stored lands.
        let now = find(&directory, "alice");
        let current = sealed(&settings, &first);
        let replace = Enrollment { replacing: Replacing::Exactly(Some(current.as_str())), ..confirmed(&second) };
        directory.modify(&now.dn, &enrollment_changes(&settings, &now, replace).unwrap()).unwrap();
        assert_eq!(directory.values("alice", "twoFactorTOTP"), [sealed(&settings, &second)]);
    }

    #[test]
    fn forty_confirmations_of_one_shown_secret_at_once_land_once() {
        let settings = testing::settings(&[]);
        let directory = MemoryDirectory::default().with_user("alice", &[("twoFactorTOTP", &["old"])]);
        let entry = find(&directory, "alice");
        let new = record(&settings, b"new secret");
        let results: Vec<Result<(), StoreError>> = std::thread::scope(|scope| {
            let runs: Vec<_> = (0..40)
                .map(|_| {
                    scope.spawn(|| {
                        let confirmed = Enrollment {
                            record: &new,
                            replacing: Replacing::Exactly(Some("old")),
                            confirmed: Some(Accepted { step: 3, drift: 0 }),
                            recovery: Some(Vec::new()),
                        };
                        directory.modify(&entry.dn, &enrollment_changes(&settings, &entry, confirmed).unwrap())
                    })
                })
                .collect();
            runs.into_iter().map(|run| run.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
        assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict))), "{results:?}");
        assert_eq!(directory.values("alice", "twoFactorTOTP"), [sealed(&settings, &new)]);
        assert_eq!(directory.writes(), 1);
    }

    #[test]
    fn an_administrators_enrollment_replaces_whatever_is_stored_and_keeps_the_recovery_codes() {
        let settings = testing::settings(&[]);
        let directory = MemoryDirectory::default().with_user(
            "alice",
            &[("objectClass", &["twoFactorUser"]), ("twoFactorTOTP", &["old"]), ("twoFactorRecovery", &["code"])],
        );
        use_step(&directory, &settings, &Local::new(16), "alice", Accepted { step: 5, drift: 0 }).unwrap();
        let entry = find(&directory, "alice");
        let new = record(&settings, b"new secret");
        let admin = Enrollment { record: &new, replacing: Replacing::Whatever, confirmed: None, recovery: None };
        let changes = enrollment_changes(&settings, &entry, admin).unwrap();
        assert!(!changes.iter().any(|c| matches!(c, Change::Add(a, _) if a == "objectClass")), "{changes:?}");
        directory.modify(&entry.dn, &changes).unwrap();
        assert_eq!(directory.values("alice", "twoFactorTOTP"), [sealed(&settings, &new)]);
        assert!(directory.values("alice", "twoFactorTOTPLastStep").is_empty(), "the replay state starts over");
        assert_eq!(directory.values("alice", "twoFactorRecovery"), ["code"]);
    }

    #[test]
    fn the_class_is_added_whatever_the_case_of_the_attribute_name_and_never_for_a_mapped_one() {
        let entry = UserEntry::new("uid=alice".into(), "alice".into(), Vec::new());
        let adds_class = |extra: &[&str]| {
            let settings = testing::settings(extra);
            let new = record(&settings, b"secret");
            let e = Enrollment { record: &new, replacing: Replacing::Whatever, confirmed: None, recovery: None };
            enrollment_changes(&settings, &entry, e)
                .unwrap()
                .iter()
                .any(|c| matches!(c, Change::Add(a, _) if a == "objectClass"))
        };
        assert!(adds_class(&[]));
        assert!(adds_class(&["TwoFactorAttribute totp TWOFACTORTOTP"]));
        assert!(!adds_class(&["TwoFactorAttribute totp description"]));
    }
}
