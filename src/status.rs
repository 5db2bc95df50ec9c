//! The `twofactor-status` handler (SPEC §2 "Status and health"): the
//! counters of every child of this Apache, as Prometheus text
//! (`?format=prometheus`, the default) or JSON (`?format=json`), and a
//! health check for load balancers (`?format=health`). It shows numbers
//! and dependency names only: no user name, code or secret.
//! Where it is served is the administrator's choice (`SetHandler
//! twofactor-status` with `TwoFactor Off` and `Require ip`).

use std::ffi::CStr;
use std::time::Duration;

use crate::apache::log::{event, Level};
use crate::apache::{status, Request, Table};
use crate::enforce;
use crate::metrics;
use crate::outcome::Outcome;

pub const STATUS_HANDLER: &CStr = c"twofactor-status";

/// How long a child trusts its last look at the directory.
const PROBE_FRESH: Duration = Duration::from_secs(3);

pub fn handler(req: &mut Request<'_>) -> Outcome {
    if req.handler() != Some(STATUS_HANDLER.to_bytes()) {
        return Outcome::Declined;
    }
    if !matches!(req.method(), "GET" | "HEAD") {
        req.set(Table::ErrOut, c"Allow", "GET, HEAD");
        return Outcome::Status(status::METHOD_NOT_ALLOWED);
    }
    let format = req.args().unwrap_or("").split('&').find_map(|pair| pair.strip_prefix("format=")).unwrap_or("");
    if format == "health" {
        return health(req);
    }
    let Some(totals) = metrics::totals() else {
        event!(req, Level::Error, "internal-error", "reason" = "no-metrics");
        return Outcome::Status(status::SERVICE_UNAVAILABLE);
    };
    match format {
        "" | "prometheus" => Outcome::Document {
            status: status::OK,
            content_type: c"text/plain; version=0.0.4; charset=utf-8",
            body: totals.prometheus(),
        },
        "json" => Outcome::Document {
            status: status::OK,
            content_type: c"application/json",
            body: format!("{}\n", totals.json()),
        },
        _ => Outcome::Status(status::BAD_REQUEST),
    }
}

/// 200 when the directory answers and the key is loaded, else 503; one
/// line per dependency either way.
fn health(req: &mut Request<'_>) -> Outcome {
    let st = match enforce::state(req) {
        Ok(Some(st)) => st,
        Ok(None) => {
            let body = "mod_twofactor: not configured on this server\n".to_string();
            return Outcome::Document { status: status::SERVICE_UNAVAILABLE, content_type: c"text/plain", body };
        }
        Err(outcome) => return outcome,
    };
    let directory = st.probe_directory(PROBE_FRESH);
    let key = st.settings.keys.is_some();
    let mut body = match directory {
        Ok(()) => "directory: ok\n".to_string(),
        Err(reason) => format!("directory: down ({reason})\n"),
    };
    body.push_str(if key { "key: ok\n" } else { "key: missing\n" });
    let healthy = directory.is_ok() && key;
    let status = if healthy { status::OK } else { status::SERVICE_UNAVAILABLE };
    Outcome::Document { status, content_type: c"text/plain; charset=utf-8", body }
}

/// The section on mod_status's `server-status` page (HTML).
pub fn section(req: &mut Request<'_>) -> Outcome {
    section_in(req, false)
}

/// The same for `server-status?auto` (`Key: value` lines).
pub fn section_short(req: &mut Request<'_>) -> Outcome {
    section_in(req, true)
}

fn section_in(_req: &mut Request<'_>, short: bool) -> Outcome {
    match metrics::totals() {
        Some(totals) => Outcome::Append(totals.status_section(short)),
        None => Outcome::Declined,
    }
}
