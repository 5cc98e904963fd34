//! Deliver batches to the log service: oldest first, one at a time, retrying with exponential
//! backoff and jitter, from a bounded buffer that drops (and counts, and logs) only past its bound.
//!
//! The log service stores a `(boot_id, sequence)` once, so resending a batch whose answer was lost
//! is safe; the buffer keeps a batch until the service acknowledged it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use stressmix_api::readings::{READINGS_PATH, ReadingBatch};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::buffer::BatchBuffer;
use crate::metrics::{DropReason, Metrics};

#[derive(Debug, Clone)]
pub struct ShipperConfig {
    /// Base URL of the log service, e.g. `http://127.0.0.1:8000`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
    pub request_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub buffer_batches: usize,
}

/// Exponential backoff with "equal jitter": the n-th delay is uniformly drawn from
/// `[d/2, d]` with `d = min(initial * 2^n, max)`, so agents that lost the service together do not
/// come back in lockstep, yet none waits much less than the schedule.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(30));
        let ceiling = self.initial.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rng.random_range(0..=spread))
    }
}

enum Outcome {
    Stored,
    /// The service answered that the batch itself is wrong (400, 413, 415, 422); resending cannot help.
    Rejected(String),
    /// Network error, timeout, any other status: try again later.
    Retry(String),
}

pub struct Shipper {
    client: reqwest::Client,
    endpoint: String,
    buffer: Mutex<BatchBuffer>,
    wake: Notify,
    metrics: Arc<Metrics>,
    backoff: (Duration, Duration),
    token: Option<String>,
}

impl Shipper {
    pub fn new(config: &ShipperConfig, metrics: Arc<Metrics>) -> Result<Arc<Self>, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .build()?;
        Ok(Arc::new(Shipper {
            client,
            endpoint: format!("{}{}", config.base_url.trim_end_matches('/'), READINGS_PATH),
            buffer: Mutex::new(BatchBuffer::new(config.buffer_batches)),
            wake: Notify::new(),
            metrics,
            backoff: (config.backoff_initial, config.backoff_max),
            token: config.token.clone(),
        }))
    }

    fn buffer(&self) -> MutexGuard<'_, BatchBuffer> {
        // A panic while holding the lock cannot leave the queue half-updated (VecDeque ops are
        // atomic from our view), so a poisoned lock is still usable.
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a batch for delivery. Past the bound the oldest batch is dropped, counted and logged.
    pub fn enqueue(&self, batch: ReadingBatch) {
        let mut buffer = self.buffer();
        if let Some(dropped) = buffer.push(batch) {
            self.metrics.dropped(DropReason::BufferFull, 1);
            tracing::warn!(
                sequence = dropped.sequence,
                capacity = buffer.capacity(),
                total_dropped = self.metrics.dropped_total(DropReason::BufferFull),
                "buffer full: dropped the oldest batch"
            );
        }
        self.metrics.buffered.set(gauge(buffer.len()));
        drop(buffer);
        self.wake.notify_one();
    }

    pub fn buffered(&self) -> usize {
        self.buffer().len()
    }

    /// Send until `stop` carries a deadline and the buffer is empty, or the deadline passes; then
    /// whatever is still queued is counted and logged as dropped at shutdown.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<Option<Instant>>) {
        let mut backoff = Backoff::new(self.backoff.0, self.backoff.1);
        loop {
            let deadline = *stop.borrow_and_update();
            let next = self.buffer().oldest().cloned();
            let Some(batch) = next else {
                if deadline.is_some() {
                    return;
                }
                tokio::select! {
                    () = self.wake.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            };
            let attempt = self.send(&batch);
            let outcome = match deadline {
                Some(at) => match tokio::time::timeout_at(at, attempt).await {
                    Ok(outcome) => outcome,
                    Err(_) => return self.give_up_at_shutdown(),
                },
                None => attempt.await,
            };
            match outcome {
                Outcome::Stored => {
                    backoff.reset();
                    self.metrics.batches_sent.inc();
                    self.finish(batch.sequence);
                }
                Outcome::Rejected(why) => {
                    backoff.reset();
                    self.metrics.dropped(DropReason::Rejected, 1);
                    tracing::error!(sequence = batch.sequence, reason = %why, "log service rejected the batch; dropped it");
                    self.finish(batch.sequence);
                }
                Outcome::Retry(why) => {
                    self.metrics.retries.inc();
                    let delay = backoff.next_delay(&mut rand::rng());
                    tracing::warn!(
                        sequence = batch.sequence,
                        error = %why,
                        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        buffered = self.buffered(),
                        "sending the batch failed; will retry"
                    );
                    let wake_at = Instant::now() + delay;
                    match deadline {
                        Some(at) if at <= wake_at => {
                            tokio::time::sleep_until(at).await;
                            return self.give_up_at_shutdown();
                        }
                        Some(_) => tokio::time::sleep_until(wake_at).await,
                        None => {
                            // A shutdown request ends the wait early: flushing then starts at once.
                            tokio::select! {
                                () = tokio::time::sleep_until(wake_at) => {}
                                _ = stop.changed() => {}
                            }
                        }
                    }
                }
            }
        }
    }

    fn finish(&self, sequence: u64) {
        let mut buffer = self.buffer();
        buffer.remove(sequence);
        self.metrics.buffered.set(gauge(buffer.len()));
    }

    fn give_up_at_shutdown(&self) {
        let unsent = self.buffer().drain_unsent();
        self.metrics.buffered.set(0);
        if unsent.is_empty() {
            return;
        }
        self.metrics
            .dropped(DropReason::Shutdown, unsent.len() as u64);
        tracing::error!(
            count = unsent.len(),
            first_sequence = unsent.first().map(|b| b.sequence),
            last_sequence = unsent.last().map(|b| b.sequence),
            "shutdown grace period over: batches not delivered were dropped"
        );
    }

    async fn send(&self, batch: &ReadingBatch) -> Outcome {
        let mut request = self.client.post(&self.endpoint).json(batch);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        let status = response.status();
        if status.is_success() {
            return Outcome::Stored;
        }
        let body = response.text().await.unwrap_or_default();
        let why = format!("HTTP {status}: {}", body.trim());
        // Only answers about the batch itself are final; a wrong token (401/403), overload (429)
        // or a server error may heal, so those batches stay queued.
        if matches!(status.as_u16(), 400 | 413 | 415 | 422) {
            Outcome::Rejected(why)
        } else {
            Outcome::Retry(why)
        }
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let bounds = [100u64, 200, 400, 800, 1000, 1000, 1000];
        for ceiling in bounds {
            let d = b.next_delay(&mut rng);
            assert!(
                d >= Duration::from_millis(ceiling / 2) && d <= Duration::from_millis(ceiling),
                "{d:?} outside [{}, {ceiling}] ms",
                ceiling / 2
            );
        }
        b.reset();
        assert!(b.next_delay(&mut rng) <= Duration::from_millis(100));
    }

    #[test]
    fn backoff_jitter_varies() {
        let mut rng = StdRng::seed_from_u64(1);
        let delays: std::collections::HashSet<Duration> = (0..20)
            .map(|_| {
                let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
                b.next_delay(&mut rng)
            })
            .collect();
        assert!(delays.len() > 10, "jitter should spread delays: {delays:?}");
    }

    #[test]
    fn backoff_never_overflows() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..100 {
            assert!(b.next_delay(&mut rng) <= Duration::from_secs(30));
        }
    }
}
