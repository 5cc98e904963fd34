//! The container readings of one batch, packed into BLOBs. One row per batch instead of one per
//! container makes ingest a single B-tree insert and lets a 1-hour dashboard query read 3,600
//! rows, not 360,000.
//!
//! A batch has up to two:
//! - `samples.readings`, the usage entries: per container its series id (i64) and the [`USAGE`]
//!   values (f64), little endian;
//! - `samples_contention.entries`, only for a batch that carried pressure or throttling: per
//!   container, at the position of its usage entry, the [`CONTENTION`] values in 32 bits each
//!   ([`encode_decimal`]: 8 significant decimal digits, so a value the agent sent as 0.9 reads back
//!   as 0.9), [`ABSENT`] where the agent sent none. Half the bytes of f64 keep the rows of a batch
//!   nearly as small as its usage row was before contention: ingest is bound by the bytes each
//!   commit writes.
//!
//! Queries of usage never read the second.

/// Values of a usage entry: the metrics `Metric::USAGE`, in that order.
pub const USAGE: usize = 7;
/// Values of a contention entry: the metrics `Metric::CONTENTION`, in that order.
pub const CONTENTION: usize = 8;

/// Bytes per container in `samples.readings`: series id (i64) plus the values (f64 each).
pub const USAGE_ENTRY_BYTES: usize = 8 + 8 * USAGE;
/// Bytes per container in `samples_contention.entries`: the values (32 bits each).
pub const CONTENTION_ENTRY_BYTES: usize = 4 * CONTENTION;

/// One container's usage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsageEntry {
    pub series_id: i64,
    pub values: [f64; USAGE],
}

pub fn push_usage(out: &mut Vec<u8>, entry: &UsageEntry) {
    out.extend_from_slice(&entry.series_id.to_le_bytes());
    for v in entry.values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Appends one container's contention values (NaN = absent) at the next position.
pub fn push_contention(out: &mut Vec<u8>, values: &[f64; CONTENTION]) {
    for v in values {
        out.extend_from_slice(&encode_decimal(*v).to_le_bytes());
    }
}

/// The encoding of an absent value.
pub const ABSENT: u32 = u32::MAX;
/// Bits of the decimal mantissa; the 5 bits above hold the count of decimal places.
const MANTISSA_BITS: u32 = 27;
const MANTISSA_MAX: u32 = (1 << MANTISSA_BITS) - 1;
/// Most decimal places: 10^22 is the largest power of ten an f64 holds exactly, so dividing by it
/// rounds correctly.
const MAX_PLACES: usize = 22;
/// 10^0 ..= 10^22, exact.
const POW10: [f64; MAX_PLACES + 1] = {
    let mut table = [1.0; MAX_PLACES + 1];
    let mut k = 1;
    while k <= MAX_PLACES {
        table[k] = table[k - 1] * 10.0;
        k += 1;
    }
    table
};
/// 10^-14 ..= 10^8: where a value's first significant digit lies.
const MAGNITUDES: [f64; 23] = [
    1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0,
    1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8,
];

/// A non-negative value (validated: at most `limits::MAX_CONTENTION_VALUE`, 10^8) as a decimal
/// with 8 significant digits: the mantissa in the low 27 bits, the count of decimal places (0 to
/// 22) above them; NaN is [`ABSENT`]. Values below 10^-14 keep fewer digits.
pub fn encode_decimal(v: f64) -> u32 {
    if v.is_nan() {
        return ABSENT;
    }
    let v = v.max(0.0);
    // v < 10^(p - 14) for the first bound above it, so v * 10^(22 - p) < 10^8 fits the mantissa.
    let p = MAGNITUDES.partition_point(|bound| v >= *bound);
    let places = MAX_PLACES.saturating_sub(p);
    let mantissa = (v * POW10[places]).round().min(f64::from(MANTISSA_MAX)) as u32;
    ((places as u32) << MANTISSA_BITS) | mantissa
}

/// The value of [`encode_decimal`]'s encoding: the f64 nearest the decimal (NaN for [`ABSENT`]).
pub fn decode_decimal(code: u32) -> f64 {
    let places = (code >> MANTISSA_BITS) as usize;
    match POW10.get(places) {
        Some(scale) => f64::from(code & MANTISSA_MAX) / scale,
        None => f64::NAN,
    }
}

fn word<const B: usize>(bytes: &[u8], at: usize) -> [u8; B] {
    let mut w = [0u8; B];
    w.copy_from_slice(&bytes[at..at + B]);
    w
}

/// The usage entries of a blob; a trailing partial entry (never written by this service) is
/// ignored.
pub fn usage_entries(blob: &[u8]) -> impl Iterator<Item = UsageEntry> + '_ {
    usage_chunks(blob).map(|chunk| {
        let mut values = [0.0; USAGE];
        let series_id = decode_usage(chunk, &mut values);
        UsageEntry { series_id, values }
    })
}

