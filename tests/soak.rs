//! The soak in short (scripts/soak.sh runs it long): a mixed load through
//! wrk against the cached and the uncached server. Every answer is the
//! one its kind must get, no 2xx for a request without a completion, no
//! error line, no crash. Memory is printed, not judged (a few seconds say
//! nothing about growth; the long run does).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

#[path = "support/soak_rig.rs"]
mod soak_rig;

use std::collections::BTreeSet;

use testkit::apache::ApacheOptions;
use testkit::soak::{children_rss_kib, run_wrk};

#[test]
fn a_short_soak_of_mixed_requests() {
    let rig = soak_rig::rig(ApacheOptions { threads: 16, servers: 2, ..ApacheOptions::default() });
    let mix = soak_rig::mix();
    let expected: BTreeSet<u16> = mix.iter().map(|k| k.expect).collect();
    for apache in [&rig.stack.protected, &rig.uncached] {
        let counts = run_wrk(rig.stack.dir.path(), apache.port, &mix, 3, 16);
        let rss = children_rss_kib(apache.pid().unwrap());
        eprintln!(
            "{}: {} requests, {:.0}/s, {:?}, children RSS {:?} KiB",
            apache.root.display(),
            counts.requests,
            counts.requests_per_second,
            counts.statuses,
            rss
        );
        assert_eq!(counts.unauthorized_2xx, 0, "a 2xx without a completion");
        // wrk counts a keep-alive connection that Apache closed (after a 400,
        // or at MaxKeepAliveRequests) as a socket error: printed, not judged.
        eprintln!("  socket errors (closed keep-alive connections): {}", counts.socket_errors);
        let seen: BTreeSet<u16> = counts.statuses.keys().copied().collect();
        assert_eq!(seen, expected, "{:?}", counts.statuses);
        let serious = soak_rig::serious_lines(&apache.error_log());
        assert!(serious.is_empty(), "{serious:#?}");
    }
}
