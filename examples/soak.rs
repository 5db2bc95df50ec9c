//! The soak: a mixed load (tests/support/soak_rig.rs) through wrk until
//! `REQUESTS` requests (default 10^6) have been answered, by the cached and
//! the uncached server in turn, in rounds of `ROUND` seconds (default 20).
//! Reports the answers by status, any 2xx without a completion, error-log
//! lines above warn, and each server's children's resident memory after a
//! warm-up of `WARMUP` seconds per server (default 60: 25 threads' malloc
//! arenas and the directory connections reach their working size) and at
//! the end (growth should stay under 2 %).
//!
//! Build with `cargo build --release --workspace --lib --bins --examples`,
//! then run `target/release/examples/soak [REQUESTS] [ROUND] [WARMUP]`
//! (scripts/soak.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

#[path = "../tests/support/soak_rig.rs"]
mod soak_rig;

use testkit::apache::{Apache, ApacheOptions};
use testkit::soak::{children_rss_kib, run_wrk, Counts};

fn rss_total(apache: &Apache) -> u64 {
    children_rss_kib(apache.pid().expect("running")).iter().map(|(_, kib)| kib).sum()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let target: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let round: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let warmup: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);
    let rig = soak_rig::rig(ApacheOptions { threads: 25, servers: 2, ..ApacheOptions::default() });
    let mix = soak_rig::mix();
    let servers = [("cached", &rig.stack.protected), ("uncached", &rig.uncached)];
    let dir = rig.stack.dir.path();

    // Warm-up: pools, caches and allocators reach their working size.
    let mut warmed = 0;
    for (_, apache) in servers {
        warmed += run_wrk(dir, apache.port, &mix, warmup, 32).requests;
    }
    eprintln!("warm-up: {warmed} requests");
    let baseline: Vec<u64> = servers.iter().map(|(_, a)| rss_total(a)).collect();
    let mut totals = [Counts::default(), Counts::default()];
    let started = std::time::Instant::now();
    while totals.iter().map(|c| c.requests).sum::<u64>() < target {
        for (i, (_, apache)) in servers.iter().enumerate() {
            let counts = run_wrk(dir, apache.port, &mix, round, 32);
            totals[i].add(&counts);
        }
        let done: u64 = totals.iter().map(|c| c.requests).sum();
        let rss: Vec<u64> = servers.iter().map(|(_, a)| rss_total(a)).collect();
        eprintln!("{done} requests after {:.0} s; children RSS KiB {rss:?}", started.elapsed().as_secs_f64());
    }
    println!(
        "soak: {} requests in {:.0} s",
        totals.iter().map(|c| c.requests).sum::<u64>(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>7}",
        "server", "requests", "200", "303", "400", "401", "403", "other", "rss KiB", "after", "growth"
    );
    for (i, (name, apache)) in servers.iter().enumerate() {
        let c = &totals[i];
        let get = |s: u16| c.statuses.get(&s).copied().unwrap_or(0);
        let other: u64 =
            c.statuses.iter().filter(|(s, _)| ![200, 303, 400, 401, 403].contains(*s)).map(|(_, n)| n).sum();
        let after = rss_total(apache);
        let growth = (after as f64 - baseline[i] as f64) / baseline[i] as f64 * 100.0;
        println!(
            "{name:<9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {other:>7} {:>9} {after:>9} {growth:>6.2}%",
            c.requests,
            get(200),
            get(303),
            get(400),
            get(401),
            get(403),
            baseline[i]
        );
        println!("          unauthorized 2xx: {}, socket errors: {}", c.unauthorized_2xx, c.socket_errors);
        let serious = soak_rig::serious_lines(&apache.error_log());
        println!("          error-log lines above warn: {}", serious.len());
        for line in serious.iter().take(5) {
            println!("            {line}");
        }
    }
}
