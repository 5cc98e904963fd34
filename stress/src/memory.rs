//! Memory stressor: holds `--bytes` (split across workers), every page written, and writes one
//! byte of every page again each second so the set stays resident (hot for reclaim and swap).

use std::hint::black_box;
use std::time::Duration;

use crate::cli::MemoryArgs;
use crate::summary::Consumed;
use crate::{Error, Stop, workers};

/// Stride that hits every page for any page size of at least 4 KiB.
const PAGE: usize = 4096;
const RETOUCH_EVERY: Duration = Duration::from_secs(1);

/// Returns what was held and the buffers themselves, so the caller can measure the resident
/// set before they are released.
pub fn run(args: &MemoryArgs, stop: &Stop) -> Result<(Consumed, Vec<Vec<u8>>), Error> {
    let shares = workers::split(args.bytes, usize::from(args.workers.count))?;
    let buffers = workers::run("memory", shares.len(), stop, |index| {
        worker(index, shares[index], stop)
    })?;
    let held_bytes = buffers.iter().map(|b| b.len() as u64).sum();
    Ok((
        Consumed {
            held_bytes,
            ..Consumed::default()
        },
        buffers,
    ))
}

fn worker(index: usize, bytes: u64, stop: &Stop) -> Result<Vec<u8>, Error> {
    let too_big = || Error::Allocate {
        worker: index,
        bytes,
    };
    let len = usize::try_from(bytes).map_err(|_| too_big())?;
    let mut buffer: Vec<u8> = Vec::new();
    buffer.try_reserve_exact(len).map_err(|_| too_big())?;
    // A non-zero fill writes every byte, so every page is faulted in (zero fills may be elided).
    buffer.resize(len, 0xa5);
    tracing::debug!(worker = index, bytes, "memory touched");
    while !stop.sleep(RETOUCH_EVERY) {
        for i in (0..len).step_by(PAGE) {
            buffer[i] = buffer[i].wrapping_add(1);
        }
        black_box(&mut buffer);
    }
    Ok(buffer)
}
