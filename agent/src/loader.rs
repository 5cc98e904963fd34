//! Make the kernel module's /proc file available: use it when present, otherwise load a configured `.ko`
//! after checking that it was built for the running kernel.
//!
//! All kind nodes share one kernel, so a module loaded by another node's agent is fine (`EEXIST`), and
//! unloading from one node would pull it from under every other node: the agent unloads only when told
//! to, and only a module it loaded itself.
//!
//! A module already loaded is compared with the `.ko` by the build identity the kernel publishes
//! (`/sys/module/<name>/srcversion`, modpost's hash of the sources, and `version`): another build is
//! `StaleModule`, never silently taken for this one.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::modinfo::{Modinfo, ModinfoError, parse_modinfo};
use crate::module_status::Cause;

/// What the agent needs to find or load the module.
#[derive(Debug, Clone)]
pub struct ModuleConfig {
    /// `/proc/<proc_name>` is the module's document.
    pub proc_path: PathBuf,
    /// The `.ko` to load when the /proc file is absent; `None` = never load.
    pub ko_path: Option<PathBuf>,
    /// Module parameters passed to `finit_module` (e.g. `proc_name=stressmix`).
    pub params: String,
    /// Unload on exit what this agent loaded itself.
    pub unload_on_exit: bool,
}

/// How the module came to be available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleState {
    /// The /proc file was already there.
    AlreadyPresent,
    /// `finit_module` said `EEXIST`: someone else loaded it.
    LoadedElsewhere { name: String },
    /// This agent loaded it; it may unload it on exit if configured.
    LoadedByUs { name: String },
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{proc} is absent and no module file is configured (--module-path)")]
    NotConfigured { proc: PathBuf },
    #[error("cannot read module file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("module file {path} is not a usable kernel module: {source}")]
    BadModule { path: PathBuf, source: ModinfoError },
    #[error("module file {path} has no vermagic in .modinfo")]
    NoVermagic { path: PathBuf },
    #[error(
        "module {path} was built for kernel {module_release} but this node runs {kernel_release}: \
         rebuild it against this kernel's headers"
    )]
    VermagicMismatch {
        path: PathBuf,
        module_release: String,
        kernel_release: String,
    },
    #[error(
        "the kernel is locked down ({mode}): it refuses unsigned modules; sign the module with a \
         trusted key or run with the cgroupfs fallback"
    )]
    LockedDown { mode: String },
    #[error(
        "the kernel rejected the module's signature (EKEYREJECTED): sign it with a key the kernel trusts"
    )]
    SignatureRejected,
    #[error("not permitted to load modules (EPERM): the agent needs CAP_SYS_MODULE")]
    NotPermitted,
    #[error("finit_module({path}) failed: {source}")]
    Syscall { path: PathBuf, source: io::Error },
    #[error("module {name} loaded but {proc} did not appear (wrong proc_name parameter?)")]
    ProcMissingAfterLoad { name: String, proc: PathBuf },
    #[error(
        "module {name} is already loaded from another build ({loaded}) than {path} ({ko}): \
         unload it (rmmod {name}) so the new build can load"
    )]
    StaleModule {
        name: String,
        path: PathBuf,
        loaded: String,
        ko: String,
    },
}

impl LoadError {
    /// The cause the status file and the metric name.
    pub fn cause(&self) -> Cause {
        match self {
            LoadError::NotConfigured { .. } => Cause::NotConfigured,
            LoadError::Read { .. } | LoadError::BadModule { .. } | LoadError::NoVermagic { .. } => {
                Cause::BadModule
            }
            LoadError::VermagicMismatch { .. } => Cause::VermagicMismatch,
            // ENOEXEC is the kernel's own vermagic/modversions (or format) check failing.
            LoadError::Syscall { source, .. } if source.raw_os_error() == Some(libc::ENOEXEC) => {
                Cause::VermagicMismatch
            }
            LoadError::Syscall { .. } => Cause::LoadFailed,
            LoadError::LockedDown { .. } => Cause::Lockdown,
            LoadError::SignatureRejected => Cause::SignatureRejected,
            LoadError::NotPermitted => Cause::MissingCapability,
            LoadError::ProcMissingAfterLoad { .. } => Cause::ProcMissing,
            LoadError::StaleModule { .. } => Cause::StaleModule,
        }
    }
}

/// What the kernel publishes about a loaded module in `/sys/module/<name>/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleBuild {
    /// `MODULE_VERSION`.
    pub version: Option<String>,
    /// modpost's checksum of the module's sources.
    pub srcversion: Option<String>,
}

