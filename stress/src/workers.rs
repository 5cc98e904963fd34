//! Runs one closure on N named threads and gathers their results.

use std::thread;

use crate::{Error, Stop};

/// Runs `work(index)` on `count` threads. The first failure stops the others and is returned.
pub(crate) fn run<T: Send>(
    kind: &str,
    count: usize,
    stop: &Stop,
    work: impl Fn(usize) -> Result<T, Error> + Sync,
) -> Result<Vec<T>, Error> {
    thread::scope(|scope| {
        let mut handles = Vec::with_capacity(count);
        for index in 0..count {
            let work = &work;
            let spawned = thread::Builder::new()
                .name(format!("{kind}-{index}"))
                .spawn_scoped(scope, move || {
                    let result = work(index);
                    if let Err(error) = &result {
                        tracing::error!(worker = index, %error, "worker failed, stopping the run");
                        stop.request();
                    }
                    result
                });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    stop.request(); // the scope joins the threads already started
                    return Err(Error::Spawn(e));
                }
            }
        }
        let mut results = Vec::with_capacity(count);
        let mut first_error = None;
        for handle in handles {
            match handle.join() {
                Ok(Ok(value)) => results.push(value),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    stop.request();
                    first_error.get_or_insert(Error::WorkerPanicked);
                }
            }
        }
        first_error.map_or(Ok(results), Err)
    })
}

/// Splits `total` into `parts` shares that differ by at most one and add up to `total`.
pub(crate) fn split(total: u64, parts: usize) -> Result<Vec<u64>, Error> {
    let n = parts as u64;
    if parts == 0 || total < n {
        return Err(Error::BytesBelowWorkers {
            bytes: total,
            workers: parts,
        });
    }
    Ok((0..n)
        .map(|i| total / n + u64::from(i < total % n))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_adds_up_and_is_even() {
        assert_eq!(split(10, 3).expect("split"), vec![4, 3, 3]);
        assert_eq!(split(8, 2).expect("split"), vec![4, 4]);
        assert!(matches!(
            split(1, 2),
            Err(Error::BytesBelowWorkers {
                bytes: 1,
                workers: 2
            })
        ));
    }

    #[test]
    fn a_failing_worker_stops_the_others() {
        let stop = Stop::new(None);
        let result = run("t", 3, &stop, |i| {
            if i == 0 {
                return Err(Error::WorkerPanicked);
            }
            while !stop.sleep(std::time::Duration::from_secs(10)) {}
            Ok(i)
        });
        assert!(matches!(result, Err(Error::WorkerPanicked)));
        assert!(stop.is_stopped());
    }
}
