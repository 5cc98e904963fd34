//! The module status file: what `stressmix-agent load-module` (the `kmod-load` init container) found,
//! read back by the agent container (`--module-status-file`) to say why it reads what it reads.
//! One JSON object: `{"outcome": ..., "cause": ..., "reason": "one human line"}`.
//!
//! The build-failure file the `kmod-build` init container leaves is one line `<cause>: <explanation>`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `load-module` loaded the module.
    Loaded,
    /// The same build was already loaded (another node of a shared kernel, or an earlier pod).
    AlreadyLoaded,
    /// Nothing usable was loaded; `cause` says why.
    Failed,
}

/// Why the module is not (or not as expected) in use. A closed set so that the metric's `cause`
/// label stays bounded; a cause this agent does not know reads as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    // Written by kmod-build (build-failure file).
    NoHeaders,
    CompilerMismatch,
    BuildFailed,
    // Written by load-module.
    Lockdown,
    SignatureRejected,
    VermagicMismatch,
    MissingCapability,
    /// A module of another build is loaded (its srcversion differs from the `.ko`'s).
    StaleModule,
    /// The `.ko` is missing, unreadable or not a kernel module.
    BadModule,
    /// finit_module failed for another reason.
    LoadFailed,
    /// Loaded, but `/proc/<proc_name>` did not appear.
    ProcMissing,
    // Decided by the agent itself.
    /// No module, no `.ko` and no status file: the chart's module mode none.
    NotConfigured,
    /// `--source cgroupfs`.
    SourceCgroupfs,
    /// The module's document cannot be read or parsed (e.g. an unsupported schema_version).
    ModuleUnreadable,
    /// The status file is absent or unreadable.
    NoStatus,
    #[serde(other)]
    Other,
}

impl Cause {
    /// The wire name (also the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::NoHeaders => "no-headers",
            Cause::CompilerMismatch => "compiler-mismatch",
            Cause::BuildFailed => "build-failed",
            Cause::Lockdown => "lockdown",
            Cause::SignatureRejected => "signature-rejected",
            Cause::VermagicMismatch => "vermagic-mismatch",
            Cause::MissingCapability => "missing-capability",
            Cause::StaleModule => "stale-module",
            Cause::BadModule => "bad-module",
            Cause::LoadFailed => "load-failed",
            Cause::ProcMissing => "proc-missing",
            Cause::NotConfigured => "not-configured",
            Cause::SourceCgroupfs => "source-cgroupfs",
            Cause::ModuleUnreadable => "module-unreadable",
            Cause::NoStatus => "no-status",
            Cause::Other => "other",
        }
    }

    fn parse(word: &str) -> Cause {
        serde_json::from_value(serde_json::Value::String(word.to_owned())).unwrap_or(Cause::Other)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleStatus {
    pub outcome: Outcome,
    pub cause: Option<Cause>,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not a module status (outcome, cause, reason): {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Text that must stay one line: newlines become spaces, surrounding blanks go.
pub fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl ModuleStatus {
    pub fn failed(cause: Cause, reason: &str) -> Self {
        ModuleStatus {
            outcome: Outcome::Failed,
            cause: Some(cause),
            reason: one_line(reason),
        }
    }

    /// `<cause>: <reason>` (just the reason when there is no cause): the batches' `source_reason`.
    pub fn line(&self) -> String {
        match self.cause {
            Some(cause) => format!("{cause}: {}", self.reason),
            None => self.reason.clone(),
        }
    }

    pub fn read(path: &Path) -> Result<Self, StatusError> {
        let text = std::fs::read(path).map_err(|source| StatusError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| StatusError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Write temp + rename, so the agent never reads half a status.
    pub fn write(&self, path: &Path) -> Result<(), StatusError> {
        let err = |source| StatusError::Write {
            path: path.to_owned(),
            source,
        };
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(".tmp.{}", std::process::id()));
        let tmp = PathBuf::from(tmp_name);
        let mut text = serde_json::to_vec(self).map_err(|e| err(io::Error::other(e)))?;
        text.push(b'\n');
        let mut file = std::fs::File::create(&tmp).map_err(err)?;
        file.write_all(&text).map_err(err)?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

/// The build-failure file's first line, `<cause>: <explanation>`, as a failed status.
pub fn read_build_failure(path: &Path) -> Result<ModuleStatus, StatusError> {
    let text = std::fs::read_to_string(path).map_err(|source| StatusError::Read {
        path: path.to_owned(),
        source,
    })?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    Ok(match line.split_once(':') {
        Some((word, explanation)) if Cause::parse(word.trim()) != Cause::Other => {
            ModuleStatus::failed(Cause::parse(word.trim()), explanation.trim())
        }
        _ => ModuleStatus::failed(
            Cause::BuildFailed,
            &format!("the module build failed ({}): {line}", path.display()),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_in_the_contract_shape() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("status");
        let status = ModuleStatus::failed(Cause::NoHeaders, "no headers\nfor 6.1.0-57-amd64 ");
        status.write(&path).expect("write");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"outcome": "failed", "cause": "no-headers",
                               "reason": "no headers for 6.1.0-57-amd64"})
        );
        assert_eq!(ModuleStatus::read(&path).expect("read"), status);
        assert_eq!(status.line(), "no-headers: no headers for 6.1.0-57-amd64");
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "the temp file was renamed");

        let loaded: ModuleStatus = serde_json::from_str(
            r#"{"outcome": "already_loaded", "cause": null, "reason": "same build"}"#,
        )
        .expect("parses");
        assert_eq!(loaded.outcome, Outcome::AlreadyLoaded);
        let future: ModuleStatus =
            serde_json::from_str(r#"{"outcome": "failed", "cause": "cosmic-rays", "reason": "x"}"#)
                .expect("an unknown cause still parses");
        assert_eq!(future.cause, Some(Cause::Other));
    }

    #[test]
    fn build_failure_line_names_the_cause() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("build-failure");
        std::fs::write(
            &path,
            "no-headers: no kernel headers for 6.1.0-99-amd64 in /lib/modules/6.1.0-99-amd64/build\n",
        )
        .expect("write");
        let status = read_build_failure(&path).expect("read");
        assert_eq!(status.cause, Some(Cause::NoHeaders));
        assert_eq!(
            status.reason,
            "no kernel headers for 6.1.0-99-amd64 in /lib/modules/6.1.0-99-amd64/build"
        );
        std::fs::write(&path, "gcc exploded\n").expect("write");
        let status = read_build_failure(&path).expect("read");
        assert_eq!(status.cause, Some(Cause::BuildFailed));
        assert!(status.reason.contains("gcc exploded"), "{}", status.reason);
        assert!(read_build_failure(&dir.path().join("absent")).is_err());
    }
}
