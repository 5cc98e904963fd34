//! What a Workload's spec asks for, per kind: how many pods and the template hash they carry (pure).

use std::time::Duration;

use stressmix_api::workload::Workload;

use crate::hash::template_hash;
use crate::planner::KindDesire;

/// The image of the Workload's pods: its own, else the operator's default.
pub fn image(wl: &Workload, default_image: &str) -> String {
    wl.spec
        .template
        .image
        .clone()
        .unwrap_or_else(|| default_image.to_owned())
}

/// One desire per kind of the mix (0 replicas while suspended), hashed with `image`.
pub fn desired_kinds(wl: &Workload, image: &str) -> Vec<KindDesire> {
    wl.spec
        .mix
        .iter()
        .map(|entry| KindDesire {
            kind: entry.kind,
            replicas: u32::try_from(wl.spec.desired_replicas(entry.kind)).unwrap_or(0),
            template_hash: template_hash(entry, &wl.spec.template, image),
        })
        .collect()
}

/// Age at which a pod is recycled.
pub fn lifetime(wl: &Workload) -> Duration {
    Duration::from_secs(u64::try_from(wl.spec.template.lifetime_seconds).unwrap_or(1))
}
