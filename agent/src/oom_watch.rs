//! Reads a cgroup's `memory.events` the moment the kernel says it changed.
//!
//! The kernel raises a file-modified event on `memory.events` of the cgroup and of each ancestor
//! whenever one of its counters moves (an OOM kill among them). A killed container's cgroup is
//! removed as soon as its task is reaped, before the next snapshot; read at the event, its last
//! `oom_kill` survives it, so [`crate::oom`] can give the kill to the container itself. A thread
//! blocks on inotify and reads the file at each event; the collector adds a watch for every cgroup
//! of each snapshot that has memory events (a removed cgroup drops its watch by itself) and takes
//! the values read since the previous collection.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use stressmix_api::kmod::Snapshot;

use crate::source::kernel_files;

#[derive(Debug, Default)]
struct Watched {
    by_wd: HashMap<WatchDescriptor, String>,
    by_path: HashMap<String, WatchDescriptor>,
    /// The last `oom_kill` read at an event since [`OomWatch::take_finals`], by cgroup path.
    finals: HashMap<String, u64>,
}

pub struct OomWatch {
    root: PathBuf,
    watches: Watches,
    watched: Arc<Mutex<Watched>>,
    warned: bool,
}

fn lock(watched: &Mutex<Watched>) -> std::sync::MutexGuard<'_, Watched> {
    watched.lock().unwrap_or_else(PoisonError::into_inner)
}

fn events_file(root: &Path, cgroup: &str) -> PathBuf {
    root.join(cgroup.trim_start_matches('/'))
        .join("memory.events")
}

impl OomWatch {
    /// Starts the reading thread for the cgroup tree mounted at `root`.
    pub fn start(root: PathBuf) -> io::Result<Self> {
        let mut inotify = Inotify::init()?;
        let watches = inotify.watches();
        let watched = Arc::new(Mutex::new(Watched::default()));
        let shared = watched.clone();
        let thread_root = root.clone();
        std::thread::Builder::new()
            .name("oom-watch".into())
            .spawn(move || {
                let mut buffer = [0u8; 4096];
                loop {
                    let events = match inotify.read_events_blocking(&mut buffer) {
                        Ok(events) => events,
                        Err(e) => {
                            tracing::warn!(error = %e, "memory.events watch stopped: OOM kills in cgroups removed between two collections are counted at their nearest remaining ancestor");
                            return;
                        }
                    };
                    for event in events {
                        if event.mask.contains(EventMask::IGNORED) {
                            let mut w = lock(&shared);
                            if let Some(path) = w.by_wd.remove(&event.wd) {
                                w.by_path.remove(&path);
                            }
                            continue;
                        }
                        let Some(path) = lock(&shared).by_wd.get(&event.wd).cloned() else {
                            continue;
                        };
                        // Read outside the lock; a cgroup removed meanwhile has nothing to add.
                        let read = std::fs::read_to_string(events_file(&thread_root, &path));
                        if let Some(events) =
                            read.ok().as_deref().and_then(kernel_files::parse_memory_events)
                        {
                            lock(&shared).finals.insert(path, events.oom_kill);
                        }
                    }
                }
            })?;
        Ok(OomWatch {
            root,
            watches,
            watched,
            warned: false,
        })
    }

    /// Watches every cgroup of `snapshot` that has memory events and is not watched yet.
    pub fn sync(&mut self, snapshot: &Snapshot) {
        let paths: Vec<String> = {
            let w = lock(&self.watched);
            snapshot
                .cgroups
                .iter()
                .filter(|c| c.memory_events.is_some())
                .map(|c| c.path.to_string_lossy().into_owned())
                .filter(|p| !w.by_path.contains_key(p))
                .collect()
        };
        for path in paths {
            match self
                .watches
                .add(events_file(&self.root, &path), WatchMask::MODIFY)
            {
                Ok(wd) => {
                    let mut w = lock(&self.watched);
                    w.by_wd.insert(wd.clone(), path.clone());
                    w.by_path.insert(path, wd);
                }
                // Removed since the snapshot: nothing to watch.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    if !self.warned {
                        self.warned = true;
                        tracing::warn!(error = %e, cgroup = path, "cannot watch memory.events (fs.inotify.max_user_watches?): OOM kills in cgroups removed between two collections are counted at their nearest watched ancestor");
                    }
                }
            }
        }
    }

    /// The last `oom_kill` values read since the previous call, by cgroup path.
    pub fn take_finals(&self) -> HashMap<String, u64> {
        std::mem::take(&mut lock(&self.watched).finals)
    }

    /// Cgroups watched now.
    pub fn watched(&self) -> usize {
        lock(&self.watched).by_wd.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};
    use stressmix_api::kmod::{KString, MemoryEvents};

    fn events(oom_kill: u64) -> String {
        format!("low 0\nhigh 0\nmax {oom_kill}\noom {oom_kill}\noom_kill {oom_kill}\n")
    }

    fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(v) = probe() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn the_last_value_is_read_at_the_event_and_outlives_the_cgroup() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().to_path_buf();
        let container = root.join("pod/c1");
        std::fs::create_dir_all(&container).expect("mkdir");
        std::fs::write(container.join("memory.events"), events(0)).expect("write");
        let mut snapshot: Snapshot = serde_json::from_str(include_str!(
            "../../api/tests/fixtures/kmod/handwritten-v1.json"
        ))
        .expect("fixture");
        let mut cgroup = snapshot.cgroups[0].clone();
        cgroup.path = KString::from("/pod/c1");
        cgroup.memory_events = Some(MemoryEvents {
            low: 0,
            high: 0,
            max: 0,
            oom: 0,
            oom_kill: 0,
        });
        let mut unwatchable = cgroup.clone();
        unwatchable.memory_events = None;
        unwatchable.path = KString::from("/pod");
        snapshot.cgroups = vec![unwatchable, cgroup];

        let mut watch = OomWatch::start(root).expect("inotify");
        watch.sync(&snapshot);
        assert_eq!(watch.watched(), 1, "only cgroups with memory events");
        watch.sync(&snapshot);
        assert_eq!(watch.watched(), 1, "watched once");
        assert!(watch.take_finals().is_empty());

        std::fs::write(container.join("memory.events"), events(1)).expect("write");
        let finals = eventually("the event", || {
            let f = watch.take_finals();
            (!f.is_empty()).then_some(f)
        });
        assert_eq!(finals, HashMap::from([("/pod/c1".to_owned(), 1)]));
        // The cgroup goes away: its watch goes with it, the value already taken stays taken.
        std::fs::remove_dir_all(&container).expect("rm");
        eventually("the watch to drop", || (watch.watched() == 0).then_some(()));
        assert!(watch.take_finals().is_empty());
    }
}
