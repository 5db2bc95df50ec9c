//! A small load for fault-injection tests: a few threads sending a fixed
//! mix of requests in turn until stopped, recording what each got and
//! how long it took. Every request is its own connection (the module's
//! decisions are per request; keep-alive would add nothing here).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http::Request;

/// One answered request: which of the mix it was, its status (0: no
/// answer), when it was sent and how long it took, and its body.
#[derive(Debug, Clone)]
pub struct Sample {
    pub kind: usize,
    pub status: u16,
    pub sent: Instant,
    pub elapsed: Duration,
    pub body: Vec<u8>,
}

impl Sample {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Sample>>>,
}

impl Load {
    /// Starts `threads` threads that send the requests of `mix` in turn to
    /// 127.0.0.1:`port` (each thread starting at a different one).
    pub fn start(port: u16, mix: Vec<Request>, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mix = Arc::new(mix);
        let threads = (0..threads)
            .map(|t| {
                let (stop, mix) = (stop.clone(), mix.clone());
                std::thread::spawn(move || {
                    let mut samples = Vec::new();
                    let mut i = t;
                    while !stop.load(Ordering::Relaxed) {
                        let kind = i % mix.len();
                        let sent = Instant::now();
                        let r = mix[kind].send(port);
                        samples.push(Sample { kind, status: r.status, sent, elapsed: sent.elapsed(), body: r.body });
                        i += 1;
                    }
                    samples
                })
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops the threads (each finishes its request in flight); every sample, in no order.
    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().flat_map(|t| t.join().unwrap_or_default()).collect()
    }
}
