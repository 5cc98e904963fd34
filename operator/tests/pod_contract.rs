//! The pod contract: every argument list the operator gives a stress pod (`podspec::stress_args`)
//! is accepted by the stress program's own command-line parser, and means what the Workload says.
//! kwok runs no containers, so without this a mismatch would first show on a real node.

use clap::Parser;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use proptest::prelude::*;
use stressmix_api::workload::quantity::{QuantityError, parse_whole};
use stressmix_api::workload::{MixEntry, StressKind, Workload};
use stressmix_operator::podspec::{PodBuildError, SCRATCH_DIR, TERMINATION_LOG, stress_args};
use stressmix_stress::{Cli, Command};

/// Parses `args` as the container's command line and checks each value against `entry`.
fn program_accepts(entry: &MixEntry, duration: i64, args: &[String]) -> Result<(), String> {
    let argv = std::iter::once("stressmix-stress".to_owned()).chain(args.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| format!("{args:?} refused: {e}"))?;
    let command = &cli.command;
    let check = |what: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{args:?}: {what} differs from {entry:?} ({command:?})"
            ))
        }
    };
    check("kind", command.kind() == entry.kind.as_str())?;
    check(
        "duration",
        i64::try_from(command.run_args().duration) == Ok(duration.max(0)),
    )?;
    check(
        "summary file",
        command.run_args().summary_file.as_deref() == Some(std::path::Path::new(TERMINATION_LOG)),
    )?;
    check(
        "workers",
        i64::try_from(command.workers()) == Ok(i64::from(entry.workers.max(1))),
    )?;
    let bytes = |q: &Option<Quantity>| q.as_ref().and_then(|q| parse_whole(&q.0).ok());
    match command {
        Command::Cpu(cpu) => check("load", i32::from(cpu.load) == entry.load.unwrap_or(100)),
        Command::Memory(m) => check("bytes", Some(m.bytes) == bytes(&entry.bytes)),
        Command::Io(io) => check("dir", io.dir.as_os_str() == SCRATCH_DIR),
        Command::Disk(d) => check(
            "bytes and dir",
            Some(d.bytes) == bytes(&entry.bytes) && d.dir.as_os_str() == SCRATCH_DIR,
        ),
    }
}

fn entry(kind: StressKind, workers: i32, load: Option<i32>, bytes: Option<&str>) -> MixEntry {
    MixEntry {
        kind,
        replicas: 1,
        workers,
        load,
        bytes: bytes.map(|b| Quantity(b.to_owned())),
    }
}

/// A quantity as admission accepts it for `bytes` (`isQuantity`, greater than zero, 64 characters
/// at most): digits, an optional fraction, and any suffix of the grammar.
fn quantity() -> impl Strategy<Value = String> {
    let suffix = prop_oneof![
        Just(String::new()),
        prop::sample::select(vec![
            "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"
        ])
        .prop_map(str::to_owned),
        (-3i32..=18).prop_map(|e| format!("e{e}")),
    ];
    (1u64..=1_000_000, prop::option::of(1u32..=999), suffix).prop_map(
        |(whole, fraction, suffix)| match fraction {
            Some(f) => format!("{whole}.{f}{suffix}"),
            None => format!("{whole}{suffix}"),
        },
    )
}

/// Every knob combination admission lets through (`api/src/workload.rs` CEL rules).
fn admitted_entry() -> impl Strategy<Value = (MixEntry, i64)> {
    let kind = prop::sample::select(vec![
        StressKind::Cpu,
        StressKind::Memory,
        StressKind::Io,
        StressKind::Disk,
    ]);
    (
        kind,
        1i32..=64,
        1i32..=100,
        any::<bool>(),
        quantity(),
        0i64..=86_400,
    )
        .prop_map(|(kind, workers, load, set_load, bytes, duration)| {
            let load = (kind == StressKind::Cpu && set_load).then_some(load);
            let bytes = matches!(kind, StressKind::Memory | StressKind::Disk).then_some(bytes);
            (entry(kind, workers, load, bytes.as_deref()), duration)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_admitted_entry_gives_arguments_the_program_accepts((entry, duration) in admitted_entry()) {
        match stress_args(&entry, duration) {
            Ok(args) => {
                if let Err(why) = program_accepts(&entry, duration, &args) {
                    return Err(TestCaseError::fail(why));
                }
            }
            // The one refusal allowed: a quantity beyond 64 bits (e.g. 999999Ei), which no node holds.
            Err(PodBuildError::Bytes { source: QuantityError::TooLarge(_), .. }) => {}
            Err(e) => return Err(TestCaseError::fail(format!("{entry:?}: {e}"))),
        }
    }
}

/// The edges of each knob, named, so a failure reads without a proptest seed.
#[test]
fn the_edges_of_every_knob() {
    let cases = [
        entry(StressKind::Cpu, 1, None, None),
        entry(StressKind::Cpu, 64, Some(1), None),
        entry(StressKind::Cpu, 1, Some(100), None),
        entry(StressKind::Memory, 1, None, Some("1")),
        entry(StressKind::Memory, 64, None, Some("100Mi")),
        entry(StressKind::Memory, 2, None, Some("1.5Gi")),
        entry(StressKind::Memory, 1, None, Some("1m")),
        entry(StressKind::Disk, 4, None, Some("2e3")),
        entry(StressKind::Disk, 1, None, Some("15Ei")),
        entry(StressKind::Io, 64, None, None),
    ];
    for entry in &cases {
        for duration in [0, 1, 86_400] {
            let args = stress_args(entry, duration).unwrap_or_else(|e| panic!("{entry:?}: {e}"));
            program_accepts(entry, duration, &args).unwrap_or_else(|why| panic!("{why}"));
        }
    }
}

/// The example Workloads the README applies: each entry's pod command line is accepted.
#[test]
fn the_examples_pods_start() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for name in ["workload.yaml", "workload-original.yaml"] {
        let text =
            std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let wl: Workload = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        for entry in &wl.spec.mix {
            let duration = wl.spec.template.duration_seconds;
            let args = stress_args(entry, duration).unwrap_or_else(|e| panic!("{name}: {e}"));
            program_accepts(entry, duration, &args).unwrap_or_else(|why| panic!("{name}: {why}"));
            seen += 1;
        }
    }
    assert!(seen >= 4, "the examples hold {seen} mix entries");
}