impl ModuleBuild {
    pub fn of_ko(info: &Modinfo) -> Self {
        ModuleBuild {
            version: info.get("version").map(str::to_owned),
            srcversion: info.get("srcversion").map(str::to_owned),
        }
    }

    /// Same build, as far as both sides tell: srcversion when both have it, else the version.
    pub fn same_as(&self, other: &ModuleBuild) -> bool {
        match (
            (&self.srcversion, &other.srcversion),
            (&self.version, &other.version),
        ) {
            ((Some(a), Some(b)), _) => a == b,
            (_, (Some(a), Some(b))) => a == b,
            _ => true,
        }
    }
}

impl std::fmt::Display for ModuleBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unknown = "unknown";
        write!(
            f,
            "version {}, srcversion {}",
            self.version.as_deref().unwrap_or(unknown),
            self.srcversion.as_deref().unwrap_or(unknown)
        )
    }
}

/// The kernel interfaces the loader uses; a trait so the decisions can be tested without a kernel.
pub trait Kernel {
    fn release(&self) -> io::Result<String>;
    /// The active lockdown mode (`none`, `integrity`, `confidentiality`), if the kernel has lockdown.
    fn lockdown_mode(&self) -> Option<String>;
    fn finit_module(&self, file: &File, params: &str) -> io::Result<()>;
    fn delete_module(&self, name: &str) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    /// The build of the loaded module `name`; `None` when it is not loaded.
    fn loaded_module(&self, name: &str) -> Option<ModuleBuild>;
}

/// The running kernel.
pub struct LiveKernel {
    /// securityfs' lockdown file. In a pod it must be the host's (a hostPath mount): the pod's own
    /// /sys/kernel/security is not the host's view.
    pub lockdown_file: PathBuf,
}

pub const DEFAULT_LOCKDOWN_FILE: &str = "/sys/kernel/security/lockdown";

impl Default for LiveKernel {
    fn default() -> Self {
        LiveKernel {
            lockdown_file: DEFAULT_LOCKDOWN_FILE.into(),
        }
    }
}

impl Kernel for LiveKernel {
    fn release(&self) -> io::Result<String> {
        // Same string as `uname -r`.
        Ok(std::fs::read_to_string("/proc/sys/kernel/osrelease")?
            .trim()
            .to_owned())
    }

    fn lockdown_mode(&self) -> Option<String> {
        std::fs::read_to_string(&self.lockdown_file)
            .ok()
            .and_then(|s| active_lockdown_mode(&s))
    }

