//! A long mixed load with wrk, for the soak script (examples/soak.rs) and
//! its short version in the tests: allowed requests (cached and uncached),
//! navigations and XHRs without a completion, look-ups of cookies without
//! a completion, spoofed gateway secrets and ambiguous paths, in turn.
//! wrk's Lua counts the answers by status and checks every 2xx: the echo
//! backend repeats the request line, so a 2xx of any kind but the allowed
//! ones is caught.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

/// One kind of request of the mix.
pub struct Kind {
    /// Also the last segment of its path: `/app/soak-NAME`.
    pub name: &'static str,
    pub headers: Vec<(String, String)>,
    /// A path of its own instead of `/app/soak-NAME`.
    pub path: Option<String>,
    /// The answer it must get.
    pub expect: u16,
    /// Whether a 2xx is its right answer (a valid completion).
    pub allowed: bool,
}

/// What a wrk run saw.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub requests: u64,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// 2xx answers to a request of a kind that must not be let in.
    pub unauthorized_2xx: u64,
    /// Socket errors (connect, read, write, timeout) as wrk counts them.
    pub socket_errors: u64,
    pub requests_per_second: f64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.requests += other.requests;
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_insert(0) += n;
        }
        self.unauthorized_2xx += other.unauthorized_2xx;
        self.socket_errors += other.socket_errors;
    }
}

fn lua_string(s: &str) -> String {
    format!("{s:?}")
}

/// The wrk script for `mix`: requests in turn; counts and checks in Lua.
pub fn wrk_script(mix: &[Kind]) -> String {
    let mut requests = String::new();
    for kind in mix {
        let path = kind.path.clone().unwrap_or_else(|| format!("/app/soak-{}", kind.name));
        // wrk adds no Host header to requests made before it connects.
        let host = ("Host".to_string(), "127.0.0.1".to_string());
        let headers: Vec<String> = std::iter::once(&host)
            .chain(&kind.headers)
            .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_string(v)))
            .collect();
        requests.push_str(&format!("  wrk.format(\"GET\", {}, {{ {} }}),\n", lua_string(&path), headers.join(", ")));
    }
    format!(
        r#"local requests = {{
{requests}}}
local threads = {{}}
local n = 0
statuses = {{}}
unauthorized = 0

function setup(thread)
  table.insert(threads, thread)
end

function request()
  n = n + 1
  return requests[(n % #requests) + 1]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 200 and status < 300 and not string.find(body, "GET /app/soak%-allowed", 1, false) then
    unauthorized = unauthorized + 1
  end
end

function done(summary, latency, requests)
  local total = {{}}
  local bad = 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
    bad = bad + thread:get("unauthorized")
  end
  for status, count in pairs(total) do
    io.write(string.format("soak-status %d %d\n", status, count))
  end
  io.write(string.format("soak-unauthorized %d\n", bad))
  local e = summary.errors
  io.write(string.format("soak-socket-errors %d\n", e.connect + e.read + e.write + e.timeout))
  io.write(string.format("soak-requests %d %f\n", summary.requests, summary.requests / (summary.duration / 1e6)))
end
"#
    )
}

/// Runs wrk against 127.0.0.1:`port` for `seconds` with the script in `dir`.
pub fn run_wrk(dir: &Path, port: u16, mix: &[Kind], seconds: u64, connections: u32) -> Counts {
    let script = dir.join("soak.lua");
    fs::write(&script, wrk_script(mix)).expect("write soak.lua");
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--timeout", "10s"])
        .arg("-s")
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = Counts::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["soak-status", status, n] => {
                counts.statuses.insert(status.parse().unwrap_or(0), n.parse().unwrap_or(0));
            }
            ["soak-unauthorized", n] => counts.unauthorized_2xx = n.parse().unwrap_or(0),
            ["soak-socket-errors", n] => counts.socket_errors = n.parse().unwrap_or(0),
            ["soak-requests", n, rate] => {
                counts.requests = n.parse().unwrap_or(0);
                counts.requests_per_second = rate.parse().unwrap_or(0.0);
            }
            _ => {}
        }
    }
    assert!(counts.requests > 0, "wrk did not run:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    counts
}

/// Resident memory (KiB) of each child of the Apache whose parent is `pid`.
pub fn children_rss_kib(pid: u32) -> Vec<(u32, u64)> {
    let mut children = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else { return children };
    for entry in entries.filter_map(Result::ok) {
        let Some(child) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(status) = fs::read_to_string(format!("/proc/{child}/status")) else { continue };
        let field = |name: &str| {
            status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok())
        };
        if field("PPid:") == Some(u64::from(pid)) {
            if let Some(rss) = field("VmRSS:") {
                children.push((child, rss));
            }
        }
    }
    children.sort_unstable();
    children
}
