//! Compare-and-swap updates of single-valued state attributes: one modify
//! that deletes the value that was read and adds the new one, so that of
//! two concurrent writers exactly one succeeds; the loser reads again.

use super::{Change, Directory, Lookup, StoreError, UserEntry};

/// Attempts before giving up on a busy attribute: each round of a race
/// has a winner, so this bounds how many writers can collide at once.
pub const ATTEMPTS: usize = 64;

/// What to do with the value read.
pub enum Decision<T> {
    /// Replace the value read with this one (`None` removes it).
    Write(Option<String>, T),
    /// Leave it as it is.
    Keep(T),
}

/// Reads `user`'s entry, lets `decide` look at the current value of
/// `attr`, and writes its decision atomically: the modify deletes every
/// value read (one, for a single-valued role; any others are debris a
/// misconfigured multi-valued attribute let in) and adds the new one. `decide` may run more than
/// once (after a lost race) and must be pure. With `class`, an entry that
/// lacks that auxiliary object class gets it in the same modify (the
/// attribute is not allowed without it).
pub fn update<T>(
    directory: &dyn Directory,
    user: &str,
    attr: &str,
    class: Option<&str>,
    mut decide: impl FnMut(&UserEntry, Option<&str>) -> Decision<T>,
) -> Result<T, StoreError> {
    let wanted = [attr, "objectClass"];
    for _ in 0..ATTEMPTS {
        let entry = match directory.find_user(user, &wanted)? {
            Lookup::Found(entry) => entry,
            _ => return Err(StoreError::Refused("no single entry for this user".into())),
        };
        let read = entry.values(attr).to_vec();
        match decide(&entry, read.first().map(String::as_str)) {
            Decision::Keep(result) => return Ok(result),
            Decision::Write(new, result) => {
                let mut changes = Vec::with_capacity(3);
                if let (Some(class), Some(_)) = (class, &new) {
                    if !entry.has_object_class(class) {
                        changes.push(Change::Add("objectClass".into(), vec![class.into()]));
                    }
                }
                if !read.is_empty() {
                    changes.push(Change::Delete(attr.into(), read));
                }
                if let Some(new) = new {
                    changes.push(Change::Add(attr.into(), vec![new]));
                }
                if changes.is_empty() {
                    return Ok(result);
                }
                match directory.modify(&entry.dn, &changes) {
                    Ok(()) => return Ok(result),
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Err(StoreError::Conflict)
}
