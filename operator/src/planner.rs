//! The pure planner: desired spec + observed pods + now -> the deletes and creates that move the
//! cluster toward the spec, and when to look again.
//!
//! No I/O, no clock: everything comes in as arguments so tables and property tests can drive it.
//!
//! Slots: pod `n` of a kind has two possible names, `<workload>-<kind>-<n>` and
//! `<workload>-<kind>-<n>-b`. A new pod goes into a slot `0..replicas` that no live pod holds, under
//! whichever of the two names no observed pod (live, finished or terminating) has. So a pod that is
//! terminating, finished or past its lifetime is replaced at once under the other name, without
//! waiting for the old object to go, while the API server's refusal of a duplicate name still turns a
//! repeated create from a stale view into a harmless `AlreadyExists`. Pods this operator created and
//! its cache has not shown yet come in as `in_flight` and hold their slots like live pods (the
//! ReplicaSet controller's "expectations"), so a view that lags behind its own creates cannot fill a
//! slot twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use stressmix_api::workload::StressKind;

/// Lifecycle phase of a pod as the planner needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, not all containers started (may be unscheduled).
    Pending,
    /// Bound to a node, containers started.
    Running,
    /// Every container exited 0: the stress run ended.
    Succeeded,
    /// A container failed.
    Failed,
    /// The node stopped reporting.
    Unknown,
}

/// What the planner knows about one pod of the Workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedPod {
    /// Pod name.
    pub name: String,
    /// Pod UID: deletes carry it as a precondition, so a newer pod of the same name is never hit.
    pub uid: String,
    /// Stressor kind from the `stressmix.dev/kind` label.
    pub kind: Option<StressKind>,
    /// Slot number parsed from the name (`None` when the name is not one of the slot's names).
    pub slot: Option<u32>,
    /// Value of the `stressmix.dev/template-hash` label.
    pub template_hash: Option<String>,
    /// Pod phase.
    pub phase: Phase,
    /// `spec.nodeName` is set.
    pub scheduled: bool,
    /// The Ready condition is true.
    pub ready: bool,
    /// `metadata.creationTimestamp`.
    pub created: Option<SystemTime>,
    /// `metadata.deletionTimestamp`: the pod is terminating.
    pub deleting: Option<SystemTime>,
}

impl ObservedPod {
    /// Not terminating and not finished: it counts against `replicas`.
    pub fn is_live(&self) -> bool {
        self.deleting.is_none() && !matches!(self.phase, Phase::Succeeded | Phase::Failed)
    }

    /// Surplus rank: lower ranks are removed first (unscheduled, pending, not ready, ready).
    fn surplus_rank(&self) -> u8 {
        if !self.scheduled {
            0
        } else if self.phase == Phase::Pending {
            1
        } else if !self.ready {
            2
        } else {
            3
        }
    }
}

/// What the spec asks for, one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindDesire {
    /// Stressor kind.
    pub kind: StressKind,
    /// Pods to keep (0 when the kind is not listed or the Workload is suspended).
    pub replicas: u32,
    /// Template hash the pods of this kind must carry.
    pub template_hash: String,
}

/// Everything the planner decides from.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    /// Workload name (prefix of every pod name).
    pub workload: &'a str,
    /// One entry per kind (kinds not listed may be absent: they count as 0 replicas).
    pub desired: &'a [KindDesire],
    /// Age at which a pod is recycled.
    pub lifetime: Duration,
    /// Pods owned by the Workload, as observed (possibly stale).
    pub pods: &'a [ObservedPod],
    /// Current time.
    pub now: SystemTime,
    /// Slots (by [`slot_name`]) that must not be re-created before the given time (failure backoff).
    pub backoff: &'a BTreeMap<String, SystemTime>,
    /// Pods created by this operator that `pods` does not show yet: they hold their slots.
    pub in_flight: &'a [Create],
    /// A pod still terminating this long after its deletion timestamp blocks its slot: Degraded.
    pub stuck_after: Duration,
}