    fn finit_module(&self, file: &File, params: &str) -> io::Result<()> {
        let params = CString::new(params)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in module parameters"))?;
        // SAFETY: the fd is open for the duration of the call and params is a valid C string.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_finit_module,
                file.as_raw_fd(),
                params.as_ptr(),
                0 as libc::c_int,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn delete_module(&self, name: &str) -> io::Result<()> {
        let name = CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in module name"))?;
        // SAFETY: name is a valid C string; O_NONBLOCK makes a busy module fail instead of waiting.
        let rc = unsafe { libc::syscall(libc::SYS_delete_module, name.as_ptr(), libc::O_NONBLOCK) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn loaded_module(&self, name: &str) -> Option<ModuleBuild> {
        let dir = Path::new("/sys/module").join(name);
        // Built-in code also has a /sys/module directory; only a loaded module has `initstate`.
        if !dir.join("initstate").exists() {
            return None;
        }
        let read = |file: &str| {
            std::fs::read_to_string(dir.join(file))
                .ok()
                .map(|s| s.trim().to_owned())
        };
        Some(ModuleBuild {
            version: read("version"),
            srcversion: read("srcversion"),
        })
    }
}

/// The bracketed word of `/sys/kernel/security/lockdown` (`none [integrity] confidentiality`).
pub fn active_lockdown_mode(contents: &str) -> Option<String> {
    let start = contents.find('[')?;
    let end = contents[start..].find(']')? + start;
    Some(contents[start + 1..end].to_owned())
}

/// Make the module's /proc file available.
pub fn ensure_module(
    kernel: &impl Kernel,
    config: &ModuleConfig,
) -> Result<ModuleState, LoadError> {
    let proc_present = kernel.exists(&config.proc_path);
    let Some(path) = &config.ko_path else {
        return if proc_present {
            Ok(ModuleState::AlreadyPresent)
        } else {
            Err(LoadError::NotConfigured {
                proc: config.proc_path.clone(),
            })
        };
    };
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.clone(),
        source,
    })?;
    let info = parse_modinfo(&bytes).map_err(|source| LoadError::BadModule {
        path: path.clone(),
        source,
    })?;
    let name = info.get("name").map(str::to_owned).unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().replace('-', "_"))
            .unwrap_or_default()
    });
    if let Some(loaded) = kernel.loaded_module(&name) {
        let ko = ModuleBuild::of_ko(&info);
        if !loaded.same_as(&ko) {
            return Err(LoadError::StaleModule {
                name,
                path: path.clone(),
                loaded: loaded.to_string(),
                ko: ko.to_string(),
            });
        }
    }
    if proc_present {
        return Ok(ModuleState::AlreadyPresent);
    }
    let module_release = info
        .vermagic_release()
        .ok_or_else(|| LoadError::NoVermagic { path: path.clone() })?;
    let kernel_release = kernel.release().map_err(|source| LoadError::Syscall {
        path: path.clone(),
        source,
    })?;
    if module_release != kernel_release {
        return Err(LoadError::VermagicMismatch {
            path: path.clone(),
            module_release: module_release.to_owned(),
            kernel_release,
        });
    }
    let file = File::open(path).map_err(|source| LoadError::Read {
        path: path.clone(),
        source,
    })?;
    let state = match kernel.finit_module(&file, &config.params) {
        Ok(()) => ModuleState::LoadedByUs { name: name.clone() },
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            ModuleState::LoadedElsewhere { name: name.clone() }
        }
        Err(e) => return Err(classify_load_failure(kernel, path, e)),
    };
    // Module init creates the /proc entry synchronously; a short wait covers a slow udev-free boot.
    for _ in 0..20 {
        if kernel.exists(&config.proc_path) {
            return Ok(state);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(LoadError::ProcMissingAfterLoad {
        name,
        proc: config.proc_path.clone(),
    })
}

fn classify_load_failure(kernel: &impl Kernel, path: &Path, e: io::Error) -> LoadError {
    let locked = kernel.lockdown_mode().filter(|m| m != "none");
    match (e.raw_os_error(), locked) {
        (Some(libc::EPERM | libc::EKEYREJECTED | libc::EACCES), Some(mode)) => {
            LoadError::LockedDown { mode }
        }
        (Some(libc::EKEYREJECTED), None) => LoadError::SignatureRejected,
        (Some(libc::EPERM), None) => LoadError::NotPermitted,
        _ => LoadError::Syscall {
            path: path.to_owned(),
            source: e,
        },
    }
}

/// Unload on exit, only when configured and only a module this agent loaded.
/// Returns the name of the module it unloaded.
pub fn unload_if_ours(
    kernel: &impl Kernel,
    config: &ModuleConfig,
    state: &ModuleState,
) -> io::Result<Option<String>> {
    match state {
        ModuleState::LoadedByUs { name } if config.unload_on_exit => {
            kernel.delete_module(name)?;
            Ok(Some(name.clone()))
        }
        _ => Ok(None),
    }
}

/// The fake kernel of the loader's and load-module's tests.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use crate::modinfo::fake_elf;
    use std::cell::{Cell, RefCell};

    /// A kernel that answers from its fields and records what it was asked.
    pub(crate) struct FakeKernel {
        pub release: String,
        pub lockdown: Option<String>,
        /// `None`: finit_module succeeds; `Some(errno)`: it fails so.
        pub load_result: Option<i32>,
        pub proc_present: Cell<bool>,
        pub proc_after_load: bool,
        pub loads: Cell<u32>,
        pub params: RefCell<Vec<String>>,
        pub unloaded: RefCell<Vec<String>>,
        /// The build of the module the kernel holds, if any.
        pub loaded: RefCell<Option<ModuleBuild>>,
    }

    impl FakeKernel {
        pub fn new(load_result: Option<i32>) -> Self {
            FakeKernel {
                release: "6.1.0-56-amd64".into(),
                lockdown: None,
                load_result,
                proc_present: Cell::new(false),
                proc_after_load: true,
                loads: Cell::new(0),
                params: RefCell::new(Vec::new()),
                unloaded: RefCell::new(Vec::new()),
                loaded: RefCell::new(None),
            }
        }
    }

    impl FakeKernel {
        /// A kernel that already holds stressmix of this srcversion (version 0.1.0).
        pub fn holding(srcversion: &str) -> Self {
            let k = FakeKernel::new(Some(libc::EEXIST));
            k.proc_present.set(true);
            k.loaded.replace(Some(ModuleBuild {
                version: Some("0.1.0".into()),
                srcversion: Some(srcversion.into()),
            }));
            k
        }
    }

    impl Kernel for FakeKernel {
        fn release(&self) -> io::Result<String> {
            Ok(self.release.clone())
        }
        fn lockdown_mode(&self) -> Option<String> {
            self.lockdown.clone()
        }
        fn finit_module(&self, _file: &File, params: &str) -> io::Result<()> {
            self.loads.set(self.loads.get() + 1);
            self.params.borrow_mut().push(params.to_owned());
            match self.load_result {
                None => {
                    self.proc_present.set(self.proc_after_load);
                    self.loaded.replace(Some(ModuleBuild::default()));
                    Ok(())
                }
                Some(errno) => {
                    if errno == libc::EEXIST {
                        self.proc_present.set(self.proc_after_load);
                    }
                    Err(io::Error::from_raw_os_error(errno))
                }
            }
        }
        fn delete_module(&self, name: &str) -> io::Result<()> {
            self.unloaded.borrow_mut().push(name.to_owned());
            Ok(())
        }
        fn exists(&self, _path: &Path) -> bool {
            self.proc_present.get()
        }
        fn loaded_module(&self, _name: &str) -> Option<ModuleBuild> {
            self.loaded.borrow().clone()
        }
    }

    /// A `.ko` named stressmix with this vermagic (and srcversion, when given).
    pub(crate) fn module_file(dir: &Path, vermagic: &str) -> PathBuf {
        module_build_file(dir, vermagic, None)
    }

    pub(crate) fn module_build_file(
        dir: &Path,
        vermagic: &str,
        srcversion: Option<&str>,
    ) -> PathBuf {
        let mut modinfo = format!("name=stressmix\0version=0.1.0\0vermagic={vermagic}\0");
        if let Some(src) = srcversion {
            modinfo.push_str(&format!("srcversion={src}\0"));
        }
        let path = dir.join("stressmix.ko");
        std::fs::write(&path, fake_elf(&[(".modinfo", modinfo.as_bytes())])).expect("write");
        path
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;

    fn config(ko: Option<PathBuf>, unload: bool) -> ModuleConfig {
        ModuleConfig {
            proc_path: "/proc/stressmix".into(),
            ko_path: ko,
            params: String::new(),
            unload_on_exit: unload,
        }
    }

    #[test]
    fn present_proc_file_needs_no_load() {
        let k = FakeKernel::new(None);
        k.proc_present.set(true);
        let state = ensure_module(&k, &config(None, true)).expect("present");
        assert_eq!(state, ModuleState::AlreadyPresent);
        assert_eq!(k.loads.get(), 0);
        assert_eq!(
            unload_if_ours(&k, &config(None, true), &state).expect("ok"),
            None
        );
        assert!(k.unloaded.borrow().is_empty());
    }

    #[test]
    fn loads_matching_module_and_unloads_only_when_configured() {
        let dir = tempfile::tempdir().expect("tmp");
        let ko = module_file(
            dir.path(),
            "6.1.0-56-amd64 SMP preempt mod_unload modversions ",
        );
        let k = FakeKernel::new(None);
        let state = ensure_module(&k, &config(Some(ko.clone()), false)).expect("loads");
        assert_eq!(
            state,
            ModuleState::LoadedByUs {
                name: "stressmix".into()
            }
        );
        assert_eq!(
            unload_if_ours(&k, &config(Some(ko.clone()), false), &state).expect("ok"),
            None
        );
        assert!(k.unloaded.borrow().is_empty(), "never unload by default");
        assert_eq!(
            unload_if_ours(&k, &config(Some(ko), true), &state).expect("ok"),
            Some("stressmix".into())
        );
        assert_eq!(*k.unloaded.borrow(), vec!["stressmix".to_owned()]);
    }

    #[test]
    fn eexist_means_loaded_elsewhere_and_is_never_unloaded() {
        let dir = tempfile::tempdir().expect("tmp");
        let ko = module_file(dir.path(), "6.1.0-56-amd64 SMP ");
        let k = FakeKernel::new(Some(libc::EEXIST));
        let cfg = config(Some(ko), true);
        let state = ensure_module(&k, &cfg).expect("eexist is fine");
        assert_eq!(
            state,
            ModuleState::LoadedElsewhere {
                name: "stressmix".into()
            }
        );
        assert_eq!(unload_if_ours(&k, &cfg, &state).expect("ok"), None);
    }

    #[test]
    fn vermagic_mismatch_names_both_releases_and_does_not_load() {
        let dir = tempfile::tempdir().expect("tmp");
        let ko = module_file(dir.path(), "6.12.117-amd64 SMP ");
        let k = FakeKernel::new(None);
        let err = ensure_module(&k, &config(Some(ko), false)).expect_err("mismatch");
        let text = err.to_string();
        assert!(
            text.contains("6.12.117-amd64") && text.contains("6.1.0-56-amd64"),
            "{text}"
        );
        assert_eq!(k.loads.get(), 0);
    }

    #[test]
    fn lockdown_and_permission_errors_name_their_cause() {
        let dir = tempfile::tempdir().expect("tmp");
        let ko = module_file(dir.path(), "6.1.0-56-amd64 SMP ");
        let mut k = FakeKernel::new(Some(libc::EPERM));
        k.lockdown = Some("integrity".into());
        let err = ensure_module(&k, &config(Some(ko.clone()), false)).expect_err("locked");
        assert!(matches!(&err, LoadError::LockedDown { mode } if mode == "integrity"));
        assert!(err.to_string().contains("locked down (integrity)"));

        let k = FakeKernel::new(Some(libc::EKEYREJECTED));
        let err = ensure_module(&k, &config(Some(ko.clone()), false)).expect_err("key");
        assert!(matches!(err, LoadError::SignatureRejected), "{err}");

        let mut k = FakeKernel::new(Some(libc::EPERM));
        k.lockdown = Some("none".into());
        let err = ensure_module(&k, &config(Some(ko.clone()), false)).expect_err("perm");
        assert!(matches!(err, LoadError::NotPermitted), "{err}");

        let k = FakeKernel::new(Some(libc::ENOEXEC));
        let err = ensure_module(&k, &config(Some(ko), false)).expect_err("other");
        assert!(matches!(err, LoadError::Syscall { .. }), "{err}");
    }

    #[test]
    fn missing_configuration_or_file_is_a_clear_error() {
        let k = FakeKernel::new(None);
        let err = ensure_module(&k, &config(None, false)).expect_err("none");
        assert!(err.to_string().contains("--module-path"), "{err}");
        let err = ensure_module(&k, &config(Some("/nonexistent/x.ko".into()), false))
            .expect_err("missing");
        assert!(matches!(err, LoadError::Read { .. }));
        let dir = tempfile::tempdir().expect("tmp");
        let not_ko = dir.path().join("x.ko");
        std::fs::write(&not_ko, b"#!/bin/sh").expect("write");
        let err = ensure_module(&k, &config(Some(not_ko), false)).expect_err("bad");
        assert!(matches!(err, LoadError::BadModule { .. }));
    }

    #[test]
    fn proc_file_must_appear_after_load() {
        let dir = tempfile::tempdir().expect("tmp");
        let ko = module_file(dir.path(), "6.1.0-56-amd64 SMP ");
        let mut k = FakeKernel::new(None);
        k.proc_after_load = false;
        let err = ensure_module(&k, &config(Some(ko), false)).expect_err("no proc");
        assert!(matches!(err, LoadError::ProcMissingAfterLoad { .. }));
    }

    #[test]
    fn lockdown_file_parsing() {
        assert_eq!(
            active_lockdown_mode("[none] integrity confidentiality\n"),
            Some("none".into())
        );
        assert_eq!(
            active_lockdown_mode("none integrity [confidentiality]\n"),
            Some("confidentiality".into())
        );
        assert_eq!(active_lockdown_mode(""), None);
    }

    #[test]
    fn a_loaded_module_of_another_build_is_stale_and_not_reused() {
        let dir = tempfile::tempdir().expect("tmp");
        let ko = module_build_file(dir.path(), "6.1.0-56-amd64 SMP ", Some("NEWBUILD"));
        let k = FakeKernel::holding("OLDBUILD");
        let err = ensure_module(&k, &config(Some(ko.clone()), false)).expect_err("stale");
        assert_eq!(err.cause(), Cause::StaleModule);
        let text = err.to_string();
        assert!(
            text.contains("OLDBUILD")
                && text.contains("NEWBUILD")
                && text.contains("rmmod stressmix"),
            "{text}"
        );
        assert_eq!(k.loads.get(), 0);

        let k = FakeKernel::holding("NEWBUILD");
        assert_eq!(
            ensure_module(&k, &config(Some(ko), false)).expect("same build"),
            ModuleState::AlreadyPresent
        );
    }

    #[test]
    fn builds_compare_by_srcversion_then_version() {
        let b = |v: Option<&str>, s: Option<&str>| ModuleBuild {
            version: v.map(str::to_owned),
            srcversion: s.map(str::to_owned),
        };
        assert!(b(Some("1"), Some("A")).same_as(&b(Some("2"), Some("A"))));
        assert!(!b(Some("1"), Some("A")).same_as(&b(Some("1"), Some("B"))));
        assert!(!b(Some("1"), None).same_as(&b(Some("2"), Some("B"))));
        assert!(b(None, None).same_as(&b(Some("2"), Some("B"))));
    }
}
