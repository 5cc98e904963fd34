//! Files the io and disk stressors create in `--dir`; removed on drop so no run leaves litter.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::summary::Consumed;

pub(crate) struct ScratchFile {
    pub file: File,
    pub path: PathBuf,
    removed: bool,
}

impl ScratchFile {
    /// Creates (or truncates) `<dir>/stressmix-<kind>-<pid>-<worker>.dat`.
    pub fn create(dir: &Path, kind: &str, worker: usize) -> Result<Self, Error> {
        let path = dir.join(format!(
            "stressmix-{kind}-{}-{worker}.dat",
            std::process::id()
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(Error::file("create", &path))?;
        Ok(ScratchFile {
            file,
            path,
            removed: false,
        })
    }

    /// Writes all of `buf` at `offset`, counting every pwrite(2).
    pub fn write_at(&self, buf: &[u8], offset: u64, used: &mut Consumed) -> Result<(), Error> {
        let mut done = 0;
        while done < buf.len() {
            let n = self
                .file
                .write_at(&buf[done..], offset + done as u64)
                .map_err(Error::file("write", &self.path))?;
            used.write_syscalls += 1;
            if n == 0 {
                return Err(Error::File {
                    op: "write",
                    path: self.path.clone(),
                    source: std::io::ErrorKind::WriteZero.into(),
                });
            }
            done += n;
            used.bytes_written += n as u64;
        }
        Ok(())
    }

    /// Fills all of `buf` from `offset`, counting every pread(2).
    pub fn read_at(&self, buf: &mut [u8], offset: u64, used: &mut Consumed) -> Result<(), Error> {
        let mut done = 0;
        while done < buf.len() {
            let n = self
                .file
                .read_at(&mut buf[done..], offset + done as u64)
                .map_err(Error::file("read", &self.path))?;
            used.read_syscalls += 1;
            if n == 0 {
                return Err(Error::File {
                    op: "read",
                    path: self.path.clone(),
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                });
            }
            done += n;
            used.bytes_read += n as u64;
        }
        Ok(())
    }

    pub fn sync_data(&self, used: &mut Consumed) -> Result<(), Error> {
        self.file
            .sync_data()
            .map_err(Error::file("fdatasync", &self.path))?;
        used.sync_syscalls += 1;
        Ok(())
    }

    /// Drops the file's clean pages from the page cache so the read-back goes to the device.
    pub fn drop_cache(&self) {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on a descriptor we own; failure only means reads may hit the cache.
        unsafe { libc::posix_fadvise(self.file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }

    /// Deletes the file, reporting failure (drop only logs it).
    pub fn remove(mut self) -> Result<(), Error> {
        self.removed = true;
        std::fs::remove_file(&self.path).map_err(Error::file("delete", &self.path))
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "cannot delete scratch file");
        }
    }
}
