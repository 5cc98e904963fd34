//! `stressmix-agent load-module`: the `kmod-load` init container. Loads the module with the agent's
//! own loader (vermagic, lockdown, EEXIST, stale builds, errors named), writes the status file the
//! agent container reads, prints one line and exits 0 whatever happened: a module that cannot be
//! loaded must never keep the agent from starting on the cgroupfs fallback.

use std::path::{Path, PathBuf};

use crate::loader::{
    DEFAULT_LOCKDOWN_FILE, Kernel, ModuleBuild, ModuleConfig, ModuleState, ensure_module,
};
use crate::modinfo::parse_modinfo;
use crate::module_status::{Cause, ModuleStatus, Outcome, read_build_failure};

/// Flags of `load-module` (the module init contract).
#[derive(Debug, Clone, clap::Args)]
pub struct LoadModuleArgs {
    /// The `.ko` to load.
    #[arg(long)]
    pub path: PathBuf,
    /// Where to write the status JSON (outcome, cause, reason) for the agent container.
    #[arg(long)]
    pub status_file: PathBuf,
    /// kmod-build's failure file: when it exists the build failed and its line is the cause.
    #[arg(long)]
    pub build_failure: Option<PathBuf>,
    /// The module's proc_name parameter (`/proc/<proc-name>`); the module's name is fixed.
    #[arg(long, default_value = "stressmix")]
    pub proc_name: String,
    /// Where procfs is mounted.
    #[arg(long, default_value = "/proc")]
    pub proc_root: PathBuf,
    /// The host's securityfs lockdown file (in a pod: a hostPath mount of /sys/kernel/security).
    #[arg(long, default_value = DEFAULT_LOCKDOWN_FILE)]
    pub lockdown_file: PathBuf,
}

/// Decide: the build's failure if there was one, else what loading the `.ko` gives.
pub fn load_module(kernel: &impl Kernel, args: &LoadModuleArgs) -> ModuleStatus {
    if let Some(failure) = args.build_failure.as_deref().filter(|p| p.exists()) {
        return match read_build_failure(failure) {
            Ok(status) => status,
            Err(e) => ModuleStatus::failed(Cause::BuildFailed, &e.to_string()),
        };
    }
    let config = ModuleConfig {
        proc_path: args.proc_root.join(&args.proc_name),
        ko_path: Some(args.path.clone()),
        params: format!("proc_name={}", args.proc_name),
        unload_on_exit: false,
    };
    match ensure_module(kernel, &config) {
        Ok(state) => {
            let build = ko_build(&args.path);
            let (outcome, reason) = match state {
                ModuleState::LoadedByUs { .. } => (
                    Outcome::Loaded,
                    format!("loaded {} ({build})", args.path.display()),
                ),
                ModuleState::AlreadyPresent | ModuleState::LoadedElsewhere { .. } => (
                    Outcome::AlreadyLoaded,
                    format!(
                        "stressmix is already loaded, the same build as {} ({build})",
                        args.path.display()
                    ),
                ),
            };
            ModuleStatus {
                outcome,
                cause: None,
                reason,
            }
        }
        Err(e) => ModuleStatus::failed(e.cause(), &e.to_string()),
    }
}

fn ko_build(path: &Path) -> ModuleBuild {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| parse_modinfo(&bytes).ok())
        .map(|info| ModuleBuild::of_ko(&info))
        .unwrap_or_default()
}

/// The one line the init container prints.
pub fn summary(status: &ModuleStatus) -> String {
    match status.outcome {
        // The old build stays in use while its document's schema is one the agent reads.
        Outcome::Failed if status.cause == Some(Cause::StaleModule) => format!(
            "load-module: not loaded, the agent reads the module already loaded: {}",
            status.line()
        ),
        Outcome::Failed => format!(
            "load-module: not loaded, the agent will read cgroupfs: {}",
            status.line()
        ),
        Outcome::Loaded | Outcome::AlreadyLoaded => format!("load-module: {}", status.reason),
    }
}

