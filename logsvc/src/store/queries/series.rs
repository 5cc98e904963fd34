//! The series catalogue: the label sets of the stored cgroups, and the dense id-to-position table
//! the scans use to find a series' accumulator.

use rusqlite::Connection;

use super::json::push_key;
use super::{Label, json};
use crate::store::StoreError;

/// Slack on `series.last_ms`, which the writer refreshes at most once a minute.
const LAST_SEEN_SLACK_MS: i64 = 120_000;

pub(super) struct SeriesInfo {
    pub(super) id: i64,
    pub(super) node: String,
    pub(super) namespace: String,
    pub(super) pod: String,
    pub(super) container: String,
    pub(super) workload: String,
    pub(super) kind: String,
    pub(super) name: String,
    first_ms: i64,
    last_ms: i64,
}

impl SeriesInfo {
    pub(super) fn overlaps(&self, from: Option<i64>, to: Option<i64>) -> bool {
        from.is_none_or(|f| self.last_ms + LAST_SEEN_SLACK_MS >= f)
            && to.is_none_or(|t| self.first_ms <= t)
    }

    fn label(&self, label: Label) -> &str {
        match label {
            Label::Node => &self.node,
            Label::Namespace => &self.namespace,
            Label::Pod => &self.pod,
            Label::Container => &self.container,
            Label::Workload => &self.workload,
            Label::Kind => &self.kind,
            Label::Series => &self.name,
        }
    }

    /// `,"node":"…","namespace":"…",…,"series":"…"` (the chosen labels), escaped once.
    pub(super) fn label_fields(&self, labels: &[Label]) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        for label in labels {
            push_key(&mut out, label.name());
            json::push_str(&mut out, self.label(*label));
        }
        out
    }
}

pub(super) fn load_series(conn: &Connection) -> Result<Vec<SeriesInfo>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.id, n.name, s.namespace, s.pod, s.container, s.workload, s.kind, s.name,
                s.first_ms, s.last_ms
         FROM series s JOIN nodes n ON n.id = s.node_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(SeriesInfo {
            id: r.get(0)?,
            node: r.get(1)?,
            namespace: r.get(2)?,
            pod: r.get(3)?,
            container: r.get(4)?,
            workload: r.get(5)?,
            kind: r.get(6)?,
            name: r.get(7)?,
            first_ms: r.get(8)?,
            last_ms: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Series ids to positions in a sorted series list (`u32::MAX`: not selected). Ids are dense
/// small integers (SQLite rowids), so a vector beats hashing 360,000 times per query.
pub(super) fn position_table(series: &[SeriesInfo]) -> Vec<u32> {
    let max = series.iter().map(|s| s.id).max().unwrap_or(0).max(0);
    let mut table = vec![u32::MAX; usize::try_from(max).unwrap_or(0) + 1];
    for (i, s) in series.iter().enumerate() {
        if let Ok(id) = usize::try_from(s.id) {
            table[id] = u32::try_from(i).unwrap_or(u32::MAX);
        }
    }
    table
}

pub(super) fn position(table: &[u32], series_id: i64) -> Option<usize> {
    let slot = *table.get(usize::try_from(series_id).ok()?)?;
    (slot != u32::MAX).then_some(slot as usize)
}
