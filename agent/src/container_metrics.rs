//! Per-container series at the agent's `/metrics`: usage, pressure, throttling and OOM kills of
//! every pod container on the node, labelled with namespace, pod, container, Workload and kind, so
//! a Prometheus can scrape the agents directly.
//!
//! Each collection replaces the gauges (a container that left the node leaves `/metrics` with
//! it). OOM kill counters outlive their pod for [`RecentPods::KEEP`] collections: the victim is
//! replaced at once, and a scrape must still see its count grow. Cardinality is bounded: at most
//! `max_containers` label sets per metric; the containers beyond it (the last in namespace/pod
//! order) are left out and counted in `stressmix_agent_container_series_dropped`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use stressmix_api::readings::{ContainerReading, OomKill};

use crate::attribution::RecentPods;

/// namespace, pod, container, workload, kind ("" where unknown).
type Owner = [String; 5];
const OWNER_LABELS: [&str; 5] = ["namespace", "pod", "container", "workload", "kind"];

fn owner(
    namespace: &Option<String>,
    pod: &Option<String>,
    container: &Option<String>,
    workload: &Option<String>,
    kind: &Option<String>,
) -> Option<Owner> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    // Only pod containers: the series are named by their pod.
    Some([
        namespace.clone()?,
        pod.clone()?,
        text(container),
        text(workload),
        text(kind),
    ])
}

/// The values of one container at its last reading.
#[derive(Debug, Clone)]
struct Values {
    cpu_percent: f64,
    memory_bytes: f64,
    disk_read_bytes_per_sec: f64,
    disk_write_bytes_per_sec: f64,
    /// cpu some/full, memory some/full, io some/full.
    pressure: [Option<f64>; 6],
    throttled_periods_percent: Option<f64>,
    throttled_seconds_per_sec: Option<f64>,
}

#[derive(Debug, Default)]
struct State {
    containers: Vec<(Owner, Values)>,
    /// Kills so far and collections since the owner was last seen (reading or kill).
    oom_kills: HashMap<Owner, (u64, u32)>,
    dropped: usize,
}

#[derive(Debug)]
pub struct ContainerMetrics {
    max_containers: usize,
    state: Mutex<State>,
}

const PRESSURE: [(&str, &str); 6] = [
    ("cpu", "some"),
    ("cpu", "full"),
    ("memory", "some"),
    ("memory", "full"),
    ("io", "some"),
    ("io", "full"),
];

impl ContainerMetrics {
    pub fn new(max_containers: usize) -> Self {
        ContainerMetrics {
            max_containers,
            state: Mutex::new(State::default()),
        }
    }

    /// Replaces the series with one collection's readings and adds its OOM kills.
    pub fn update(&self, readings: &[ContainerReading], kills: &[OomKill]) {
        let mut containers: Vec<(Owner, Values)> = readings
            .iter()
            .filter_map(|r| {
                let owner = owner(&r.namespace, &r.pod, &r.container, &r.workload, &r.kind)?;
                Some((
                    owner,
                    Values {
                        cpu_percent: r.cpu_percent,
                        memory_bytes: r.memory_bytes as f64,
                        disk_read_bytes_per_sec: r.disk_read_bytes_per_sec,
                        disk_write_bytes_per_sec: r.disk_write_bytes_per_sec,
                        pressure: [
                            r.cpu_pressure_some_percent,
                            r.cpu_pressure_full_percent,
                            r.memory_pressure_some_percent,
                            r.memory_pressure_full_percent,
                            r.io_pressure_some_percent,
                            r.io_pressure_full_percent,
                        ],
                        throttled_periods_percent: r.cpu_throttled_periods_percent,
                        throttled_seconds_per_sec: r.cpu_throttled_seconds_per_sec,
                    },
                ))
            })
            .collect();
        containers.sort_by(|a, b| a.0.cmp(&b.0));
        let dropped = containers.len().saturating_sub(self.max_containers);
        containers.truncate(self.max_containers);

        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, age) in state.oom_kills.values_mut() {
            *age += 1;
        }
        for kill in kills {
            let Some(key) = owner(
                &kill.namespace,
                &kill.pod,
                &kill.container,
                &kill.workload,
                &kill.kind,
            ) else {
                continue;
            };
            let entry = state.oom_kills.entry(key).or_default();
            entry.0 = entry.0.saturating_add(kill.count);
            entry.1 = 0;
        }
        for (key, _) in &containers {
            if let Some(entry) = state.oom_kills.get_mut(key) {
                entry.1 = 0;
            }
        }
        state
            .oom_kills
            .retain(|_, (_, age)| *age <= RecentPods::KEEP);
        if state.oom_kills.len() > self.max_containers {
            // Forget the longest unseen first.
            let mut by_age: Vec<(Owner, u32)> = state
                .oom_kills
                .iter()
                .map(|(k, (_, age))| (k.clone(), *age))
                .collect();
            by_age.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let excess = state.oom_kills.len() - self.max_containers;
            for (key, _) in by_age.into_iter().take(excess) {
                state.oom_kills.remove(&key);
            }
        }
        state.containers = containers;
        state.dropped = dropped;
    }
}

