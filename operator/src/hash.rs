//! The template hash: a short digest of everything a pod of one kind is built from.
//!
//! A pod whose `stressmix.dev/template-hash` label differs from the current hash is outdated and gets
//! replaced. `replicas` and `lifetimeSeconds` are left out on purpose: scaling must not replace pods,
//! and the lifetime is judged from each pod's age, not baked into it.

use serde::Serialize;
use stressmix_api::workload::{MixEntry, WorkloadTemplate};

#[derive(Serialize)]
struct Hashed<'a> {
    kind: &'a str,
    workers: i32,
    load: Option<i32>,
    bytes: Option<&'a str>,
    image: &'a str,
    cpu: Option<&'a str>,
    memory: Option<&'a str>,
    duration_seconds: i64,
    scratch_size_limit: &'a str,
    node_selector: &'a std::collections::BTreeMap<String, String>,
    tolerations: &'a [k8s_openapi::api::core::v1::Toleration],
}

/// Hash of the pod-shaping parts of `entry` and `template`, with `image` already resolved.
pub fn template_hash(entry: &MixEntry, template: &WorkloadTemplate, image: &str) -> String {
    let limits = template.resources.limits.as_ref();
    let hashed = Hashed {
        kind: entry.kind.as_str(),
        workers: entry.workers,
        load: entry.load,
        bytes: entry.bytes.as_ref().map(|q| q.0.as_str()),
        image,
        cpu: limits.and_then(|l| l.cpu.as_ref()).map(|q| q.0.as_str()),
        memory: limits.and_then(|l| l.memory.as_ref()).map(|q| q.0.as_str()),
        duration_seconds: template.duration_seconds,
        scratch_size_limit: &template.scratch_size_limit.0,
        node_selector: &template.node_selector,
        tolerations: &template.tolerations,
    };
    // serde_json of a struct and BTreeMaps is deterministic; a failure cannot happen for these types,
    // and would only make every pod look outdated once, so fall back to the debug text.
    let text =
        serde_json::to_string(&hashed).unwrap_or_else(|_| format!("{entry:?}{template:?}{image}"));
    format!("{:016x}", fnv1a64(text.as_bytes()))
}

/// FNV-1a, 64 bit: stable across Rust versions and platforms (std's hasher is not).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use stressmix_api::workload::StressKind;

    fn entry() -> MixEntry {
        MixEntry {
            kind: StressKind::Memory,
            replicas: 2,
            workers: 1,
            load: None,
            bytes: Some(Quantity("64Mi".into())),
        }
    }

    #[test]
    fn scaling_and_lifetime_keep_the_hash_other_changes_move_it() {
        let template = WorkloadTemplate::default();
        let base = template_hash(&entry(), &template, "img:1");
        assert_eq!(base.len(), 16);

        let mut scaled = entry();
        scaled.replicas = 9;
        assert_eq!(template_hash(&scaled, &template, "img:1"), base);
        let mut longer = template.clone();
        longer.lifetime_seconds = 999;
        assert_eq!(template_hash(&entry(), &longer, "img:1"), base);

        assert_ne!(template_hash(&entry(), &template, "img:2"), base);
        let mut bigger = entry();
        bigger.bytes = Some(Quantity("65Mi".into()));
        assert_ne!(template_hash(&bigger, &template, "img:1"), base);
        let mut shorter = template.clone();
        shorter.duration_seconds = 5;
        assert_ne!(template_hash(&entry(), &shorter, "img:1"), base);
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
