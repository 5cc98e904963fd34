//! `/api/v1/events/oom-kills` and `/api/v1/query/oom-kills`: OOM kills as events (Grafana's table
//! and annotations) and counted per Workload, kind and slot.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use super::json::{close_array, open_array, open_row, push_i64, push_key, push_opt_i64, push_str};
use super::{EventQuery, matches};
use crate::store::StoreError;

/// The text columns of an event row, in `SELECT` order after `ts`, `node`.
const TEXT_COLUMNS: [&str; 7] = [
    "namespace",
    "pod",
    "container",
    "workload",
    "kind",
    "observed",
    "cgroup_path",
];

/// Visits the kills in `[from, to]` that pass the filters, in time order.
fn scan<F>(conn: &Connection, query: &EventQuery, mut visit: F) -> Result<(), StoreError>
where
    F: FnMut(&rusqlite::Row<'_>) -> Result<(), StoreError>,
{
    let mut stmt = conn.prepare_cached(
        "SELECT k.ts, n.name, k.namespace, k.pod, k.container, k.workload, k.kind, k.observed,
                k.cgroup_path, k.slot, k.count
         FROM oom_kills k JOIN nodes n ON n.id = k.node_id
         WHERE k.ts >= ?1 AND k.ts <= ?2 ORDER BY k.ts, k.boot, k.sequence, k.entry",
    )?;
    let mut rows = stmt.query(params![query.from, query.to])?;
    while let Some(row) = rows.next()? {
        let text = |k: usize| row.get_ref(k).and_then(|v| Ok(v.as_str()?));
        if matches(&query.nodes, text(1)?)
            && matches(&query.namespaces, text(2)?)
            && matches(&query.workloads, text(5)?)
            && matches(&query.kinds, text(6)?)
        {
            visit(row)?;
        }
    }
    Ok(())
}

/// One row per kill event (a cgroup's kills in one batch): `time`, `node`, the pod's labels,
/// `slot` (null for other cgroups), `count`, `observed`, `cgroup_path`. Sorted by time.
pub fn oom_kills(conn: &Connection, query: &EventQuery) -> Result<Vec<u8>, StoreError> {
    let mut out = open_array(1 << 10);
    scan(conn, query, |row| {
        open_row(&mut out);
        out.extend_from_slice(b"{\"time\":");
        push_i64(&mut out, row.get(0)?);
        push_key(&mut out, "node");
        push_str(&mut out, row.get_ref(1)?.as_str()?);
        for (k, name) in TEXT_COLUMNS.iter().enumerate() {
            push_key(&mut out, name);
            push_str(&mut out, row.get_ref(2 + k)?.as_str()?);
        }
        push_key(&mut out, "slot");
        push_opt_i64(&mut out, row.get(9)?);
        push_key(&mut out, "count");
        push_i64(&mut out, row.get(10)?);
        out.push(b'}');
        Ok(())
    })?;
    close_array(&mut out);
    Ok(out)
}

/// Kills in the window per Workload, kind and slot (`kills`), sorted by them; a slot whose pods
/// keep being killed shows even though each victim was replaced by a pod of another name.
pub fn oom_kill_counts(conn: &Connection, query: &EventQuery) -> Result<Vec<u8>, StoreError> {
    let mut counts: BTreeMap<(String, String, Option<i64>), i64> = BTreeMap::new();
    scan(conn, query, |row| {
        let key = (row.get(5)?, row.get(6)?, row.get(9)?);
        *counts.entry(key).or_default() += row.get::<_, i64>(10)?;
        Ok(())
    })?;
    let mut out = open_array(64 * counts.len() + 2);
    for ((workload, kind, slot), kills) in counts {
        open_row(&mut out);
        out.extend_from_slice(b"{\"workload\":");
        push_str(&mut out, &workload);
        push_key(&mut out, "kind");
        push_str(&mut out, &kind);
        push_key(&mut out, "slot");
        push_opt_i64(&mut out, slot);
        push_key(&mut out, "kills");
        push_i64(&mut out, kills);
        out.push(b'}');
    }
    close_array(&mut out);
    Ok(out)
}
