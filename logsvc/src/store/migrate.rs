//! Brings a database written by an older service to the current layout, after `schema.sql` has
//! created whatever tables it lacked. Each step finds its own work, so a current database passes
//! through unchanged and a step interrupted half way is done again at the next start.

use rusqlite::{Connection, params};

use super::queries::{self, Metric};
use super::{StoreError, blob};

/// Columns added after a table was first created: `CREATE TABLE IF NOT EXISTS` leaves an older
/// database's table as it was, so they are added here, to old and new databases alike (a NULL
/// column costs nothing in existing rows). Only ever append.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    // Why the agent read that source (its batch's source_reason), NULL when it gave none.
    ("batches", "source_reason", "TEXT"),
    // The batch's field_sources as JSON, NULL when it gave none.
    ("batches", "field_sources", "TEXT"),
    // The pod's slot in its Workload and kind, NULL for other cgroups.
    ("series", "slot", "INTEGER"),
];

/// Runs every step.
pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    add_missing_columns(conn)?;
    move_contention_out_of_samples(conn)
}

/// Every added column, with the `samples_1m` sum and count of each contention metric.
fn added_columns() -> Vec<(&'static str, String, &'static str)> {
    let mut columns: Vec<_> = ADDED_COLUMNS
        .iter()
        .map(|(table, column, decl)| (*table, (*column).to_string(), *decl))
        .collect();
    for metric in Metric::CONTENTION {
        let (sum, count) = queries::rollup_columns(metric);
        columns.push(("samples_1m", sum, "REAL"));
        columns.extend(count.map(|c| ("samples_1m", c, "INTEGER")));
    }
    columns
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
        [table, column],
        |r| r.get(0),
    )?)
}

fn add_missing_columns(conn: &Connection) -> Result<(), StoreError> {
    for (table, column, decl) in added_columns() {
        if !has_column(conn, table, &column)? {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl};"))?;
        }
    }
    Ok(())
}

/// Bytes per container of the first contention layout: series id (i64), then the values (f64).
const COLUMN_ENTRY_BYTES: usize = 8 + 8 * blob::CONTENTION;

/// The service of commit 8cfcce8 kept pressure and throttling in a column `samples.contention`
/// (per container its series id and the values as f64). They move to `samples_contention`, in
/// its layout, and the column goes: one transaction, so a crash leaves the old layout whole.
fn move_contention_out_of_samples(conn: &Connection) -> Result<(), StoreError> {
    if !has_column(conn, "samples", "contention")? {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    let mut moved = 0usize;
    {
        let mut rows =
            tx.prepare("SELECT id, contention FROM samples WHERE contention IS NOT NULL")?;
        let mut insert = tx.prepare(
            "INSERT OR REPLACE INTO samples_contention (sample, entries) VALUES (?1, ?2)",
        )?;
        let mut rows = rows.query([])?;
        while let Some(row) = rows.next()? {
            let sample: i64 = row.get(0)?;
            let old = row.get_ref(1)?.as_blob()?;
            let mut entries = Vec::with_capacity(old.len() / 2);
            for chunk in old.chunks_exact(COLUMN_ENTRY_BYTES) {
                let mut values = [f64::NAN; blob::CONTENTION];
                for (k, v) in values.iter_mut().enumerate() {
                    let at = 8 + 8 * k;
                    let mut word = [0u8; 8];
                    word.copy_from_slice(&chunk[at..at + 8]);
                    *v = f64::from_le_bytes(word);
                }
                blob::push_contention(&mut entries, &values);
            }
            insert.execute(params![sample, entries])?;
            moved += 1;
        }
    }
    tx.execute_batch("ALTER TABLE samples DROP COLUMN contention;")?;
    tx.commit()?;
    tracing::info!(
        batches = moved,
        "moved pressure and throttling from samples.contention to samples_contention"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::open_writer;
    use super::*;
    use crate::config::Synchronous;

    #[test]
    fn an_older_database_gains_the_source_reason_column() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("old.db");
        let path = path.to_str().expect("utf-8 path");
        let old = Connection::open(path).expect("open");
        old.execute_batch(
            "CREATE TABLE batches (boot INTEGER NOT NULL, sequence INTEGER NOT NULL,
                 ts INTEGER NOT NULL, node_id INTEGER NOT NULL, received_ms INTEGER NOT NULL,
                 readings INTEGER NOT NULL, source TEXT NOT NULL, PRIMARY KEY (boot, sequence))
                 WITHOUT ROWID;
             INSERT INTO batches VALUES (1, 0, 1, 1, 1, 0, 'module');",
        )
        .expect("old schema");
        drop(old);
        for _ in 0..2 {
            let conn = open_writer(path, Synchronous::Normal).expect("reopen migrates");
            let kept: (String, Option<String>) = conn
                .query_row("SELECT source, source_reason FROM batches", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .expect("old row");
            assert_eq!(kept, ("module".to_owned(), None));
        }
    }

    /// An entry of the 8cfcce8 column: series id, then the values as f64.
    fn column_entry(series_id: i64, values: [f64; blob::CONTENTION]) -> Vec<u8> {
        let mut out = series_id.to_le_bytes().to_vec();
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    #[test]
    fn contention_in_the_samples_column_moves_to_its_table() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("8cfcce8.db");
        let path = path.to_str().expect("utf-8 path");
        let first = [10.0, 0.5, f64::NAN, 2.25, 0.0, f64::NAN, 40.0, 0.375];
        let second = [f64::NAN; blob::CONTENTION];
        {
            let conn = open_writer(path, Synchronous::Normal).expect("create");
            conn.execute_batch("ALTER TABLE samples ADD COLUMN contention BLOB;")
                .expect("the 8cfcce8 column");
            let mut contended = column_entry(1, first);
            contended.extend(column_entry(2, second));
            conn.execute(
                "INSERT INTO samples (id, ts, node_id, boot, readings, contention)
                 VALUES (1, 1000, 1, 1, x'00', ?1), (2, 2000, 1, 1, x'00', NULL)",
                [contended],
            )
            .expect("old rows");
        }
        for _ in 0..2 {
            let conn = open_writer(path, Synchronous::Normal).expect("reopen migrates");
            assert!(!has_column(&conn, "samples", "contention").expect("table info"));
            let moved: Vec<(i64, Vec<u8>)> = conn
                .prepare("SELECT sample, entries FROM samples_contention ORDER BY sample")
                .expect("prepare")
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            assert_eq!(moved.len(), 1, "only the batch that carried contention");
            assert_eq!(moved[0].0, 1);
            let entries: Vec<_> = blob::contention_entries(&moved[0].1).collect();
            assert_eq!(entries.len(), 2);
            for (got, sent) in entries[0].iter().zip(first) {
                assert!(
                    got == &sent || (got.is_nan() && sent.is_nan()),
                    "{got} for {sent}"
                );
            }
            assert!(entries[1].iter().all(|v| v.is_nan()));
            let readings: i64 = conn
                .query_row("SELECT count(*) FROM samples", [], |r| r.get(0))
                .expect("count");
            assert_eq!(readings, 2, "the usage rows stay");
        }
    }
}
