//! CPU stressor: each worker keeps one core busy `load` percent of every period.
//!
//! The busy part is measured in the thread's own CPU time, not wall time, so on a shared or
//! throttled machine a worker still consumes `load` percent of the run's wall time, as far as
//! it can get the CPU (a starved worker catches up on at most [`MAX_DEBT`]).

use std::hint::black_box;
use std::io;
use std::time::{Duration, Instant};

use crate::cli::CpuArgs;
use crate::summary::Consumed;
use crate::{Error, Stop, workers};

const PERIOD: Duration = Duration::from_millis(100);
/// Most CPU time a worker catches up on after being starved.
const MAX_DEBT: Duration = Duration::from_secs(1);
/// Spin iterations between two looks at the clock and the stop flag (~20 µs).
const SPIN_BATCH: u32 = 16_384;

pub fn run(args: &CpuArgs, stop: &Stop) -> Result<Consumed, Error> {
    let busy = PERIOD * u32::from(args.load) / 100;
    workers::run("cpu", usize::from(args.workers.count), stop, |index| {
        worker(index as u64, busy, stop)
    })?;
    Ok(Consumed::default())
}

fn worker(seed: u64, busy: Duration, stop: &Stop) -> Result<(), Error> {
    let mut state = seed;
    let start_cpu = thread_cpu_time()?;
    // CPU time owed so far, accrued per period of wall time; debt from periods when the
    // thread could not run is paid back later, up to MAX_DEBT.
    let mut owed = Duration::ZERO;
    let mut period_end = Instant::now();
    while !stop.is_stopped() {
        period_end += PERIOD;
        owed += busy;
        loop {
            let used = thread_cpu_time()?.saturating_sub(start_cpu);
            if used >= owed {
                break;
            }
            if owed - used > MAX_DEBT {
                owed = used + MAX_DEBT;
            }
            for _ in 0..SPIN_BATCH {
                state = black_box(
                    state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1),
                );
            }
            if stop.is_stopped() {
                return Ok(());
            }
        }
        let now = Instant::now();
        if now < period_end {
            if stop.sleep_until(period_end) {
                return Ok(());
            }
        } else {
            // Overran (the CPU was busy): the wall time lost still accrues what it owes.
            owed += busy.mul_f64((now - period_end).as_secs_f64() / PERIOD.as_secs_f64());
            period_end = now;
        }
    }
    Ok(())
}

fn thread_cpu_time() -> Result<Duration, Error> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Err(Error::Measure {
            what: "thread CPU time",
            source: io::Error::last_os_error(),
        });
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}