/// Decide, write the status file, print the line. The caller exits 0 (the contract).
pub fn run(kernel: &impl Kernel, args: &LoadModuleArgs) -> ModuleStatus {
    let status = load_module(kernel, args);
    match status.write(&args.status_file) {
        Ok(()) => println!("{}", summary(&status)),
        // Still exit 0: the agent then finds no status and says so (cause no-status).
        Err(e) => println!("{} (and {e})", summary(&status)),
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::fake::{FakeKernel, module_build_file, module_file};
    use crate::module_status::Cause;

    const KVER: &str = "6.1.0-56-amd64 SMP preempt mod_unload modversions ";

    fn args(dir: &Path, ko: PathBuf) -> LoadModuleArgs {
        LoadModuleArgs {
            path: ko,
            status_file: dir.join("status"),
            build_failure: Some(dir.join("build-failure")),
            proc_name: "stressmix".into(),
            proc_root: "/proc".into(),
            lockdown_file: dir.join("lockdown"),
        }
    }

    /// Runs load-module and checks the status file holds what it returned, on one line.
    fn run_checked(kernel: &FakeKernel, args: &LoadModuleArgs) -> ModuleStatus {
        let status = run(kernel, args);
        let written = ModuleStatus::read(&args.status_file).expect("status written");
        assert_eq!(written, status);
        assert!(!status.reason.contains('\n'), "{}", status.reason);
        assert!(!summary(&status).contains('\n'));
        status
    }

    fn failure_cause(kernel: &FakeKernel, args: &LoadModuleArgs) -> Cause {
        let status = run_checked(kernel, args);
        assert_eq!(status.outcome, Outcome::Failed, "{status:?}");
        status.cause.expect("a failure has a cause")
    }

    #[test]
    fn a_build_failure_is_reported_without_loading() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = args(dir.path(), dir.path().join("stressmix.ko"));
        std::fs::write(
            dir.path().join("build-failure"),
            "no-headers: no kernel headers for 6.1.0-99-amd64\n",
        )
        .expect("write");
        let k = FakeKernel::new(None);
        let status = run_checked(&k, &a);
        assert_eq!(status.cause, Some(Cause::NoHeaders));
        assert_eq!(
            status.line(),
            "no-headers: no kernel headers for 6.1.0-99-amd64"
        );
        assert_eq!(k.loads.get(), 0);
        assert!(summary(&status).contains("will read cgroupfs"));
    }

    #[test]
    fn loads_a_matching_module() {
        let dir = tempfile::tempdir().expect("tmp");
        let ko = module_build_file(dir.path(), KVER, Some("ABC123"));
        let k = FakeKernel::new(None);
        let status = run_checked(&k, &args(dir.path(), ko));
        assert_eq!(status.outcome, Outcome::Loaded);
        assert_eq!(status.cause, None);
        assert!(
            status.reason.contains("srcversion ABC123"),
            "{}",
            status.reason
        );
        assert_eq!(k.loads.get(), 1);
    }

    #[test]
    fn the_same_build_already_loaded_is_already_loaded() {
        let dir = tempfile::tempdir().expect("tmp");
        let ko = module_build_file(dir.path(), KVER, Some("ABC123"));
        let k = FakeKernel::holding("ABC123");
        let status = run_checked(&k, &args(dir.path(), ko.clone()));
        assert_eq!(status.outcome, Outcome::AlreadyLoaded);
        // EEXIST from another node's loader between the check and the load: the same answer.
        let k = FakeKernel::new(Some(libc::EEXIST));
        let status = run_checked(&k, &args(dir.path(), ko));
        assert_eq!(status.outcome, Outcome::AlreadyLoaded);
    }

    #[test]
    fn another_build_loaded_is_a_stale_module() {
        let dir = tempfile::tempdir().expect("tmp");
        let ko = module_build_file(dir.path(), KVER, Some("NEW456"));
        let k = FakeKernel::holding("OLD123");
        let status = run_checked(&k, &args(dir.path(), ko));
        assert_eq!(status.cause, Some(Cause::StaleModule));
        for needle in ["OLD123", "NEW456", "rmmod stressmix"] {
            assert!(
                status.reason.contains(needle),
                "{needle}: {}",
                status.reason
            );
        }
        assert!(
            summary(&status).contains("reads the module already loaded"),
            "{}",
            summary(&status)
        );
    }

    #[test]
    fn every_load_failure_names_its_cause() {
        let dir = tempfile::tempdir().expect("tmp");
        let ko = module_file(dir.path(), KVER);
        let a = args(dir.path(), ko);

        let mut k = FakeKernel::new(Some(libc::EPERM));
        k.lockdown = Some("integrity".into());
        assert_eq!(failure_cause(&k, &a), Cause::Lockdown);

        let k = FakeKernel::new(Some(libc::EKEYREJECTED));
        assert_eq!(failure_cause(&k, &a), Cause::SignatureRejected);

        let mut k = FakeKernel::new(Some(libc::EPERM));
        k.lockdown = Some("none".into());
        assert_eq!(failure_cause(&k, &a), Cause::MissingCapability);

        let k = FakeKernel::new(Some(libc::ENOEXEC));
        assert_eq!(failure_cause(&k, &a), Cause::VermagicMismatch);

        let k = FakeKernel::new(Some(libc::ENOMEM));
        assert_eq!(failure_cause(&k, &a), Cause::LoadFailed);

        let mut k = FakeKernel::new(None);
        k.release = "6.12.57-amd64".into();
        assert_eq!(failure_cause(&k, &a), Cause::VermagicMismatch);
        assert_eq!(
            k.loads.get(),
            0,
            "a vermagic mismatch is caught before the kernel"
        );

        let mut k = FakeKernel::new(None);
        k.proc_after_load = false;
        assert_eq!(failure_cause(&k, &a), Cause::ProcMissing);

        let k = FakeKernel::new(None);
        let missing = args(dir.path(), dir.path().join("absent.ko"));
        assert_eq!(failure_cause(&k, &missing), Cause::BadModule);
    }

    #[test]
    fn the_proc_name_is_passed_to_the_module() {
        let dir = tempfile::tempdir().expect("tmp");
        let ko = module_file(dir.path(), KVER);
        let mut a = args(dir.path(), ko);
        a.proc_name = "smx".into();
        let k = FakeKernel::new(None);
        run_checked(&k, &a);
        assert_eq!(*k.params.borrow(), vec!["proc_name=smx".to_owned()]);
    }

    #[test]
    fn usage_errors_exit_2_and_flags_parse() {
        use clap::Parser;
        let parsed = crate::config::Config::try_parse_from([
            "stressmix-agent",
            "load-module",
            "--path",
            "/k/stressmix.ko",
            "--status-file",
            "/k/status",
            "--lockdown-file",
            "/host/sys/kernel/security/lockdown",
        ])
        .expect("parses");
        let Some(crate::config::Command::LoadModule(a)) = parsed.command else {
            panic!("no subcommand");
        };
        assert_eq!(
            a.lockdown_file,
            Path::new("/host/sys/kernel/security/lockdown")
        );
        assert_eq!(a.proc_name, "stressmix");
        let err = crate::config::Config::try_parse_from(["stressmix-agent", "load-module"])
            .expect_err("--path and --status-file are required");
        assert_eq!(err.exit_code(), 2);
    }
}
