//! When a run ends: at its deadline, on SIGTERM/SIGINT, or when a worker fails.
//!
//! Workers poll [`Stop::is_stopped`] between small units of work and sleep only through
//! [`Stop::sleep_until`], which a signal wakes at once, so a run ends well within a second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::Error;

#[derive(Clone, Debug)]
pub struct Stop(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    deadline: Option<Instant>,
    stopped: AtomicBool,
    by_signal: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Stop {
    /// A run that ends after `duration`, or only when asked to when `duration` is `None`
    /// (or too far in the future to represent).
    pub fn new(duration: Option<Duration>) -> Self {
        let deadline = duration.and_then(|d| Instant::now().checked_add(d));
        Stop(Arc::new(Inner {
            deadline,
            stopped: AtomicBool::new(false),
            by_signal: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }))
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
            || self.0.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Ends the run (a worker failed, or the caller is done).
    pub fn request(&self) {
        self.0.stopped.store(true, Ordering::Release);
        // Taking the lock orders this store before any sleeper's next check.
        let _guard = self.0.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.0.wake.notify_all();
    }

    fn request_by_signal(&self) {
        self.0.by_signal.store(true, Ordering::Release);
        self.request();
    }

    pub fn stopped_by_signal(&self) -> bool {
        self.0.by_signal.load(Ordering::Acquire)
    }

    /// Sleeps until `until` or the end of the run, whichever comes first.
    /// Returns whether the run is over.
    pub fn sleep_until(&self, until: Instant) -> bool {
        let until = self.0.deadline.map_or(until, |d| d.min(until));
        let mut guard = self.0.lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.0.stopped.load(Ordering::Acquire) {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return self.is_stopped();
            }
            guard = self
                .0
                .wake
                .wait_timeout(guard, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub fn sleep(&self, duration: Duration) -> bool {
        match Instant::now().checked_add(duration) {
            Some(until) => self.sleep_until(until),
            None => self.sleep_until(Instant::now() + Duration::from_secs(3600)),
        }
    }

    /// The first SIGTERM/SIGINT ends the run gracefully; a second one exits at once.
    pub fn on_signals(&self) -> Result<(), Error> {
        let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(Error::Signals)?;
        let stop = self.clone();
        thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for (seen, signal) in signals.forever().enumerate() {
                    if seen == 0 {
                        tracing::info!(signal, "signal received, stopping");
                        stop.request_by_signal();
                    } else {
                        tracing::warn!(signal, "second signal received, exiting without cleanup");
                        std::process::exit(128 + signal);
                    }
                }
            })
            .map_err(Error::Spawn)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wakes_a_sleeper_at_once() {
        let stop = Stop::new(None);
        let sleeper = {
            let stop = stop.clone();
            thread::spawn(move || {
                let start = Instant::now();
                let over = stop.sleep(Duration::from_secs(30));
                (over, start.elapsed())
            })
        };
        thread::sleep(Duration::from_millis(50));
        stop.request();
        let (over, slept) = sleeper.join().expect("sleeper thread");
        assert!(over);
        assert!(slept < Duration::from_secs(1), "slept {slept:?}");
        assert!(!stop.stopped_by_signal());
    }

    #[test]
    fn deadline_ends_the_run_and_caps_sleeps() {
        let stop = Stop::new(Some(Duration::from_millis(100)));
        assert!(!stop.is_stopped());
        let start = Instant::now();
        assert!(stop.sleep(Duration::from_secs(30)));
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(stop.is_stopped());
    }

    #[test]
    fn unrepresentable_duration_means_no_deadline() {
        let stop = Stop::new(Some(Duration::from_secs(u64::MAX)));
        assert!(!stop.is_stopped());
        assert!(!stop.sleep(Duration::from_millis(1)));
    }
}
