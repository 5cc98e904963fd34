//! `/api/v1/labels/{label}`: the values of dashboard variables.

use rusqlite::Connection;

use super::json::{close_array, open_array, open_row, push_str};
use super::series::load_series;
use super::{ContainerQuery, LabelKind, matches};
use crate::store::StoreError;

/// Distinct non-empty values of one label among series with samples in `[from, to]` (any time
/// when unbounded), optionally narrowed by workload and kind. `[{"value": …}, …]`, sorted.
pub fn label_values(
    conn: &Connection,
    label: LabelKind,
    from: Option<i64>,
    to: Option<i64>,
    query: &ContainerQuery,
) -> Result<Vec<u8>, StoreError> {
    let mut values: Vec<String> = load_series(conn)?
        .into_iter()
        .filter(|s| {
            s.overlaps(from, to)
                && matches(&query.workloads, &s.workload)
                && matches(&query.kinds, &s.kind)
                && matches(&query.nodes, &s.node)
        })
        .map(|s| match label {
            LabelKind::Workloads => s.workload,
            LabelKind::Kinds => s.kind,
            LabelKind::Containers => s.name,
            LabelKind::Nodes => s.node,
            LabelKind::Namespaces => s.namespace,
            LabelKind::Pods => s.pod,
        })
        .filter(|v| !v.is_empty())
        .collect();
    values.sort_unstable();
    values.dedup();
    let mut out = open_array(64 * values.len() + 2);
    for value in values {
        open_row(&mut out);
        out.extend_from_slice(b"{\"value\":");
        push_str(&mut out, &value);
        out.push(b'}');
    }
    close_array(&mut out);
    Ok(out)
}
