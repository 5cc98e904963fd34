//! One interval: read the counters, compute rates, attribute, and build the numbered batch.

use std::sync::Arc;
use std::time::Instant;

use stressmix_api::readings::{ContainerReading, OomKill, ReadingBatch, limits};

use crate::attribution::{Attribution, PodIndex, RecentPods};
use crate::metrics::Metrics;
use crate::oom::{OomCount, OomTracker};
use crate::oom_watch::OomWatch;
use crate::rates::RateComputer;
use crate::source::{Source, SourceError};

pub struct Collector {
    source: Source,
    rates: RateComputer,
    oom: OomTracker,
    /// `None` when inotify is not available: kills in cgroups gone before the next snapshot are
    /// then counted at their nearest remaining ancestor.
    oom_watch: Option<OomWatch>,
    recent_pods: RecentPods,
    node_name: String,
    boot_id: String,
    next_sequence: u64,
    metrics: Arc<Metrics>,
    warned_truncated: bool,
    source_reason: Option<String>,
}

impl Collector {
    pub fn new(source: Source, node_name: String, boot_id: String, metrics: Arc<Metrics>) -> Self {
        metrics.set_source(source.kind().as_str());
        let oom_watch = OomWatch::start(source.cgroup_root().to_owned())
            .inspect_err(|e| {
                tracing::warn!(error = %e, "cannot watch memory.events (inotify): OOM kills in cgroups removed between two collections are counted at their nearest remaining ancestor");
            })
            .ok();
        Collector {
            source,
            rates: RateComputer::new(),
            oom: OomTracker::new(),
            oom_watch,
            recent_pods: RecentPods::new(),
            node_name,
            boot_id,
            next_sequence: 0,
            metrics,
            warned_truncated: false,
            source_reason: None,
        }
    }

    /// Why this source (`<cause>: <reason>`), carried by every batch. Cut to the log service's limit
    /// (on a character boundary): a longer reason would get every batch refused.
    pub fn with_source_reason(mut self, reason: Option<String>) -> Self {
        self.source_reason = reason.map(|mut r| {
            if r.len() > limits::MAX_SOURCE_REASON {
                let mut end = limits::MAX_SOURCE_REASON;
                while !r.is_char_boundary(end) {
                    end -= 1;
                }
                r.truncate(end);
            }
            r
        });
        self
    }

    /// Take one reading. `Ok(None)` on the first interval (rates need two readings).
    pub fn collect(&mut self, pods: PodIndex) -> Result<Option<ReadingBatch>, SourceError> {
        let started = Instant::now();
        let result = self.collect_inner(pods);
        self.metrics
            .collection_seconds
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => self.metrics.collection_succeeded(),
            Err(_) => {
                self.metrics.collection_errors.inc();
            }
        }
        result
    }

    fn collect_inner(&mut self, pods: PodIndex) -> Result<Option<ReadingBatch>, SourceError> {
        // Taken before the snapshot: a value read later may be newer than the snapshot's.
        let finals = self
            .oom_watch
            .as_ref()
            .map(OomWatch::take_finals)
            .unwrap_or_default();
        let (snapshot, field_sources) = self.source.read()?;
        if snapshot.truncated && !self.warned_truncated {
            self.warned_truncated = true;
            tracing::warn!(
                cgroups = snapshot.cgroups.len(),
                "the module's document is truncated (max_cgroups reached): some cgroups are missing"
            );
        }
        let kills = self.oom.update(&snapshot, &finals);
        if let Some(watch) = &mut self.oom_watch {
            watch.sync(&snapshot);
        }
        let pods = self.recent_pods.merged(pods);
        let resets_before = self.rates.resets();
        let rates = self.rates.update(&snapshot);
        self.metrics
            .counter_resets
            .inc_by(self.rates.resets() - resets_before);
        let Some(mut rates) = rates else {
            return Ok(None);
        };
        rates
            .cgroups
            .retain_mut(|reading| match pods.attribute(reading) {
                Attribution::Ship => true,
                not_shipped => {
                    self.metrics.reading_not_shipped(not_shipped);
                    false
                }
            });
        let oom_kills: Vec<OomKill> = kills.into_iter().map(|k| attribute_kill(pods, k)).collect();
        for kill in &oom_kills {
            tracing::info!(
                cgroup = kill.cgroup_path,
                count = kill.count,
                observed = ?kill.observed,
                namespace = kill.namespace.as_deref().unwrap_or(""),
                pod = kill.pod.as_deref().unwrap_or(""),
                workload = kill.workload.as_deref().unwrap_or(""),
                "OOM kill"
            );
        }
        self.metrics.containers.update(&rates.cgroups, &oom_kills);
        self.metrics.readings.inc_by(rates.cgroups.len() as u64);
        self.metrics.batches_built.inc();
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        Ok(Some(ReadingBatch {
            node_name: self.node_name.clone(),
            boot_id: self.boot_id.clone(),
            sequence,
            timestamp_ms: rates.timestamp_ms,
            source: self.source.kind(),
            source_reason: self.source_reason.clone(),
            node: rates.node,
            containers: rates.cgroups,
            field_sources: Some(field_sources),
            oom_kills,
        }))
    }
}

