//! How long kube-runtime's scheduler holds a reconcile request that is due at once, the hop every
//! watch event takes before its reconcile starts (`make bench-operator` runs it first).
//!
//! The scheduler keeps requests in a millisecond timer wheel and rounds "now" up to the next tick, so
//! even a request due immediately waits for a timer to fire. This is the part of the operator's
//! delete -> replacement latency that the ReplicaSet controller's work queue does not have.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use kube::runtime::scheduler::{ScheduleRequest, scheduler};
use tokio::time::Instant;

const SAMPLES: usize = 201;

#[tokio::main]
async fn main() {
    let (mut requests, queue) = futures::channel::mpsc::channel::<ScheduleRequest<usize>>(1);
    let mut scheduled = Box::pin(scheduler(queue));
    let mut hops = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        // Spaced like watch events of a quiet cluster, so no sample finds a timer already armed.
        tokio::time::sleep(Duration::from_millis(7)).await;
        let sent = Instant::now();
        if requests
            .send(ScheduleRequest {
                message: i,
                run_at: sent,
            })
            .await
            .is_err()
        {
            eprintln!("the scheduler stopped listening");
            std::process::exit(1);
        }
        match scheduled.next().await {
            Some(got) if got == i => hops.push(sent.elapsed().as_secs_f64() * 1000.0),
            other => {
                eprintln!("expected request {i}, the scheduler gave {other:?}");
                std::process::exit(1);
            }
        }
    }
    hops.sort_by(f64::total_cmp);
    println!(
        "kube-runtime scheduler, request due now -> released: median {:.2} ms, p90 {:.2} ms, \
         min {:.2} ms ({SAMPLES} samples)",
        hops[SAMPLES / 2],
        hops[SAMPLES * 9 / 10],
        hops[0]
    );
}
