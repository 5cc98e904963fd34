//! Leader election on a `coordination.k8s.io/v1` Lease, using only get, create and update (the RBAC
//! the contract grants). Updates carry the resourceVersion, so two candidates can never both win.
//!
//! Expiry is judged by the candidate's own monotonic clock (how long since it last saw the Lease
//! change), as client-go does, so clock skew between machines cannot shorten a Lease. A leader that
//! fails to renew within `duration - grace` steps down before any standby may take over.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Timing and naming of the election.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// This candidate's identity (holderIdentity).
    pub identity: String,
    /// How long a Lease stays valid after its last renewal.
    pub duration: Duration,
    /// A leader that has not renewed for `duration - grace` stops leading.
    pub grace: Duration,
}

impl LeaseConfig {
    /// Pause between attempts (renewals and standby polls).
    pub fn retry_period(&self) -> Duration {
        (self.renew_deadline() / 3).clamp(Duration::from_millis(200), Duration::from_secs(2))
    }

    fn renew_deadline(&self) -> Duration {
        self.duration
            .saturating_sub(self.grace)
            .max(Duration::from_secs(1))
    }
}

/// What a candidate does with the Lease it just read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write itself as holder (free, expired or already its own).
    Take,
    /// Someone else holds a valid Lease: wait.
    Wait,
}

/// Decides from the Lease's holder and how long it has gone unchanged in this candidate's view.
pub fn decide(
    holder: Option<&str>,
    me: &str,
    unchanged_for: Duration,
    lease_duration: Duration,
) -> Decision {
    match holder {
        None | Some("") => Decision::Take,
        Some(h) if h == me => Decision::Take,
        Some(_) if unchanged_for >= lease_duration => Decision::Take,
        Some(_) => Decision::Wait,
    }
}

/// Runs the election until `shutdown` flips to true, publishing leadership on `leader`; on shutdown
/// releases the Lease if held.
pub async fn run(
    api: Api<Lease>,
    config: LeaseConfig,
    leader: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_seen: Option<(String, Instant)> = None;
    // Start of the last attempt that renewed: the API server wrote the Lease after it, and a standby
    // saw that write later still, so leading until `last_renew + renew_deadline` is always safe.
    let mut last_renew: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let started = Instant::now();
        let deadline = last_renew.map(|t| t + config.renew_deadline());
        let attempt_deadline = deadline.unwrap_or(started + config.retry_period());
        // A hung API call must not keep a stale leader going past its deadline.
        let held = tokio::time::timeout_at(
            attempt_deadline.into(),
            try_acquire_or_renew(&api, &config, &mut last_seen),
        )
        .await
        .unwrap_or(false);
        if held {
            last_renew = Some(started);
        }
        let leading = last_renew.is_some_and(|t| t.elapsed() < config.renew_deadline());
        if !leading {
            last_renew = None;
        }
        if *leader.borrow() != leading {
            if leading {
                info!(lease = %config.name, identity = %config.identity, "acquired the lease: leading");
            } else {
                warn!(lease = %config.name, identity = %config.identity, "lost the lease: standing by");
            }
            // Nobody listening means the process is shutting down; the loop ends below.
            let _ = leader.send(leading);
        }
        let mut wake = Instant::now() + config.retry_period();
        if let Some(t) = last_renew {
            wake = wake.min(t + config.renew_deadline());
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = shutdown.changed() => {}
        }
    }
    if *leader.borrow() {
        let _ = leader.send(false);
        release(&api, &config).await;
    }
}

/// One attempt; true when this candidate holds the Lease afterwards.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    config: &LeaseConfig,
    last_seen: &mut Option<(String, Instant)>,
) -> bool {
    let now_ts = MicroTime(Timestamp::now());
    let duration_secs = i32::try_from(config.duration.as_secs()).unwrap_or(i32::MAX);
    let current = match api.get_opt(&config.name).await {
        Ok(current) => current,
        Err(err) => {
            warn!(error = %err, lease = %config.name, "cannot read the lease");
            return false;
        }
    };
    let Some(mut lease) = current else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(now_ts.clone()),
                renew_time: Some(now_ts),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => true,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                debug!("lease create lost a race");
                false
            }
            Err(err) => {
                warn!(error = %err, lease = %config.name, "cannot create the lease");
                false
            }
        };
    };

    // Track when this candidate last saw the Lease change (resourceVersion).
    let version = lease.metadata.resource_version.clone().unwrap_or_default();
    let seen_at = match last_seen {
        Some((v, t)) if *v == version => *t,
        _ => {
            let t = Instant::now();
            *last_seen = Some((version, t));
            t
        }
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone();
    let lease_duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(config.duration, Duration::from_secs);
    match decide(
        holder.as_deref(),
        &config.identity,
        seen_at.elapsed(),
        lease_duration,
    ) {
        Decision::Wait => false,
        Decision::Take => {
            if holder.as_deref() != Some(config.identity.as_str()) {
                spec.acquire_time = Some(now_ts.clone());
                spec.lease_transitions =
                    Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
                spec.holder_identity = Some(config.identity.clone());
            }
            spec.renew_time = Some(now_ts);
            spec.lease_duration_seconds = Some(duration_secs);
            match api
                .replace(&config.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => true,
                Err(err) => {
                    debug!(error = %err, "lease update lost a race");
                    false
                }
            }
        }
    }
}

/// Gives the Lease up so a standby takes over at its next poll instead of waiting for expiry.
async fn release(api: &Api<Lease>, config: &LeaseConfig) {
    let result = async {
        let Some(mut lease) = api.get_opt(&config.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        api.replace(&config.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
    .await;
    match result {
        Ok(()) => info!(lease = %config.name, "released the lease"),
        Err(err) => {
            warn!(error = %err, lease = %config.name, "cannot release the lease; it expires on its own")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(10);

    #[test]
    fn free_own_and_expired_leases_are_taken_valid_foreign_ones_are_not() {
        assert_eq!(decide(None, "me", Duration::ZERO, D), Decision::Take);
        assert_eq!(decide(Some(""), "me", Duration::ZERO, D), Decision::Take);
        assert_eq!(decide(Some("me"), "me", Duration::ZERO, D), Decision::Take);
        assert_eq!(
            decide(Some("other"), "me", Duration::from_secs(9), D),
            Decision::Wait
        );
        assert_eq!(
            decide(Some("other"), "me", Duration::from_secs(10), D),
            Decision::Take
        );
    }

    #[test]
    fn a_leader_steps_down_before_a_standby_may_take_over() {
        let config = LeaseConfig {
            name: "l".into(),
            identity: "me".into(),
            duration: D,
            grace: Duration::from_secs(4),
        };
        assert!(config.renew_deadline() < config.duration);
        assert!(config.retry_period() * 3 <= config.renew_deadline());
    }
}
