//! IO stressor: small synced writes. Each worker writes 4 KiB blocks into its own file in
//! `--dir`, cycling over 1 MiB so the file stays small, and fdatasyncs after every block.

use crate::cli::IoArgs;
use crate::scratch::ScratchFile;
use crate::summary::Consumed;
use crate::{Error, Stop, workers};

const BLOCK: usize = 4096;
const BLOCKS_IN_FILE: u64 = 256;

pub fn run(args: &IoArgs, stop: &Stop) -> Result<Consumed, Error> {
    let used = workers::run("io", usize::from(args.workers.count), stop, |index| {
        let file = ScratchFile::create(&args.dir, "io", index)?;
        let mut used = Consumed::default();
        let mut block = [0u8; BLOCK];
        while !stop.is_stopped() {
            block[..8].copy_from_slice(&used.operations.to_le_bytes());
            let offset = (used.operations % BLOCKS_IN_FILE) * BLOCK as u64;
            file.write_at(&block, offset, &mut used)?;
            file.sync_data(&mut used)?;
            used.operations += 1;
        }
        file.remove()?;
        Ok(used)
    })?;
    Ok(used.into_iter().sum())
}
