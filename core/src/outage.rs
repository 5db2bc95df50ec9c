//! What the operator reads about a directory outage: every outage writes
//! its first error line at once; repeats within it are summarised (at most
//! one line per interval, with how many were not written); the first
//! answer after it writes how long it lasted and how many requests were
//! refused. Time is a parameter, so the rules are tested exactly.

use std::time::{Duration, Instant};

/// Repeats of an outage's error are written at most this often.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// One process's view of the directory's health.
#[derive(Debug, Default)]
pub struct Outage {
    /// When the current outage began; `None`: the directory answers.
    since: Option<Instant>,
    /// Requests refused since it began.
    refused: u64,
    /// When the last error line of this outage was written.
    last_line: Option<Instant>,
    /// Errors since that line that were not written.
    unwritten: u64,
}

/// What to write for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorLine {
    /// Write the line; `repeated`: errors of this outage not written since the last line.
    Write { repeated: u64 },
    /// Count it, write nothing.
    Quiet,
}

/// The line that ends an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub down: Duration,
    pub refused: u64,
}

impl Outage {
    /// Whether an outage is going on (a quick check before taking a lock).
    pub fn is_down(&self) -> bool {
        self.since.is_some()
    }

    /// A request refused because the directory failed at `now`.
    pub fn error(&mut self, now: Instant) -> ErrorLine {
        self.refused = self.refused.saturating_add(1);
        if self.since.is_none() {
            // A new outage: always one line, however recent the last one.
            self.since = Some(now);
            self.last_line = Some(now);
            self.unwritten = 0;
            return ErrorLine::Write { repeated: 0 };
        }
        match self.last_line {
            Some(last) if now.saturating_duration_since(last) < SUMMARY_INTERVAL => {
                self.unwritten = self.unwritten.saturating_add(1);
                ErrorLine::Quiet
            }
            _ => {
                let repeated = std::mem::take(&mut self.unwritten);
                self.last_line = Some(now);
                ErrorLine::Write { repeated }
            }
        }
    }

    /// The directory answered at `now`: the end of an outage, if one was going on.
    pub fn answered(&mut self, now: Instant) -> Option<Recovered> {
        let since = self.since.take()?;
        let refused = std::mem::take(&mut self.refused);
        self.last_line = None;
        self.unwritten = 0;
        Some(Recovered { down: now.saturating_duration_since(since), refused })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_writes_its_first_line_summaries_and_its_end() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut o = Outage::default();
        assert_eq!(o.answered(t0), None, "no outage, nothing to say");
        assert_eq!(o.error(at(0)), ErrorLine::Write { repeated: 0 });
        assert!(o.is_down());
        assert_eq!(o.error(at(1)), ErrorLine::Quiet);
        assert_eq!(o.error(at(9)), ErrorLine::Quiet);
        assert_eq!(o.error(at(10)), ErrorLine::Write { repeated: 2 });
        assert_eq!(o.error(at(11)), ErrorLine::Quiet);
        assert_eq!(o.answered(at(15)), Some(Recovered { down: Duration::from_secs(15), refused: 5 }));
        assert!(!o.is_down());
        assert_eq!(o.answered(at(16)), None);
    }

    #[test]
    fn a_second_outage_soon_after_the_first_writes_its_own_line() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut o = Outage::default();
        o.error(at(0));
        o.answered(at(2));
        assert_eq!(o.error(at(3)), ErrorLine::Write { repeated: 0 });
        assert_eq!(o.answered(at(4)), Some(Recovered { down: Duration::from_secs(1), refused: 1 }));
    }
}
