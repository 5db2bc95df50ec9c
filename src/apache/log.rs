//! Log levels, and the `key=value` event lines operators grep for.

use std::fmt::Write;

pub use super::level::Level;
use super::request::View;

/// One event line: `event=deny reason=bad-identity user=alice client=... id=...`.
///
/// Built only after `log_enabled` said yes, so that a request that logs
/// nothing formats nothing. Values are written as given: callers pass
/// names and reasons of their own, or untrusted input through
/// `identity::loggable`.
pub struct Event {
    line: String,
}

impl Event {
    pub fn new(event: &str) -> Event {
        let mut line = String::with_capacity(128);
        line.push_str("event=");
        line.push_str(event);
        Event { line }
    }

    pub fn field(mut self, key: &str, value: impl std::fmt::Display) -> Event {
        let _ = write!(self.line, " {key}={value}");
        self
    }

    /// Adds the request's client address and request id, then logs.
    pub fn log(mut self, req: &View<'_>, level: Level) {
        let _ = write!(self.line, " client={}", req.client_ip());
        if let Some(id) = req.unique_id() {
            let _ = write!(self.line, " id={id}");
        }
        req.log(level, &self.line);
    }
}

/// Logs an event for `req` at `level` if that level is enabled; the
/// fields are only evaluated then.
macro_rules! event {
    ($req:expr, $level:expr, $event:expr $(, $key:literal = $value:expr)* $(,)?) => {{
        let level = $level;
        if $req.log_enabled(level) {
            $crate::apache::log::Event::new($event)$(.field($key, $value))*.log(&$req, level);
        }
    }};
}
pub(crate) use event;