/// Why a pod is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeleteReason {
    /// Its stress run ended (phase Succeeded).
    Finished,
    /// It failed (phase Failed); its slot backs off before the replacement.
    Failed,
    /// Older than `lifetimeSeconds`.
    Expired,
    /// Built from an older spec (template hash differs).
    Outdated,
    /// More live pods than `replicas`, or a pod the planner cannot place in a slot.
    Surplus,
}

impl DeleteReason {
    /// Label value and event wording.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Outdated => "outdated",
            Self::Surplus => "surplus",
        }
    }

    /// Whether the deleted pod gets a replacement (all but surplus).
    pub fn is_replacement(self) -> bool {
        !matches!(self, Self::Surplus)
    }
}

/// One pod to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    /// Pod name.
    pub name: String,
    /// UID precondition.
    pub uid: String,
    /// Kind label of the pod, if any.
    pub kind: Option<StressKind>,
    /// Slot of the pod, if its name is one of a slot's names.
    pub slot: Option<u32>,
    /// Why.
    pub reason: DeleteReason,
}

/// One pod to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Create {
    /// Stressor kind.
    pub kind: StressKind,
    /// Slot number.
    pub slot: u32,
    /// Pod name: [`slot_name`] or, while that name is still taken, [`second_name`].
    pub name: String,
}

/// The planner's decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Pods to delete.
    pub deletes: Vec<Delete>,
    /// Pods to create.
    pub creates: Vec<Create>,
    /// Pods stuck terminating in a slot the spec needs.
    pub stuck: Vec<String>,
    /// Slots left empty because their failure backoff has not expired.
    pub backing_off: Vec<String>,
    /// When to reconcile again even if nothing changes (next expiry, backoff end, stuck check).
    pub requeue_after: Option<Duration>,
}

/// Suffix of a slot's second name.
const SECOND_NAME_SUFFIX: &str = "-b";

/// The first pod name of `slot` of `kind` in `workload`, which also names the slot itself.
pub fn slot_name(workload: &str, kind: StressKind, slot: u32) -> String {
    format!("{workload}-{}-{slot}", kind.as_str())
}

/// The slot's other pod name, used while a pod under [`slot_name`] is still being removed.
pub fn second_name(workload: &str, kind: StressKind, slot: u32) -> String {
    format!("{}{SECOND_NAME_SUFFIX}", slot_name(workload, kind, slot))
}

