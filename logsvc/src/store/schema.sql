-- stressmix log service schema. Tables are created here; columns added to a table after it was first
-- created are added by `ADDED_COLUMNS` in mod.rs (to new and old databases alike), not here.
-- Tables of samples are keyed time first so that ingest appends at
-- the end of each B-tree and retention deletes a prefix. WITHOUT ROWID keeps one B-tree per table.

-- One row per agent run; batches refer to it by integer to keep the idempotency keys small.
CREATE TABLE IF NOT EXISTS boots (
    id      INTEGER PRIMARY KEY,
    boot_id TEXT NOT NULL UNIQUE
);

-- Idempotency: (boot, sequence) of every stored batch, kept as long as the rollups.
CREATE TABLE IF NOT EXISTS batches (
    boot        INTEGER NOT NULL,
    sequence    INTEGER NOT NULL,
    ts          INTEGER NOT NULL,
    node_id     INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    readings    INTEGER NOT NULL,
    source      TEXT NOT NULL,
    PRIMARY KEY (boot, sequence)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batches_ts ON batches (ts);

CREATE TABLE IF NOT EXISTS nodes (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- One row per distinct label set of a cgroup. Missing labels are '' so UNIQUE works.
-- first_ms/last_ms bound when the series has samples (last_ms is refreshed at most once a minute).
CREATE TABLE IF NOT EXISTS series (
    id           INTEGER PRIMARY KEY,
    node_id      INTEGER NOT NULL,
    cgroup_path  TEXT NOT NULL,
    container_id TEXT NOT NULL,
    pod_uid      TEXT NOT NULL,
    pod          TEXT NOT NULL,
    namespace    TEXT NOT NULL,
    container    TEXT NOT NULL,
    workload     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    first_ms     INTEGER NOT NULL,
    last_ms      INTEGER NOT NULL,
    UNIQUE (node_id, cgroup_path, container_id, pod_uid, pod, namespace, container, workload, kind)
);

CREATE TABLE IF NOT EXISTS node_samples (
    ts                     INTEGER NOT NULL,
    node_id                INTEGER NOT NULL,
    cpu_percent            REAL NOT NULL,
    cpus                   INTEGER NOT NULL,
    memory_total_bytes     INTEGER NOT NULL,
    memory_free_bytes      INTEGER NOT NULL,
    memory_available_bytes INTEGER NOT NULL,
    memory_used_bytes      INTEGER NOT NULL,
    PRIMARY KEY (ts, node_id)
) WITHOUT ROWID;

-- The container readings of one batch, packed (see blob.rs): one row per batch.
CREATE TABLE IF NOT EXISTS samples (
    id       INTEGER PRIMARY KEY,
    ts       INTEGER NOT NULL,
    node_id  INTEGER NOT NULL,
    boot     INTEGER NOT NULL,
    readings BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS samples_time ON samples (ts, node_id, boot);

-- Pressure and throttling of the batch in `samples` row `sample`, packed (see blob.rs); only for
-- batches that carried any. A table of its own so that usage queries read the pages they read
-- before contention existed, and rows of both kinds stay small enough to share pages.
CREATE TABLE IF NOT EXISTS samples_contention (
    sample  INTEGER PRIMARY KEY,
    entries BLOB NOT NULL
);

-- Stress pods per kind per node per batch (system cgroups excluded).
CREATE TABLE IF NOT EXISTS kind_pods (
    ts      INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    pods    INTEGER NOT NULL,
    PRIMARY KEY (ts, node_id, kind)
) WITHOUT ROWID;

-- 1-minute rollups: sums and counts (so late rows merge exactly), maxima where useful.
CREATE TABLE IF NOT EXISTS samples_1m (
    ts                   INTEGER NOT NULL,
    series_id            INTEGER NOT NULL,
    n                    INTEGER NOT NULL,
    sum_cpu_percent      REAL NOT NULL,
    sum_cpu_percent_node REAL NOT NULL,
    sum_memory_bytes     REAL NOT NULL,
    sum_memory_percent   REAL NOT NULL,
    sum_disk_read        REAL NOT NULL,
    sum_disk_write       REAL NOT NULL,
    sum_io_ops           REAL NOT NULL,
    PRIMARY KEY (ts, series_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS node_samples_1m (
    ts                         INTEGER NOT NULL,
    node_id                    INTEGER NOT NULL,
    n                          INTEGER NOT NULL,
    sum_cpu_percent            REAL NOT NULL,
    max_cpus                   INTEGER NOT NULL,
    sum_memory_total_bytes     REAL NOT NULL,
    sum_memory_free_bytes      REAL NOT NULL,
    sum_memory_available_bytes REAL NOT NULL,
    sum_memory_used_bytes      REAL NOT NULL,
    PRIMARY KEY (ts, node_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS kind_pods_1m (
    ts      INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    pods    INTEGER NOT NULL,
    PRIMARY KEY (ts, node_id, kind)
) WITHOUT ROWID;

-- OOM kills, as the agents attributed them: events, one row per batch entry.
CREATE TABLE IF NOT EXISTS oom_kills (
    ts          INTEGER NOT NULL,
    node_id     INTEGER NOT NULL,
    boot        INTEGER NOT NULL,
    sequence    INTEGER NOT NULL,
    entry       INTEGER NOT NULL,
    cgroup_path TEXT NOT NULL,
    count       INTEGER NOT NULL,
    -- `cgroup` or `ancestor` (api::readings::OomObservation).
    observed    TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    pod         TEXT NOT NULL,
    pod_uid     TEXT NOT NULL,
    container   TEXT NOT NULL,
    workload    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    slot        INTEGER,
    PRIMARY KEY (ts, boot, sequence, entry)
) WITHOUT ROWID;
