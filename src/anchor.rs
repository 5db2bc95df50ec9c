//! This Apache's anchor table (`core::anchor`): the highest failure-count
//! generation and TOTP step seen per user, in shared memory made by the
//! parent in post_config, so that every child refuses a value put back
//! behind another child's back. Without the segment (shared memory could
//! not be made) each child keeps a table of its own.

use std::sync::{LazyLock, OnceLock};

use twofactor_core::anchor::{self, Anchor, Local, Table};

use crate::apache::server::Server;
use crate::apache::shm;

/// Users remembered at once; each takes 24 bytes (a keyed hash, the mark,
/// the last use). Older ones give way to newer ones.
const BUCKETS: usize = 16_384;

static SHARED: OnceLock<Table<'static>> = OnceLock::new();
static OWN: LazyLock<Local> = LazyLock::new(|| Local::new(BUCKETS / 16));

/// In the parent, before the fork: the shared table (the same one after a
/// restart). `Err` says why children keep their own.
pub fn set_up(main: Server<'_>) -> Result<(), &'static str> {
    if SHARED.get().is_some() {
        return Ok(());
    }
    let words = shm::words(main, shm::Segment::Anchor, anchor::words_for(BUCKETS))
        .ok_or("no shared memory for the anchor table; each child remembers on its own")?;
    let table = Table::new(words).ok_or("the anchor table's segment is too small")?;
    let _ = SHARED.set(table);
    Ok(())
}

/// The table requests use.
pub fn table() -> &'static dyn Anchor {
    match SHARED.get() {
        Some(table) => table,
        None => &*OWN,
    }
}