/// The slot number encoded in `name`, if it is one of the names of a slot of `kind` in `workload`.
pub fn parse_slot(workload: &str, kind: StressKind, name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix(workload)?
        .strip_prefix('-')?
        .strip_prefix(kind.as_str())?
        .strip_prefix('-')?;
    let digits = rest.strip_suffix(SECOND_NAME_SUFFIX).unwrap_or(rest);
    // Only canonical numbers: "01" would alias slot 1.
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Computes the actions for one reconcile.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let mut out = Plan::default();
    let mut wake: Option<SystemTime> = None;
    let mut wake_at = |t: SystemTime| {
        wake = Some(wake.map_or(t, |w: SystemTime| w.min(t)));
    };

    // Pods whose kind the planner cannot read are never the Workload's to keep.
    for pod in input.pods.iter().filter(|p| p.kind.is_none()) {
        if pod.deleting.is_none() {
            out.deletes.push(delete(pod, DeleteReason::Surplus));
        }
    }

    for kind in StressKind::ALL {
        let desire = input.desired.iter().find(|d| d.kind == kind);
        let replicas = desire.map_or(0, |d| d.replicas);
        let pods: Vec<&ObservedPod> = input.pods.iter().filter(|p| p.kind == Some(kind)).collect();
        let in_flight: Vec<&Create> = input.in_flight.iter().filter(|c| c.kind == kind).collect();
        // Names no new pod may take: every observed pod's and every pod still in flight.
        let taken: BTreeSet<&str> = pods
            .iter()
            .map(|p| p.name.as_str())
            .chain(in_flight.iter().map(|c| c.name.as_str()))
            .collect();
        // Slots a new pod must not enter (live pods, failed pods being deleted, pods in flight),
        // and the terminating pods that may keep a slot's two names taken.
        let mut held: BTreeSet<u32> = in_flight.iter().map(|c| c.slot).collect();
        let mut terminating: BTreeMap<u32, SystemTime> = BTreeMap::new();
        let mut live: Vec<&ObservedPod> = Vec::new();

        for pod in &pods {
            if let Some(deleting) = pod.deleting {
                if let Some(slot) = pod.slot {
                    let first = terminating.entry(slot).or_insert(deleting);
                    *first = (*first).min(deleting);
                }
                continue;
            }
            let reason = match pod.phase {
                Phase::Succeeded => Some(DeleteReason::Finished),
                Phase::Failed => Some(DeleteReason::Failed),
                _ if pod.slot.is_none() => Some(DeleteReason::Surplus),
                _ if replicas > 0
                    && desire.is_some_and(|d| {
                        pod.template_hash.as_deref() != Some(&d.template_hash)
                    }) =>
                {
                    Some(DeleteReason::Outdated)
                }
                _ => match pod.created {
                    Some(created) if input.now >= created + input.lifetime => {
                        Some(DeleteReason::Expired)
                    }
                    _ => None,
                },
            };
            match reason {
                Some(reason) => {
                    // A failed pod keeps its slot for this round: the executor records the failure
                    // in the slot's backoff as it deletes the pod, and the replacement waits for it.
                    if reason == DeleteReason::Failed
                        && let Some(slot) = pod.slot
                    {
                        held.insert(slot);
                    }
                    out.deletes.push(delete(pod, reason));
                }
                None => live.push(pod),
            }
        }

        // Surplus: the lowest ranks go first; among equals the higher slot. Pods in flight count
        // but cannot be deleted before they are seen; the next reconcile removes them if need be.
        let keep = usize::try_from(replicas).unwrap_or(usize::MAX);
        let counted = live.len() + in_flight.len();
        if counted > keep {
            live.sort_by(|a, b| {
                a.surplus_rank()
                    .cmp(&b.surplus_rank())
                    .then(b.slot.cmp(&a.slot))
                    .then(a.name.cmp(&b.name))
            });
            let excess = (counted - keep).min(live.len());
            for pod in live.drain(..excess) {
                out.deletes.push(delete(pod, DeleteReason::Surplus));
            }
        }
        for pod in &live {
            held.extend(pod.slot);
            if let Some(created) = pod.created {
                wake_at(created + input.lifetime);
            }
        }

        // Creates: the lowest free in-range slots, skipping slots still backing off, under the
        // first of the slot's two names that no pod has.
        let mut missing = keep.saturating_sub(live.len() + in_flight.len());
        for slot in 0..replicas {
            if missing == 0 {
                break;
            }
            if held.contains(&slot) {
                continue;
            }
            let key = slot_name(input.workload, kind, slot);
            if let Some(&not_before) = input.backoff.get(&key)
                && not_before > input.now
            {
                wake_at(not_before);
                out.backing_off.push(key);
                continue;
            }
            let second = second_name(input.workload, kind, slot);
            let name = if !taken.contains(key.as_str()) {
                key
            } else if !taken.contains(second.as_str()) {
                second
            } else {
                // Both names still taken: the slot waits for a pod to go. Terminating pods are
                // reported once they have blocked it for `stuck_after`.
                if let Some(&deleting) = terminating.get(&slot) {
                    let stuck_at = deleting + input.stuck_after;
                    if input.now >= stuck_at {
                        out.stuck.extend(
                            pods.iter()
                                .filter(|p| p.slot == Some(slot) && p.deleting.is_some())
                                .map(|p| p.name.clone()),
                        );
                    } else {
                        wake_at(stuck_at);
                    }
                }
                continue;
            };
            out.creates.push(Create { kind, slot, name });
            missing -= 1;
        }
    }

    out.requeue_after = wake.map(|t| {
        t.duration_since(input.now)
            .unwrap_or(Duration::ZERO)
            // Never spin: the clock granularity of the API server is one second.
            .max(Duration::from_millis(200))
    });
    out
}

fn delete(pod: &ObservedPod, reason: DeleteReason) -> Delete {
    Delete {
        name: pod.name.clone(),
        uid: pod.uid.clone(),
        kind: pod.kind,
        slot: pod.slot,
        reason,
    }
}
