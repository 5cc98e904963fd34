//! The container readings of one batch, packed into BLOBs: per container its series id and N
//! metric values, little endian. One row per batch instead of one per container makes ingest a
//! single B-tree insert and lets a 1-hour dashboard query read 3,600 rows, not 360,000.
//!
//! A batch has two: `samples.readings` with the usage metrics ([`USAGE`] values, always present)
//! and `samples.contention` with pressure and throttling ([`CONTENTION`] values, NaN where the
//! agent sent none; the column is NULL when no container of the batch had any). Queries of usage
//! never decode the second.

/// Values of a usage entry: the metrics `Metric::USAGE`, in that order.
pub const USAGE: usize = 7;
/// Values of a contention entry: the metrics `Metric::CONTENTION`, in that order.
pub const CONTENTION: usize = 8;

/// One container's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry<const N: usize> {
    pub series_id: i64,
    pub values: [f64; N],
}

/// Bytes per container: series id (i64) plus the values (f64 each).
pub const fn entry_bytes(values: usize) -> usize {
    8 + 8 * values
}

pub fn push<const N: usize>(out: &mut Vec<u8>, entry: &Entry<N>) {
    out.extend_from_slice(&entry.series_id.to_le_bytes());
    for v in entry.values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn word(bytes: &[u8], at: usize) -> [u8; 8] {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    w
}

/// The entries of a blob; a trailing partial entry (never written by this service) is ignored.
pub fn entries<const N: usize>(blob: &[u8]) -> impl Iterator<Item = Entry<N>> + '_ {
    chunks(blob, N).map(|chunk| {
        let mut values = [0.0; N];
        let series_id = decode(chunk, &mut values);
        Entry { series_id, values }
    })
}

/// The undecoded entries of a blob of `values`-value entries (see [`decode`]).
pub fn chunks(blob: &[u8], values: usize) -> std::slice::ChunksExact<'_, u8> {
    blob.chunks_exact(entry_bytes(values))
}

/// Decodes one entry's values into `values` (as many as it holds) and returns its series id:
/// lets a scan fill its own buffer instead of copying an [`Entry`].
pub fn decode(chunk: &[u8], values: &mut [f64]) -> i64 {
    for (k, v) in values.iter_mut().enumerate() {
        *v = f64::from_le_bytes(word(chunk, 8 + 8 * k));
    }
    i64::from_le_bytes(word(chunk, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let a = Entry {
            series_id: 7,
            values: [1.5, 0.75, 1_048_576.0, 0.5, 0.0, 4096.0, 3.0],
        };
        let b = Entry {
            series_id: i64::MAX,
            values: [0.0; USAGE],
        };
        let mut blob = Vec::new();
        push(&mut blob, &a);
        push(&mut blob, &b);
        assert_eq!(blob.len(), 2 * entry_bytes(USAGE));
        blob.push(1); // partial tail ignored
        assert_eq!(entries::<USAGE>(&blob).collect::<Vec<_>>(), vec![a, b]);
    }

    #[test]
    fn absent_contention_values_stay_nan() {
        let mut values = [f64::NAN; CONTENTION];
        values[2] = 12.5;
        let mut blob = Vec::new();
        push(
            &mut blob,
            &Entry {
                series_id: 3,
                values,
            },
        );
        let back: Vec<Entry<CONTENTION>> = entries(&blob).collect();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].values[2], 12.5);
        assert!(back[0].values[0].is_nan() && back[0].values[7].is_nan());
    }
}