/// The undecoded usage entries of a blob (see [`decode_usage`]).
pub fn usage_chunks(blob: &[u8]) -> std::slice::ChunksExact<'_, u8> {
    blob.chunks_exact(USAGE_ENTRY_BYTES)
}

/// Decodes one usage entry's values into `values` and returns its series id: lets a scan fill its
/// own buffer instead of copying a [`UsageEntry`].
pub fn decode_usage(chunk: &[u8], values: &mut [f64]) -> i64 {
    for (k, v) in values.iter_mut().take(USAGE).enumerate() {
        *v = f64::from_le_bytes(word(chunk, 8 + 8 * k));
    }
    i64::from_le_bytes(word(chunk, 0))
}

/// The undecoded contention entries of a blob, in the order of the batch's usage entries.
pub fn contention_chunks(blob: &[u8]) -> std::slice::ChunksExact<'_, u8> {
    blob.chunks_exact(CONTENTION_ENTRY_BYTES)
}

/// Value `k` of one contention entry (NaN = absent).
pub fn contention_value(chunk: &[u8], k: usize) -> f64 {
    decode_decimal(u32::from_le_bytes(word(chunk, 4 * k)))
}

/// The contention entries of a blob, decoded.
pub fn contention_entries(blob: &[u8]) -> impl Iterator<Item = [f64; CONTENTION]> + '_ {
    contention_chunks(blob).map(|chunk| std::array::from_fn(|k| contention_value(chunk, k)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_round_trips() {
        let a = UsageEntry {
            series_id: 7,
            values: [1.5, 0.75, 1_048_576.0, 0.5, 0.0, 4096.0, 3.0],
        };
        let b = UsageEntry {
            series_id: i64::MAX,
            values: [0.0; USAGE],
        };
        let mut blob = Vec::new();
        push_usage(&mut blob, &a);
        push_usage(&mut blob, &b);
        assert_eq!(blob.len(), 2 * USAGE_ENTRY_BYTES);
        blob.push(1); // partial tail ignored
        assert_eq!(usage_entries(&blob).collect::<Vec<_>>(), vec![a, b]);
    }

    #[test]
    fn contention_keeps_what_was_sent_and_absent_values_stay_nan() {
        let mut first = [f64::NAN; CONTENTION];
        first[2] = 12.5;
        first[5] = 0.9;
        let second = [99.999_9, 0.0, 0.001, 1e-6, 64.0, 100.0, 50.25, 1_234.567];
        let mut blob = Vec::new();
        push_contention(&mut blob, &first);
        push_contention(&mut blob, &second);
        assert_eq!(blob.len(), 2 * CONTENTION_ENTRY_BYTES);
        blob.extend_from_slice(&[0, 0]); // partial tail ignored
        let back: Vec<[f64; CONTENTION]> = contention_entries(&blob).collect();
        assert_eq!(back.len(), 2);
        assert_eq!((back[0][2], back[0][5]), (12.5, 0.9));
        for k in [0, 1, 3, 4, 6, 7] {
            assert!(back[0][k].is_nan(), "value {k} absent");
        }
        assert_eq!(
            back[1], second,
            "decimals of up to 8 digits come back as sent"
        );
    }

    #[test]
    fn decimals_keep_eight_significant_digits_over_the_whole_range() {
        let mut v = 1e-14;
        while v < 1.5e7 {
            for x in [v, v * 1.234_567_891_2, v * 9.999_999_999] {
                let back = decode_decimal(encode_decimal(x));
                assert!((back - x).abs() <= x * 5e-8, "{x} came back as {back}");
            }
            v *= 10.0;
        }
        assert_eq!(decode_decimal(encode_decimal(1e8)), 1e8);
        assert_eq!(decode_decimal(encode_decimal(0.0)), 0.0);
        assert_eq!(decode_decimal(encode_decimal(33.333_333_333)), 33.333_333);
        assert!(decode_decimal(encode_decimal(f64::NAN)).is_nan());
        assert_eq!(encode_decimal(f64::NAN), ABSENT);
    }
}
