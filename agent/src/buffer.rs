//! The bounded queue of batches waiting to be delivered.
//!
//! It holds at most `capacity` batches; pushing onto a full queue drops the oldest one and returns
//! it so the caller counts and logs the drop. Nothing leaves the queue any other way than by being
//! delivered (`remove`) or dropped (`push` past the bound, `drain_unsent` at shutdown).

use std::collections::VecDeque;

use stressmix_api::readings::ReadingBatch;

#[derive(Debug)]
pub struct BatchBuffer {
    queue: VecDeque<ReadingBatch>,
    capacity: usize,
}

impl BatchBuffer {
    /// A buffer of at least one batch.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        BatchBuffer {
            queue: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queue a batch; when the bound is exceeded the oldest batch is dropped and returned.
    #[must_use = "a dropped batch must be counted and logged"]
    pub fn push(&mut self, batch: ReadingBatch) -> Option<ReadingBatch> {
        let dropped = if self.queue.len() >= self.capacity {
            self.queue.pop_front()
        } else {
            None
        };
        self.queue.push_back(batch);
        dropped
    }

    /// The oldest batch, to send next (cloned: it stays queued until delivered).
    pub fn oldest(&self) -> Option<&ReadingBatch> {
        self.queue.front()
    }

    /// Remove the batch with this sequence number after delivery. It may already be gone if it was
    /// dropped while it was in flight; then nothing happens.
    pub fn remove(&mut self, sequence: u64) -> bool {
        match self.queue.iter().position(|b| b.sequence == sequence) {
            Some(at) => self.queue.remove(at).is_some(),
            None => false,
        }
    }

    /// Everything still queued, oldest first (at shutdown, when the grace period has run out).
    pub fn drain_unsent(&mut self) -> Vec<ReadingBatch> {
        self.queue.drain(..).collect()
    }
}

#[cfg(test)]
pub(crate) fn test_batch(sequence: u64) -> ReadingBatch {
    use stressmix_api::readings::{NodeReading, ReadingSource};
    ReadingBatch {
        node_name: "node-a".into(),
        boot_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        sequence,
        timestamp_ms: 1_700_000_000_000 + sequence,
        source: ReadingSource::Cgroupfs,
        source_reason: None,
        node: NodeReading {
            memory_total_bytes: 1,
            memory_free_bytes: 1,
            memory_available_bytes: 1,
            memory_used_bytes: 0,
            cpu_percent: 0.0,
            cpus: 1,
        },
        containers: Vec::new(),
        field_sources: None,
        oom_kills: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_oldest_only_past_the_bound() {
        let mut buffer = BatchBuffer::new(3);
        for seq in 0..3 {
            assert!(buffer.push(test_batch(seq)).is_none());
        }
        assert_eq!(buffer.len(), 3);
        let dropped = buffer.push(test_batch(3)).expect("full: oldest dropped");
        assert_eq!(dropped.sequence, 0);
        let dropped = buffer.push(test_batch(4)).expect("full: oldest dropped");
        assert_eq!(dropped.sequence, 1);
        assert_eq!(buffer.oldest().map(|b| b.sequence), Some(2));
    }

    #[test]
    fn remove_by_sequence_tolerates_batches_dropped_in_flight() {
        let mut buffer = BatchBuffer::new(2);
        assert!(buffer.push(test_batch(7)).is_none());
        assert!(buffer.push(test_batch(8)).is_none());
        assert!(buffer.remove(7));
        assert!(!buffer.remove(7));
        assert_eq!(
            buffer
                .drain_unsent()
                .iter()
                .map(|b| b.sequence)
                .collect::<Vec<_>>(),
            vec![8]
        );
        assert!(buffer.is_empty());
    }

    #[test]
    fn zero_capacity_is_raised_to_one() {
        let mut buffer = BatchBuffer::new(0);
        assert_eq!(buffer.capacity(), 1);
        assert!(buffer.push(test_batch(0)).is_none());
        assert_eq!(buffer.push(test_batch(1)).map(|b| b.sequence), Some(0));
    }
}