fn labels<'a>(owner: &'a Owner, extra: &[(&'static str, &'a str)]) -> Vec<(&'static str, &'a str)> {
    OWNER_LABELS
        .iter()
        .copied()
        .zip(owner.iter().map(String::as_str))
        .chain(extra.iter().copied())
        .collect()
}

/// One gauge over every container that has a value for it.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    containers: &[(Owner, Values)],
    value: impl Fn(&Values) -> Option<f64>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (owner, values) in containers {
        if let Some(v) = value(values) {
            let labels = labels(owner, &[]);
            ConstGauge::new(v).encode(metric.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl Collector for ContainerMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let c = &state.containers;
        let e = &mut encoder;
        gauge(
            e,
            "container_cpu_percent",
            "CPU over the last interval, percent of one core",
            c,
            |v| Some(v.cpu_percent),
        )?;
        gauge(
            e,
            "container_memory_bytes",
            "memory.current at the last reading",
            c,
            |v| Some(v.memory_bytes),
        )?;
        gauge(
            e,
            "container_disk_read_bytes_per_second",
            "Bytes read from storage per second over the last interval",
            c,
            |v| Some(v.disk_read_bytes_per_sec),
        )?;
        gauge(
            e,
            "container_disk_write_bytes_per_second",
            "Bytes written towards storage per second over the last interval",
            c,
            |v| Some(v.disk_write_bytes_per_sec),
        )?;
        gauge(
            e,
            "container_cpu_throttled_periods_percent",
            "Percent of the last interval's CPU bandwidth periods in which the container was throttled",
            c,
            |v| v.throttled_periods_percent,
        )?;
        gauge(
            e,
            "container_cpu_throttled_seconds_per_second",
            "Seconds throttled per second over the last interval",
            c,
            |v| v.throttled_seconds_per_sec,
        )?;
        let mut metric = e.encode_descriptor(
            "container_pressure_percent",
            "Percent of the last interval stalled on a resource: some (at least one task) or full (all non-idle tasks)",
            None,
            MetricType::Gauge,
        )?;
        for (owner, values) in c {
            for ((resource, level), value) in PRESSURE.iter().zip(values.pressure) {
                if let Some(v) = value {
                    let labels = labels(owner, &[("resource", resource), ("level", level)]);
                    ConstGauge::new(v).encode(metric.encode_family(&labels)?)?;
                }
            }
        }
        let mut metric = e.encode_descriptor(
            "container_oom_kills",
            "Processes of the container killed by the OOM killer",
            None,
            MetricType::Counter,
        )?;
        let mut kills: Vec<(&Owner, u64)> =
            state.oom_kills.iter().map(|(k, (n, _))| (k, *n)).collect();
        kills.sort();
        for (owner, count) in kills {
            let labels = labels(owner, &[]);
            ConstCounter::new(count).encode(metric.encode_family(&labels)?)?;
        }
        let dropped = ConstGauge::new(i64::try_from(state.dropped).unwrap_or(i64::MAX));
        dropped.encode(e.encode_descriptor(
            "container_series_dropped",
            "Containers left out of the per-container series at the last collection (over --metrics-max-containers)",
            None,
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;
    use std::sync::Arc;

    fn reading(pod: &str, cpu: f64) -> ContainerReading {
        ContainerReading {
            cgroup_path: format!("/kubepods/{pod}/c"),
            namespace: Some("stress".into()),
            pod: Some(pod.into()),
            container: Some("stress".into()),
            workload: Some("lab".into()),
            kind: Some("cpu".into()),
            cpu_percent: cpu,
            cpu_pressure_some_percent: Some(12.5),
            cpu_throttled_periods_percent: Some(90.0),
            ..ContainerReading::default()
        }
    }

    /// What a Prometheus scrape of these series reads.
    pub(crate) fn scrape(metrics: &Arc<ContainerMetrics>) -> prometheus_parse::Scrape {
        let mut registry = Registry::with_prefix("stressmix_agent");
        registry.register_collector(Box::new(metrics.clone()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses")
    }

    fn samples<'a>(
        scrape: &'a prometheus_parse::Scrape,
        name: &str,
    ) -> Vec<&'a prometheus_parse::Sample> {
        scrape.samples.iter().filter(|s| s.metric == name).collect()
    }

    fn value(sample: &prometheus_parse::Sample) -> f64 {
        match sample.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        }
    }

    #[test]
    fn series_carry_the_owner_labels_and_are_bounded() {
        let metrics = Arc::new(ContainerMetrics::new(3));
        let mut readings: Vec<ContainerReading> = (0..5)
            .map(|i| reading(&format!("lab-cpu-{i}"), f64::from(i)))
            .collect();
        // Not a pod container: no series.
        readings.push(ContainerReading {
            cgroup_path: "/system.slice/containerd.service".into(),
            kind: Some("system".into()),
            ..ContainerReading::default()
        });
        metrics.update(&readings, &[]);
        let scrape = scrape(&metrics);
        let cpu = samples(&scrape, "stressmix_agent_container_cpu_percent");
        assert_eq!(cpu.len(), 3, "bounded at 3 containers");
        let pods: Vec<&str> = cpu.iter().filter_map(|s| s.labels.get("pod")).collect();
        assert_eq!(pods.len(), 3);
        assert!(pods.contains(&"lab-cpu-0") && !pods.contains(&"lab-cpu-4"));
        for s in &cpu {
            assert_eq!(s.labels.get("namespace"), Some("stress"));
            assert_eq!(s.labels.get("container"), Some("stress"));
            assert_eq!(s.labels.get("workload"), Some("lab"));
            assert_eq!(s.labels.get("kind"), Some("cpu"));
        }
        let dropped = samples(&scrape, "stressmix_agent_container_series_dropped");
        assert_eq!(
            dropped.iter().map(|s| value(s)).collect::<Vec<_>>(),
            vec![2.0]
        );
        // Only the values a reading has: cpu some, not full (None) nor memory.
        let pressure = samples(&scrape, "stressmix_agent_container_pressure_percent");
        assert_eq!(pressure.len(), 3);
        assert!(
            pressure
                .iter()
                .all(|s| s.labels.get("resource") == Some("cpu")
                    && s.labels.get("level") == Some("some")
                    && value(s) == 12.5)
        );
        assert_eq!(
            samples(
                &scrape,
                "stressmix_agent_container_cpu_throttled_periods_percent"
            )
            .len(),
            3
        );
        assert!(
            samples(
                &scrape,
                "stressmix_agent_container_cpu_throttled_seconds_per_second"
            )
            .is_empty()
        );
        // The next collection replaces the series: a container that left is gone.
        metrics.update(&readings[..1], &[]);
        let scrape = self::scrape(&metrics);
        assert_eq!(
            samples(&scrape, "stressmix_agent_container_cpu_percent").len(),
            1
        );
        assert_eq!(
            samples(&scrape, "stressmix_agent_container_series_dropped")
                .iter()
                .map(|s| value(s))
                .sum::<f64>(),
            0.0
        );
    }

    #[test]
    fn oom_kill_counters_outlive_the_victim_for_a_while() {
        let metrics = Arc::new(ContainerMetrics::new(10));
        let kill = OomKill {
            cgroup_path: "/kubepods/podA/c".into(),
            count: 2,
            observed: stressmix_api::readings::OomObservation::Ancestor,
            namespace: Some("stress".into()),
            pod: Some("lab-memory-0".into()),
            pod_uid: None,
            container: Some("stress".into()),
            workload: Some("lab".into()),
            kind: Some("memory".into()),
            slot: Some(0),
        };
        metrics.update(&[], std::slice::from_ref(&kill));
        metrics.update(&[], std::slice::from_ref(&kill));
        let kills = |m: &Arc<ContainerMetrics>| {
            let scrape = scrape(m);
            samples(&scrape, "stressmix_agent_container_oom_kills_total")
                .iter()
                .map(|s| (s.labels.get("pod").map(str::to_owned), value(s)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kills(&metrics),
            vec![(Some("lab-memory-0".to_owned()), 4.0)]
        );
        for _ in 0..RecentPods::KEEP {
            metrics.update(&[], &[]);
        }
        assert_eq!(kills(&metrics).len(), 1, "kept KEEP collections");
        metrics.update(&[], &[]);
        assert!(kills(&metrics).is_empty(), "then forgotten");
    }
}
