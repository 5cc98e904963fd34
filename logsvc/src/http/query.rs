//! Query endpoints for Grafana (Infinity datasource, backend parser) and the legacy `/data`.
//! Parameters are parsed here; errors are 400 JSON naming the parameter.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, json_response};
use crate::store::{
    self, ContainerQuery, EventQuery, Label, LabelKind, Metric, RangeQuery, StoreError,
};
use crate::timefmt::now_ms;

/// At most this many buckets per series: the step grows to fit.
pub const MAX_POINTS: i64 = 2000;
/// Default window when `from` is absent.
const DEFAULT_WINDOW_MS: i64 = 3_600_000;
/// Longest window accepted (400 days).
const MAX_WINDOW_MS: i64 = 400 * 86_400_000;
/// `/data` row limit: default and ceiling.
const LEGACY_DEFAULT_LIMIT: usize = 10_000;
const LEGACY_MAX_LIMIT: usize = 1_000_000;

/// A query or path parameter, as the OpenAPI document describes it.
#[derive(Clone, Copy)]
pub struct ParamDoc {
    pub name: &'static str,
    /// `query` or `path`.
    pub location: &'static str,
    pub description: &'static str,
    pub schema: ParamSchema,
}

#[derive(Clone, Copy)]
pub enum ParamSchema {
    Integer,
    /// A repeatable, comma-separated filter (`Params::list`).
    List,
    /// One of these names.
    OneOf(fn() -> Vec<&'static str>),
}

const fn query_param(
    name: &'static str,
    description: &'static str,
    schema: ParamSchema,
) -> ParamDoc {
    ParamDoc {
        name,
        location: "query",
        description,
        schema,
    }
}

/// `from`, `to`, `step_ms` of every time series endpoint.
pub const RANGE_PARAMS: [ParamDoc; 3] = [
    query_param(
        "from",
        "Start of the window, epoch milliseconds (default: `to` minus 1 hour). Grafana: `${__from}`.",
        ParamSchema::Integer,
    ),
    query_param(
        "to",
        "End of the window, epoch milliseconds, inclusive (default: now). Grafana: `${__to}`.",
        ParamSchema::Integer,
    ),
    query_param(
        "step_ms",
        "Bucket width in milliseconds (default: window/1000, at least 1000). Raised so that a series has at most 2000 buckets. Buckets start at multiples of the step; `time` is the bucket start. Grafana: `${__interval_ms}`.",
        ParamSchema::Integer,
    ),
];

/// Bounds of the label lists: a series counts when it has samples in them.
pub const SEEN_PARAMS: [ParamDoc; 2] = [
    query_param(
        "from",
        "Only series with samples at or after this instant (epoch ms); default: any time.",
        ParamSchema::Integer,
    ),
    query_param(
        "to",
        "Only series with samples at or before this instant (epoch ms); default: any time.",
        ParamSchema::Integer,
    ),
];

pub const WORKLOAD_PARAM: ParamDoc =
    query_param("workload", "Only these Workloads.", ParamSchema::List);
pub const KIND_PARAM: ParamDoc = query_param(
    "kind",
    "Only these stress kinds (`cpu`, `memory`, `io`, `disk`, `system`, ...).",
    ParamSchema::List,
);
pub const CONTAINER_PARAM: ParamDoc = query_param(
    "container",
    "Only these series names (`namespace/pod/container`, or the cgroup path of system cgroups).",
    ParamSchema::List,
);
pub const NAMESPACE_PARAM: ParamDoc =
    query_param("namespace", "Only these namespaces.", ParamSchema::List);
/// The parameters of the event endpoints: a window (no buckets) and filters.
pub const EVENT_PARAMS: [ParamDoc; 6] = [
    RANGE_PARAMS[0],
    RANGE_PARAMS[1],
    NAMESPACE_PARAM,
    WORKLOAD_PARAM,
    KIND_PARAM,
    NODE_PARAM,
];
pub const NODE_PARAM: ParamDoc = query_param("node", "Only these nodes.", ParamSchema::List);
pub const METRIC_PARAM: ParamDoc = query_param(
    "metric",
    "Return only this metric, as column `value`.",
    ParamSchema::OneOf(|| Metric::ALL.map(Metric::name).to_vec()),
);
pub const LABELS_PARAM: ParamDoc = query_param(
    "labels",
    "Comma-separated label columns to include in each row (default: all of them).",
    ParamSchema::OneOf(|| Label::ALL.map(Label::name).to_vec()),
);
pub const LABEL_PATH_PARAM: ParamDoc = ParamDoc {
    name: "label",
    location: "path",
    description: "Which list",
    schema: ParamSchema::OneOf(|| LabelKind::ALL.map(LabelKind::name).to_vec()),
};
pub const MAX_AGE_PARAM: ParamDoc = query_param(
    "max_age_ms",
    "Leave out nodes whose newest batch is this much older than the newest of all (default 300000).",
    ParamSchema::Integer,
);
pub const LEGACY_PARAMS: [ParamDoc; 3] = [
    query_param(
        "from",
        "Start, epoch ms (default: `to` minus 1 hour).",
        ParamSchema::Integer,
    ),
    query_param("to", "End, epoch ms (default: now).", ParamSchema::Integer),
    query_param(
        "limit",
        "At most this many rows, the newest (default 10000, at most 1000000).",
        ParamSchema::Integer,
    ),
];

impl ParamDoc {
    /// The description, with how list filters are spelled when the parameter is one.
    pub fn full_description(&self) -> String {
        match self.schema {
            ParamSchema::List => format!(
                "{} Comma-separated and/or repeated; empty, `All`, `$__all`, `*` mean no filter.",
                self.description
            ),
            _ => self.description.to_string(),
        }
    }
}

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The query string as name/value pairs.
struct Params(Vec<(String, String)>);

impl Params {
    fn from(query: Pairs) -> Result<Params, ApiError> {
        match query {
            Ok(Query(pairs)) => Ok(Params(pairs)),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("bad query string: {e}"),
            )),
        }
    }

    fn last(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.last(name) {
            None => Ok(None),
            Some(text) => text.trim().parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(name, format!("expected an integer, got {text:?}"))
            }),
        }
    }

    /// Values of a repeatable, comma-separated filter. Grafana's "All" spellings mean no filter.
    fn list(&self, name: &str) -> Vec<String> {
        let mut values = Vec::new();
        for (_, v) in self.0.iter().filter(|(k, _)| k == name) {
            for part in v.split(',') {
                let part = part.trim().trim_matches(|c| c == '{' || c == '}');
                if part.is_empty() || matches!(part, "$__all" | "All" | "*" | ".*") {
                    return Vec::new();
                }
                values.push(part.to_string());
            }
        }
        values
    }

    /// `from`/`to` in epoch ms (defaults: the last hour ending now), at most 400 days apart.
    fn window(&self) -> Result<(i64, i64), ApiError> {
        let to = self.int("to")?.unwrap_or_else(now_ms);
        let from = self
            .int("from")?
            .unwrap_or(to.saturating_sub(DEFAULT_WINDOW_MS));
        if from > to {
            return Err(ApiError::bad_request("from", "must not be after `to`"));
        }
        if to.saturating_sub(from) > MAX_WINDOW_MS {
            return Err(ApiError::bad_request(
                "from",
                "the window is longer than 400 days",
            ));
        }
        Ok((from, to))
    }

    /// The window and the bucket width.
    fn range(&self) -> Result<RangeQuery, ApiError> {
        let (from, to) = self.window()?;
        let window = to - from;
        let requested = match self.int("step_ms")? {
            Some(step) if step <= 0 => {
                return Err(ApiError::bad_request("step_ms", "must be positive"));
            }
            Some(step) => step,
            None => (window / 1000).max(1000),
        };
        // Never more than MAX_POINTS buckets per series.
        let step = requested.max((window + MAX_POINTS - 1) / MAX_POINTS).max(1);
        Ok(RangeQuery { from, to, step })
    }

    fn events(&self) -> Result<EventQuery, ApiError> {
        let (from, to) = self.window()?;
        Ok(EventQuery {
            from,
            to,
            namespaces: self.list("namespace"),
            workloads: self.list("workload"),
            kinds: self.list("kind"),
            nodes: self.list("node"),
        })
    }

    fn filters(&self) -> Result<ContainerQuery, ApiError> {
        let metric = match self.last("metric") {
            None => None,
            Some(name) => Some(Metric::parse(name).ok_or_else(|| {
                ApiError::bad_request(
                    "metric",
                    format!(
                        "unknown metric {name:?}; one of {}",
                        Metric::ALL.map(Metric::name).join(", ")
                    ),
                )
            })?),
        };
        let labels = match self.last("labels") {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(|name| {
                        Label::parse(name.trim()).ok_or_else(|| {
                            ApiError::bad_request(
                                "labels",
                                format!(
                                    "unknown label {name:?}; any of {}",
                                    Label::ALL.map(Label::name).join(", ")
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(ContainerQuery {
            labels,
            workloads: self.list("workload"),
            kinds: self.list("kind"),
            containers: self.list("container"),
            nodes: self.list("node"),
            metric,
        })
    }
}

fn answer(result: Result<Vec<u8>, StoreError>) -> Response {
    match result {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => ApiError::from_store(&e, "answering a query").into_response(),
    }
}

/// The time-series endpoints share one shape: parse the parameters (a bad one is a 400), then run one
/// store query on a reader connection against the current rollup watermark.
async fn time_series<P, F>(state: &AppState, parsed: Result<P, ApiError>, query: F) -> Response
where
    P: Send + 'static,
    F: FnOnce(&rusqlite::Connection, P, i64) -> Result<Vec<u8>, StoreError> + Send + 'static,
{
    let params = match parsed {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let watermark = state.db.rollup_watermark();
    answer(
        state
            .db
            .read(move |conn| query(conn, params, watermark))
            .await,
    )
}

pub async fn containers(State(state): State<AppState>, query: Pairs) -> Response {
    let parsed = Params::from(query).and_then(|p| Ok((p.range()?, p.filters()?)));
    time_series(&state, parsed, |conn, (range, filters), watermark| {
        store::container_samples(conn, &range, &filters, watermark)
    })
    .await
}

pub async fn nodes(State(state): State<AppState>, query: Pairs) -> Response {
    let parsed = Params::from(query).and_then(|p| Ok((p.range()?, p.list("node"))));
    time_series(&state, parsed, |conn, (range, nodes), watermark| {
        store::node_samples(conn, &range, &nodes, watermark)
    })
    .await
}

pub async fn pods_per_kind(State(state): State<AppState>, query: Pairs) -> Response {
    let parsed = Params::from(query).and_then(|p| p.range());
    time_series(&state, parsed, |conn, range, watermark| {
        store::pods_per_kind(conn, &range, watermark)
    })
    .await
}

pub async fn labels(
    State(state): State<AppState>,
    Path(label): Path<String>,
    query: Pairs,
) -> Response {
    let Some(kind) = LabelKind::parse(&label) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "unknown label list {label:?}; one of workloads, kinds, containers, nodes, namespaces, pods"
            ),
        )
        .into_response();
    };
    let parsed = Params::from(query).and_then(|p| Ok((p.int("from")?, p.int("to")?, p.filters()?)));
    let (from, to, filters) = match parsed {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .db
            .read(move |conn| store::label_values(conn, kind, from, to, &filters))
            .await,
    )
}

pub async fn snapshot(State(state): State<AppState>, query: Pairs) -> Response {
    let parsed = Params::from(query).and_then(|p| {
        let max_age = p.int("max_age_ms")?.unwrap_or(300_000);
        if max_age < 0 {
            return Err(ApiError::bad_request("max_age_ms", "must not be negative"));
        }
        Ok((p.list("node"), max_age))
    });
    let (nodes, max_age) = match parsed {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .db
            .read(move |conn| store::snapshot(conn, &nodes, max_age))
            .await,
    )
}

pub async fn legacy_data(State(state): State<AppState>, query: Pairs) -> Response {
    let parsed = Params::from(query).and_then(|p| {
        let to = p.int("to")?.unwrap_or_else(now_ms);
        let from = p
            .int("from")?
            .unwrap_or(to.saturating_sub(DEFAULT_WINDOW_MS));
        if from > to {
            return Err(ApiError::bad_request("from", "must not be after `to`"));
        }
        let limit = match p.int("limit")? {
            None => LEGACY_DEFAULT_LIMIT,
            Some(n) if n > 0 => usize::try_from(n)
                .unwrap_or(LEGACY_MAX_LIMIT)
                .min(LEGACY_MAX_LIMIT),
            Some(_) => return Err(ApiError::bad_request("limit", "must be positive")),
        };
        Ok((from, to, limit))
    });
    let (from, to, limit) = match parsed {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    answer(
        state
            .db
            .read(move |conn| store::legacy_data(conn, from, to, limit))
            .await,
    )
}

pub async fn oom_kills(State(state): State<AppState>, query: Pairs) -> Response {
    events(&state, query, store::oom_kills).await
}

pub async fn oom_kill_counts(State(state): State<AppState>, query: Pairs) -> Response {
    events(&state, query, store::oom_kill_counts).await
}

async fn events(
    state: &AppState,
    query: Pairs,
    answer_with: fn(&rusqlite::Connection, &EventQuery) -> Result<Vec<u8>, StoreError>,
) -> Response {
    let filters = match Params::from(query).and_then(|p| p.events()) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    answer(state.db.read(move |conn| answer_with(conn, &filters)).await)
}