/// Who the victim's cgroup belonged to, as a reading of that cgroup would be attributed.
fn attribute_kill(pods: &PodIndex, kill: OomCount) -> OomKill {
    let mut owner = ContainerReading {
        cgroup_path: kill.cgroup_path,
        ..ContainerReading::default()
    };
    pods.attribute(&mut owner);
    OomKill {
        cgroup_path: owner.cgroup_path,
        count: kill.count,
        observed: kill.observed,
        namespace: owner.namespace,
        pod: owner.pod,
        pod_uid: owner.pod_uid,
        container: owner.container,
        workload: owner.workload,
        kind: owner.kind,
        slot: owner.slot,
    }
}

/// A random (version 4) UUID naming this run of the agent.
pub fn new_boot_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::CgroupfsReader;
    use stressmix_api::readings::{ReadingSource, SYSTEM_KIND, is_uuid};

    #[test]
    fn boot_ids_are_uuids_and_differ() {
        let a = new_boot_id();
        assert!(is_uuid(&a), "{a}");
        assert_ne!(a, new_boot_id());
    }

    #[test]
    fn batches_are_numbered_valid_and_say_their_source() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("cg");
        let work = root.join("work");
        std::fs::create_dir_all(&work).expect("mkdir");
        std::fs::write(root.join("cgroup.controllers"), "cpu\n").expect("write");
        std::fs::write(work.join("cgroup.procs"), "").expect("write");
        std::fs::write(work.join("cpu.stat"), "usage_usec 0\n").expect("write");
        let reader = CgroupfsReader::new(root, "/proc".into(), false);
        let metrics = Metrics::new(100);
        let reason = "no-headers: no kernel headers for 6.1.0-99-amd64";
        let mut c = Collector::new(
            Source::Cgroupfs(reader),
            "node-a".into(),
            new_boot_id(),
            metrics.clone(),
        )
        .with_source_reason(Some(reason.into()));
        let pods = PodIndex::new();
        assert!(c.collect(pods.clone()).expect("first").is_none());
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(work.join("cpu.stat"), "usage_usec 10000\n").expect("write");
        let b0 = c.collect(pods.clone()).expect("second").expect("batch");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b1 = c.collect(pods.clone()).expect("third").expect("batch");
        assert_eq!((b0.sequence, b1.sequence), (0, 1));
        assert_eq!(b0.source, ReadingSource::Cgroupfs);
        assert_eq!(b0.source_reason.as_deref(), Some(reason));
        assert_eq!(b1.source_reason.as_deref(), Some(reason));
        let wire: serde_json::Value = serde_json::to_value(&b0).expect("json");
        assert_eq!(wire["source_reason"], reason);
        b0.validate().expect("valid batch");
        assert_eq!(b0.containers.len(), 1);
        assert_eq!(b0.containers[0].cgroup_path, "/work");
        assert_eq!(b0.containers[0].kind.as_deref(), Some(SYSTEM_KIND));
        assert!(b0.containers[0].cpu_percent > 0.0);
        assert_eq!(metrics.readings.get(), 2);
        assert!(
            metrics
                .encode()
                .contains("stressmix_agent_source{source=\"cgroupfs\"} 1")
        );
    }

    #[test]
    fn an_overlong_reason_is_cut_so_batches_stay_valid() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("cg");
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(root.join("cgroup.controllers"), "cpu\n").expect("write");
        let reader = CgroupfsReader::new(root, "/proc".into(), false);
        // Multi-byte characters straddling the limit: the cut must land on a boundary.
        let long = format!("build-failed: {}", "é".repeat(limits::MAX_SOURCE_REASON));
        let c = Collector::new(
            Source::Cgroupfs(reader),
            "node-a".into(),
            new_boot_id(),
            Metrics::new(100),
        )
        .with_source_reason(Some(long.clone()));
        let reason = c.source_reason.as_deref().expect("reason kept");
        assert!(
            reason.len() <= limits::MAX_SOURCE_REASON,
            "{}",
            reason.len()
        );
        assert!(reason.len() > limits::MAX_SOURCE_REASON - 4);
        assert!(long.starts_with(reason));
    }

    /// The pod index of one pod `lab-<kind>-<slot>` of Workload `lab` with one container `stress`.
    fn one_stress_pod(uid: &str, kind: &str, slot: u32, container: &str) -> PodIndex {
        let mut pods = PodIndex::new();
        pods.insert(
            uid.into(),
            crate::attribution::PodInfo {
                namespace: "stress".into(),
                name: format!("lab-{kind}-{slot}"),
                workload: Some("lab".into()),
                kind: Some(kind.into()),
                slot: Some(slot),
                containers: [(container.to_owned(), "stress".to_owned())].into(),
                containers_settled: true,
            },
        );
        pods
    }

    /// A collector reading the fake cgroupfs at `root`, and its metrics.
    fn cgroupfs_collector(root: std::path::PathBuf) -> (Collector, Arc<Metrics>) {
        let metrics = Metrics::new(100);
        let reader = CgroupfsReader::new(root, "/proc".into(), false);
        let c = Collector::new(
            Source::Cgroupfs(reader),
            "node-a".into(),
            new_boot_id(),
            metrics.clone(),
        );
        (c, metrics)
    }

    /// A pod's cgroup tree as the lab node's kubelet (cgroupfs driver) lays it out: the pod's own
    /// cgroup, its sandbox and its container. Only the container is shipped; the other two are
    /// counted by reason.
    #[test]
    fn only_the_pods_containers_are_shipped() {
        let uid = "e0fb2441-5f1b-454d-a1a5-1832f583e779";
        let container = "9".repeat(64);
        let sandbox = "4".repeat(64);
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("cg");
        let pod_dir = root.join(format!("kubepods/pod{uid}"));
        std::fs::create_dir_all(&pod_dir).expect("mkdir");
        std::fs::write(root.join("cgroup.controllers"), "cpu\n").expect("write");
        for dir in [
            root.join("kubepods"),
            pod_dir.clone(),
            pod_dir.join(&container),
            pod_dir.join(&sandbox),
        ] {
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join("cgroup.procs"), "").expect("write");
            std::fs::write(dir.join("cpu.stat"), "usage_usec 0\n").expect("write");
        }
        let pods = one_stress_pod(uid, "cpu", 0, &container);
        let (mut c, metrics) = cgroupfs_collector(root);
        assert!(c.collect(pods.clone()).expect("first").is_none());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let batch = c.collect(pods.clone()).expect("second").expect("batch");
        let pod_readings: Vec<_> = batch
            .containers
            .iter()
            .filter(|r| r.pod_uid.is_some())
            .map(|r| (r.container_id.clone(), r.container.clone()))
            .collect();
        assert_eq!(
            pod_readings,
            vec![(Some(container), Some("stress".to_owned()))]
        );
        let text = metrics.encode();
        for reason in ["pod_cgroup", "sandbox"] {
            assert!(
                text.contains(&format!(
                    "stressmix_agent_readings_not_shipped_total{{reason=\"{reason}\"}} 1"
                )),
                "{text}"
            );
        }
    }

    /// A cgroup as cgroupfs shows it, with memory files and `oom_kill` kills so far.
    fn memory_cgroup(dir: &std::path::Path, current: u64, oom_kill: u64) {
        std::fs::create_dir_all(dir).expect("mkdir");
        for (name, text) in [
            ("cgroup.procs", String::new()),
            ("cpu.stat", "usage_usec 0\n".to_owned()),
            ("memory.current", format!("{current}\n")),
            ("memory.max", "67108864\n".to_owned()),
            (
                "memory.events",
                format!("low 0\nhigh 0\nmax {oom_kill}\noom {oom_kill}\noom_kill {oom_kill}\n"),
            ),
        ] {
            std::fs::write(dir.join(name), text).expect("write");
        }
    }

    /// The victim's container cgroup is gone at the next collection, a new container took its
    /// place and the pod was deleted: the kill, read at the kernel's change event, still goes to
    /// the victim's container, Workload, kind and slot, and shows in `/metrics`.
    #[test]
    fn an_oom_kill_is_attributed_across_a_replaced_container_of_a_deleted_pod() {
        let uid = "e0fb2441-5f1b-454d-a1a5-1832f583e779";
        let victim = "9".repeat(64);
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("cg");
        let qos = root.join("kubepods");
        let pod_dir = qos.join(format!("pod{uid}"));
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(root.join("cgroup.controllers"), "cpu memory\n").expect("write");
        memory_cgroup(&qos, 1 << 20, 0);
        memory_cgroup(&pod_dir, 1 << 20, 0);
        memory_cgroup(&pod_dir.join(&victim), 60 << 20, 0);
        let pods = one_stress_pod(uid, "memory", 2, &victim);
        let (mut c, metrics) = cgroupfs_collector(root);
        assert!(c.collect(pods.clone()).expect("first").is_none());
        let batch = c.collect(pods.clone()).expect("second").expect("batch");
        assert!(batch.oom_kills.is_empty());

        // The kill, as the kernel shows it: every level's memory.events changes at once, then the
        // victim's cgroup goes away and a new container takes its place.
        for dir in [pod_dir.join(&victim), pod_dir.clone(), qos.clone()] {
            memory_cgroup(&dir, 1 << 20, 1);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::fs::remove_dir_all(pod_dir.join(&victim)).expect("rm");
        memory_cgroup(&pod_dir.join("8".repeat(64)), 1 << 20, 0);
        let batch = c.collect(PodIndex::new()).expect("third").expect("batch");
        batch.validate().expect("valid");
        assert_eq!(batch.oom_kills.len(), 1, "{:?}", batch.oom_kills);
        let kill = &batch.oom_kills[0];
        assert_eq!(kill.cgroup_path, format!("/kubepods/pod{uid}/{victim}"));
        assert_eq!(kill.count, 1);
        assert_eq!(
            kill.observed,
            stressmix_api::readings::OomObservation::Cgroup
        );
        assert_eq!(kill.workload.as_deref(), Some("lab"));
        assert_eq!(kill.kind.as_deref(), Some("memory"));
        assert_eq!(kill.slot, Some(2));
        assert_eq!(kill.pod.as_deref(), Some("lab-memory-2"));
        assert_eq!(kill.container.as_deref(), Some("stress"));
        let sources = batch.field_sources.expect("sources");
        assert_eq!(sources.memory_events, Some(ReadingSource::Cgroupfs));
        assert_eq!(sources.pressure, None, "no pressure files here");
        let text = metrics.encode();
        assert!(
            text.contains(
                "stressmix_agent_container_oom_kills_total{namespace=\"stress\",pod=\"lab-memory-2\",container=\"stress\",workload=\"lab\",kind=\"memory\"} 1"
            ),
            "{text}"
        );
        // Counted once.
        let batch = c.collect(PodIndex::new()).expect("fourth").expect("batch");
        assert!(batch.oom_kills.is_empty());
    }
}
