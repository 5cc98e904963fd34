//! Where the counters come from: the kernel module's /proc file, or cgroupfs read in userspace.

pub mod cgroupfs;
pub mod host;
pub mod kernel_files;

use std::io;
use std::path::PathBuf;

use stressmix_api::kmod::{Snapshot, UnsupportedSchema};
use stressmix_api::readings::{FieldSources, ReadingSource};

pub use cgroupfs::CgroupfsReader;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not a valid stressmix document: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{} is cgroup v1 (no cgroup.controllers at its root): the cgroupfs fallback reads cgroup v2 \
         only; boot the node with the unified hierarchy (systemd.unified_cgroup_hierarchy=1)",
        root.display()
    )]
    CgroupV1 { root: PathBuf },
    #[error("{path}: {source}")]
    Schema {
        path: PathBuf,
        source: UnsupportedSchema,
    },
}

/// The counter source in use for the agent's lifetime.
pub enum Source {
    /// The module's document; the counters it lacks come from the cgroupfs mounted at
    /// `cgroup_root` (see [`kernel_files::complete`]).
    Module {
        proc_path: PathBuf,
        cgroup_root: PathBuf,
    },
    Cgroupfs(CgroupfsReader),
}

impl Source {
    pub fn kind(&self) -> ReadingSource {
        match self {
            Source::Module { .. } => ReadingSource::Module,
            Source::Cgroupfs(_) => ReadingSource::Cgroupfs,
        }
    }

    /// One snapshot of every cgroup's cumulative counters, and where each group of them came from.
    pub fn read(&self) -> Result<(Snapshot, FieldSources), SourceError> {
        match self {
            Source::Module {
                proc_path,
                cgroup_root,
            } => {
                let mut snapshot = read_module_document(proc_path)?;
                let sources = kernel_files::complete(&mut snapshot, cgroup_root, self.kind());
                Ok((snapshot, sources))
            }
            Source::Cgroupfs(reader) => {
                let snapshot = reader.read()?;
                let sources = kernel_files::sources_of(&snapshot, self.kind(), [false; 3]);
                Ok((snapshot, sources))
            }
        }
    }
}

/// Read the module's document: one read of the whole file is one consistent snapshot.
pub fn read_module_document(path: &std::path::Path) -> Result<Snapshot, SourceError> {
    let bytes = std::fs::read(path).map_err(|source| SourceError::Read {
        path: path.to_owned(),
        source,
    })?;
    let snapshot: Snapshot =
        serde_json::from_slice(&bytes).map_err(|source| SourceError::Parse {
            path: path.to_owned(),
            source,
        })?;
    snapshot
        .check_schema()
        .map_err(|source| SourceError::Schema {
            path: path.to_owned(),
            source,
        })?;
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_module_fixtures() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/tests/fixtures/kmod");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let snapshot = read_module_document(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(!snapshot.cgroups.is_empty(), "{}", path.display());
                seen += 1;
            }
        }
        assert!(seen > 0, "no fixtures in {}", dir.display());
    }

    #[test]
    fn bad_documents_are_clear_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let missing = dir.path().join("missing");
        assert!(matches!(
            read_module_document(&missing),
            Err(SourceError::Read { .. })
        ));
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "{not json").expect("write");
        assert!(matches!(
            read_module_document(&garbage),
            Err(SourceError::Parse { .. })
        ));
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../api/tests/fixtures/kmod/handwritten-v1.json");
        let mut doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture).expect("fixture"))
                .expect("json");
        doc["schema_version"] = 99.into();
        let future = dir.path().join("future");
        std::fs::write(&future, doc.to_string()).expect("write");
        let err = read_module_document(&future).expect_err("schema");
        assert!(err.to_string().contains("schema_version 99"), "{err}");
    }
}
