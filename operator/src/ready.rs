//! A readiness gate for the pod cache that any number of reconciles may wait on at once.
//!
//! kube-runtime 5's `Store::wait_until_ready` keeps one `oneshot::Receiver` behind a mutex; a
//! receiver remembers only the waker of its last poll, so when several tasks wait at the same time
//! only the last one is woken and the others wait forever. After a Lease loss the new controller
//! starts its reconciles before the new pod cache is filled, so every reconcile but one hung there,
//! holding its concurrency slot (docs/benchmarks.md, "the stall"). Here exactly one task waits on
//! the store and publishes readiness on a `tokio::sync::watch`, which wakes every waiter.

use std::future::Future;

use kube::Resource;
use kube::runtime::reflector::Store;
use thiserror::Error;
use tokio::sync::watch;

/// The cache's writer stopped before the cache was ever filled.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("the cache closed before its first full list")]
pub struct CacheClosed;

/// Cloneable handle that waits until the cache has been filled once.
#[derive(Clone, Debug)]
pub struct ReadyGate {
    ready: watch::Receiver<bool>,
}

impl ReadyGate {
    /// A gate and the future that opens it; the future must run alongside the cache's writer
    /// (it completes once the store is ready, or when the store's writer is dropped).
    pub fn for_store<K>(store: Store<K>) -> (ReadyGate, impl Future<Output = ()> + Send + 'static)
    where
        K: Resource + Clone + Send + Sync + 'static,
        K::DynamicType: std::hash::Hash + Eq + Clone + Send + Sync,
    {
        Self::opened_by(async move { store.wait_until_ready().await.is_ok() })
    }

    /// A gate opened when `ready` resolves to true; false, or dropping the returned future before
    /// it resolves, closes it for good.
    pub fn opened_by(
        ready: impl Future<Output = bool> + Send + 'static,
    ) -> (ReadyGate, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = watch::channel(false);
        let opener = async move {
            if ready.await {
                // The value outlives the sender: a waiter reads it before it checks for closure.
                tx.send_replace(true);
            }
        };
        (ReadyGate { ready: rx }, opener)
    }

    /// Returns once the cache is ready; errors when it can never become ready.
    pub async fn wait(&self) -> Result<(), CacheClosed> {
        let mut ready = self.ready.clone();
        ready
            .wait_for(|r| *r)
            .await
            .map(|_| ())
            .map_err(|_| CacheClosed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn spawn_waiters(
        gate: &ReadyGate,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<Result<(), CacheClosed>>> {
        (0..n)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move { gate.wait().await })
            })
            .collect()
    }

    async fn assert_all_released(waiters: Vec<tokio::task::JoinHandle<Result<(), CacheClosed>>>) {
        for waiter in waiters {
            let result = tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("every waiter is woken")
                .expect("waiter task");
            assert_eq!(result, Ok(()));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_one_of_many_concurrent_waiters_is_released() {
        let (open_tx, open_rx) = tokio::sync::oneshot::channel::<()>();
        let (gate, opener) = ReadyGate::opened_by(async move { open_rx.await.is_ok() });
        let opener = tokio::spawn(opener);
        let waiters = spawn_waiters(&gate, 64);
        // Let every waiter park before the gate opens: the case the upstream store gets wrong.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()));
        open_tx.send(()).expect("opener listening");
        assert_all_released(waiters).await;
        // The opener is done once it has opened; a waiter arriving after that passes at once.
        tokio::time::timeout(Duration::from_secs(5), opener)
            .await
            .expect("the opener ends once it has opened the gate")
            .expect("opener task");
        assert_eq!(gate.wait().await, Ok(()));
    }

    #[tokio::test]
    async fn a_gate_whose_cache_never_fills_reports_closed() {
        let (gate, opener) = ReadyGate::opened_by(async { false });
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.wait().await }
        });
        opener.await;
        assert_eq!(waiter.await.expect("waiter task"), Err(CacheClosed));
    }

    #[tokio::test]
    async fn a_real_store_opens_the_gate_once_its_first_list_is_applied() {
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::runtime::{reflector, watcher};

        let (store, mut writer) = reflector::store::<ConfigMap>();
        let (gate, opener) = ReadyGate::for_store(store);
        let opener = tokio::spawn(opener);
        let waiters = spawn_waiters(&gate, 8);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()));
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        assert_all_released(waiters).await;
        opener.await.expect("opener task");
    }
}
