//! Disk stressor: each worker writes its share of `--bytes` as one file in `--dir`, syncs it,
//! drops it from the page cache, reads it back, verifies every byte and deletes it; repeated
//! until the run ends. A stop mid-round deletes the partial file.

use std::path::Path;

use crate::cli::DiskArgs;
use crate::scratch::ScratchFile;
use crate::summary::Consumed;
use crate::{Error, Stop, workers};

const CHUNK: u64 = 1 << 20;
/// Sync at least this often while writing, so a stop never waits on one huge flush.
const SYNC_EVERY: u64 = 8 << 20;

pub fn run(args: &DiskArgs, stop: &Stop) -> Result<Consumed, Error> {
    let shares = workers::split(args.bytes, usize::from(args.workers.count))?;
    let used = workers::run("disk", shares.len(), stop, |index| {
        let mut used = Consumed::default();
        let mut round = 0u64;
        while !stop.is_stopped() {
            let seed = ((index as u64) << 32) ^ round;
            if one_round(&args.dir, index, shares[index], seed, stop, &mut used)? {
                used.operations += 1;
            }
            round += 1;
        }
        Ok(used)
    })?;
    Ok(used.into_iter().sum())
}

/// Returns whether the round completed (false: stopped part-way, file deleted).
fn one_round(
    dir: &Path,
    worker: usize,
    size: u64,
    seed: u64,
    stop: &Stop,
    used: &mut Consumed,
) -> Result<bool, Error> {
    let file = ScratchFile::create(dir, "disk", worker)?;
    let mut buf = vec![0u8; CHUNK.min(size) as usize];
    let mut unsynced = 0;
    for offset in (0..size).step_by(CHUNK as usize) {
        if stop.is_stopped() {
            return Ok(false);
        }
        let chunk = &mut buf[..(size - offset).min(CHUNK) as usize];
        fill(chunk, seed, offset);
        file.write_at(chunk, offset, used)?;
        unsynced += chunk.len() as u64;
        if unsynced >= SYNC_EVERY {
            file.sync_data(used)?;
            unsynced = 0;
        }
    }
    if unsynced > 0 {
        file.sync_data(used)?;
    }
    file.drop_cache();
    let mut expected = vec![0u8; buf.len()];
    for offset in (0..size).step_by(CHUNK as usize) {
        if stop.is_stopped() {
            return Ok(false);
        }
        let len = (size - offset).min(CHUNK) as usize;
        file.read_at(&mut buf[..len], offset, used)?;
        fill(&mut expected[..len], seed, offset);
        if buf[..len] != expected[..len] {
            let at = buf
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(Error::Corrupt {
                path: file.path.clone(),
                offset: offset + at as u64,
            });
        }
    }
    file.remove()?;
    Ok(true)
}

/// Deterministic content for byte range `offset..offset + buf.len()` of a round's file;
/// `offset` is a multiple of 8 (chunks are).
fn fill(buf: &mut [u8], seed: u64, offset: u64) {
    debug_assert_eq!(offset % 8, 0);
    let first_word = offset / 8;
    for (i, bytes) in buf.chunks_mut(8).enumerate() {
        // Cheap mix of the seed and the word index; varies with every round and worker.
        let word = (seed ^ (first_word + i as u64)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        bytes.copy_from_slice(&word.to_le_bytes()[..bytes.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_positional_and_seeded() {
        let mut whole = vec![0u8; 64];
        fill(&mut whole, 7, 0);
        let mut tail = vec![0u8; 24];
        fill(&mut tail, 7, 40);
        assert_eq!(&whole[40..], &tail[..]);
        let mut other = vec![0u8; 64];
        fill(&mut other, 8, 0);
        assert_ne!(whole, other);
    }

    #[test]
    fn round_writes_verifies_and_deletes() {
        let dir = std::env::temp_dir().join(format!("stressmix-disk-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let stop = Stop::new(None);
        let mut used = Consumed::default();
        let size = 3 * CHUNK + 123;
        assert!(one_round(&dir, 0, size, 42, &stop, &mut used).expect("round"));
        assert_eq!((used.bytes_written, used.bytes_read), (size, size));
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 0);
        std::fs::remove_dir(&dir).expect("remove temp dir");
    }
}
