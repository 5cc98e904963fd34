//! SQLite storage: one writer thread (group commit) fed by a channel, reads on separate
//! connections. A `:memory:` database has a single connection, so its reads go through the writer
//! thread too.

mod blob;
mod migrate;
mod queries;
mod retention;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};
use stressmix_api::readings::ReadingBatch;
use tokio::sync::{mpsc, oneshot};

use crate::config::{Config, Synchronous};
use crate::metrics::Metrics;

pub use queries::{
    ContainerQuery, EventQuery, Label, LabelKind, Metric, RangeQuery, container_samples,
    label_values, legacy_data, node_samples, oom_kill_counts, oom_kills, pods_per_kind, snapshot,
};
pub use retention::{RetentionPolicy, RetentionReport};
pub use writer::IngestOutcome;
use writer::{Writer, WriterMsg};

/// Queue depth between the HTTP handlers and the writer thread; a full queue makes handlers wait
/// (backpressure) instead of buffering without bound.
const WRITER_QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored value of the wrong type: {0}")]
    Decode(#[from] rusqlite::types::FromSqlError),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("cannot start the writer thread")]
    WriterSpawn(#[source] std::io::Error),
    /// The blocking task running a read panicked or was cancelled.
    #[error("the query task did not finish")]
    ReadTask(#[source] tokio::task::JoinError),
    /// The group commit this batch was part of failed; the shared cause.
    #[error("the group commit failed")]
    GroupCommit(#[source] Arc<StoreError>),
}

/// Cheap to share (`Arc`): the handle the HTTP layer and the retention task use.
pub struct Db {
    writer_tx: mpsc::Sender<WriterMsg>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    writer_alive: Arc<AtomicBool>,
    readers: Option<Arc<ReaderPool>>,
    /// Rollups hold every minute before this instant (epoch ms); raw rows hold the rest.
    rollup_watermark: Arc<AtomicI64>,
}

struct ReaderPool {
    path: String,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl ReaderPool {
    fn get(&self) -> Result<Connection, StoreError> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match pooled {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path),
        }
    }

    fn put(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(conn);
        }
    }
}

fn open_reader(path: &str) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA query_only = ON; PRAGMA mmap_size = 268435456; PRAGMA cache_size = -32768;",
    )?;
    Ok(conn)
}

fn open_writer(path: &str, synchronous: Synchronous) -> Result<Connection, StoreError> {
    let conn = if path == ":memory:" {
        Connection::open_in_memory()?
    } else {
        Connection::open(Path::new(path))?
    };
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    if path != ":memory:" {
        // 16 KiB pages hold a 100-container batch (6.4 KB packed) in one page, without overflow
        // chains. Takes effect only when the file is created (before WAL mode).
        conn.execute_batch("PRAGMA page_size = 16384;")?;
        // WAL: readers never block the writer and a commit is one sequential append.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "SQLite refused WAL mode");
        }
    }
    let sync = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536;
         PRAGMA journal_size_limit = 67108864;"
    ))?;
    conn.execute_batch(include_str!("schema.sql"))?;
    migrate::migrate(&conn)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;",
    )?;
    Ok(conn)
}

impl Db {
    /// Opens (creating if needed) the database and starts the writer thread.
    pub fn open(config: &Config, metrics: Arc<Metrics>) -> Result<Db, StoreError> {
        let conn = open_writer(&config.db, config.synchronous)?;
        let watermark: i64 = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'rollup_watermark'",
                [],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(0),
                other => Err(other),
            })?;
        let rollup_watermark = Arc::new(AtomicI64::new(watermark));
        let writer_alive = Arc::new(AtomicBool::new(true));
        let (writer_tx, writer_rx) = mpsc::channel(WRITER_QUEUE);
        let writer = Writer::new(conn, metrics, rollup_watermark.clone());
        let alive = writer_alive.clone();
        let writer_thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                writer.run(writer_rx);
                alive.store(false, Ordering::SeqCst);
            })
            .map_err(StoreError::WriterSpawn)?;
        let readers = (config.db != ":memory:").then(|| {
            Arc::new(ReaderPool {
                path: config.db.clone(),
                idle: Mutex::new(Vec::new()),
                max_idle: config.readers.max(1),
            })
        });
        Ok(Db {
            writer_tx,
            writer_thread: Mutex::new(Some(writer_thread)),
            writer_alive,
            readers,
            rollup_watermark,
        })
    }

    /// Stores a validated batch; resolves once it is committed (or found to be a duplicate).
    pub async fn ingest(&self, batch: Box<ReadingBatch>) -> Result<IngestOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer_tx
            .send(WriterMsg::Ingest { batch, reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Rolls up and deletes old rows (runs on the writer thread, between commits).
    pub async fn retention(&self, policy: RetentionPolicy) -> Result<RetentionReport, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer_tx
            .send(WriterMsg::Retention { policy, reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs a read-only query on a reader connection (blocking pool thread).
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        match &self.readers {
            Some(pool) => {
                let pool = pool.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = pool.get()?;
                    let result = f(&conn);
                    pool.put(conn);
                    result
                })
                .await
                .map_err(StoreError::ReadTask)?
            }
            None => {
                let (tx, rx) = oneshot::channel();
                let job: Box<dyn FnOnce(&Connection) + Send> = Box::new(move |conn| {
                    let _ = tx.send(f(conn));
                });
                self.writer_tx
                    .send(WriterMsg::Read(job))
                    .await
                    .map_err(|_| StoreError::WriterGone)?;
                rx.await.map_err(|_| StoreError::WriterGone)?
            }
        }
    }

    /// True while the writer thread runs.
    pub fn writer_alive(&self) -> bool {
        self.writer_alive.load(Ordering::SeqCst) && !self.writer_tx.is_closed()
    }

    /// Every minute before this instant is served from rollups.
    pub fn rollup_watermark(&self) -> i64 {
        self.rollup_watermark.load(Ordering::SeqCst)
    }

    /// Lets the writer finish everything queued, then stops it and waits for it.
    pub async fn shutdown(&self) {
        let _ = self.writer_tx.send(WriterMsg::Shutdown).await;
        let handle = self.writer_thread.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}
