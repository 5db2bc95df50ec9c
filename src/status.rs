//! The `twofactor-status` handler (SPEC §2 "Status and health"): the
//! counters of every child of this Apache, as Prometheus text
//! (`?format=prometheus`, the default) or JSON (`?format=json`). It shows
//! numbers only: no user name, code or secret is ever counted by name.
//! Where it is served is the administrator's choice (`SetHandler
//! twofactor-status` with `TwoFactor Off` and `Require ip`).

use std::ffi::CStr;

use crate::apache::log::{event, Level};
use crate::apache::{status, Request, Table};
use crate::metrics;
use crate::outcome::Outcome;

pub const STATUS_HANDLER: &CStr = c"twofactor-status";

pub fn handler(req: &mut Request<'_>) -> Outcome {
    if req.handler() != Some(STATUS_HANDLER.to_bytes()) {
        return Outcome::Declined;
    }
    if !matches!(req.method(), "GET" | "HEAD") {
        req.set(Table::ErrOut, c"Allow", "GET, HEAD");
        return Outcome::Status(status::METHOD_NOT_ALLOWED);
    }
    let format = req.args().unwrap_or("").split('&').find_map(|pair| pair.strip_prefix("format=")).unwrap_or("");
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
