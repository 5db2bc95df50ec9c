//! This Apache's counters (`core::metrics`) in the shared segment: made by
//! the parent in post_config, one row claimed by each child in child_init,
//! counted on the request path with relaxed atomic adds (no lock, no
//! allocation). Before a child has its row (or if shared memory could not
//! be made) nothing is counted and nothing else changes.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use twofactor_core::metrics::{self, Row, Timing, Totals, ROW_LEN};

use crate::apache::server::Server;
use crate::apache::shm;

static COUNTERS: OnceLock<&'static [AtomicU64]> = OnceLock::new();
const NO_ROW: usize = usize::MAX;
static ROW: AtomicUsize = AtomicUsize::new(NO_ROW);

/// Rows: twice the MPM's child limit, so that the children of a graceful
/// restart find rows while the old ones finish.
fn rows() -> usize {
    shm::child_limit().unwrap_or(16).saturating_mul(2).clamp(4, 4096)
}

/// In the parent, before the fork: the shared segment (the same one after
/// a restart). `Err` says why there are no metrics; requests are served
/// as before.
pub fn set_up(main: Server<'_>) -> Result<(), &'static str> {
    if COUNTERS.get().is_some() {
        return Ok(());
    }
    let counters =
        shm::words(main, shm::Segment::Metrics, rows() * ROW_LEN).ok_or("no shared memory for the metrics")?;
    let _ = COUNTERS.set(counters);
    Ok(())
}

/// In a new child: its own row.
pub fn claim_row() -> Result<(), &'static str> {
    let Some(counters) = COUNTERS.get() else { return Ok(()) };
    let row = metrics::claim_row(counters, u64::from(std::process::id()), alive)
        .ok_or("every metrics row is held by a live child; this child counts nothing")?;
    ROW.store(row, Ordering::Relaxed);
    Ok(())
}

/// Whether the process `pid` still runs (its row is still its own).
fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// This child's row, if it has one.
pub fn row() -> Option<Row<'static>> {
    let row = ROW.load(Ordering::Relaxed);
    if row == NO_ROW {
        return None;
    }
    let counters = COUNTERS.get()?;
    Row::new(counters.get(row * ROW_LEN..(row + 1) * ROW_LEN)?)
}

/// Counts with this child's row, if it has one.
pub fn count(f: impl FnOnce(Row<'static>)) {
    if let Some(row) = row() {
        f(row);
    }
}

/// A directory operation (the directory client's observer); it also says
/// whether the directory is up, as this child saw it last.
pub fn ldap_operation(op: &'static str, answered: bool, took: Duration) {
    count(|m| {
        m.ldap_operation(op, answered);
        m.observe(Timing::Ldap, took.as_secs_f64());
        m.directory_seen(answered, twofactor_core::clock::now_micros());
    });
}

/// The sum over every child, for the status handler.
pub fn totals() -> Option<Totals> {
    let counters = COUNTERS.get()?;
    Some(Totals::sum(counters.chunks_exact(ROW_LEN).filter_map(Row::new), alive))
}
