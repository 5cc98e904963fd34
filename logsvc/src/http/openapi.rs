//! The OpenAPI 3.1 document, generated from the route table ([`super::routes`]), the query
//! vocabulary (metric and label columns) and the reading batch types of `stressmix-api` (their JSON
//! Schemas, limits included, come from `schemars`). `logsvc/openapi.json` is this output, committed;
//! `make test-openapi` fails when it is stale and `make openapi` rewrites it.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use stressmix_api::readings::ReadingBatch;

use super::error::ApiError;
use super::query::{ParamDoc, ParamSchema};
use crate::store::{Label, Metric};

/// What an endpoint documents besides its method and path.
pub struct Operation {
    summary: &'static str,
    description: Option<&'static str>,
    params: Vec<&'static ParamDoc>,
    /// Component name of the JSON request body.
    body: Option<&'static str>,
    bearer: bool,
    answer: Answer,
    errors: Vec<(u16, &'static str)>,
}

/// The 200 answer.
pub struct Answer {
    description: &'static str,
    media_type: &'static str,
    schema: Value,
}

fn component_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

impl Answer {
    /// A JSON array of rows of a component schema.
    pub fn rows(description: &'static str, row: &str) -> Answer {
        Answer {
            description,
            media_type: "application/json",
            schema: json!({ "type": "array", "items": component_ref(row) }),
        }
    }

    pub fn component(description: &'static str, name: &str) -> Answer {
        Answer {
            description,
            media_type: "application/json",
            schema: component_ref(name),
        }
    }

    pub fn object(description: &'static str) -> Answer {
        Answer {
            description,
            media_type: "application/json",
            schema: json!({ "type": "object" }),
        }
    }

    pub fn openmetrics(description: &'static str) -> Answer {
        Answer {
            description,
            media_type: "application/openmetrics-text",
            schema: json!({ "type": "string" }),
        }
    }
}

impl Operation {
    pub fn new(summary: &'static str, answer: Answer) -> Operation {
        Operation {
            summary,
            description: None,
            params: Vec::new(),
            body: None,
            bearer: false,
            answer,
            errors: Vec::new(),
        }
    }

    pub fn describe(mut self, description: &'static str) -> Operation {
        self.description = Some(description);
        self
    }

    pub fn params(mut self, params: &'static [ParamDoc]) -> Operation {
        self.params.extend(params);
        self
    }

    pub fn body(mut self, component: &'static str) -> Operation {
        self.body = Some(component);
        self
    }

    /// Accepts (and, when the service has a token, requires) `Authorization: Bearer`.
    pub fn bearer(mut self) -> Operation {
        self.bearer = true;
        self
    }

    /// Error answers (JSON [`ApiError`] bodies) by status.
    pub fn errors(mut self, errors: &[(u16, &'static str)]) -> Operation {
        self.errors.extend_from_slice(errors);
        self
    }

    fn to_json(&self) -> Value {
        let mut op = Map::new();
        op.insert("summary".into(), json!(self.summary));
        if let Some(description) = self.description {
            op.insert("description".into(), json!(description));
        }
        if self.bearer {
            op.insert("security".into(), json!([{}, { "bearer": [] }]));
        }
        if !self.params.is_empty() {
            op.insert(
                "parameters".into(),
                self.params.iter().map(|p| param_json(p)).collect(),
            );
        }
        if let Some(body) = self.body {
            op.insert(
                "requestBody".into(),
                json!({ "required": true, "content": { "application/json": { "schema": component_ref(body) } } }),
            );
        }
        let mut responses = Map::new();
        responses.insert(
            "200".into(),
            json!({
                "description": self.answer.description,
                "content": { self.answer.media_type: { "schema": self.answer.schema } },
            }),
        );
        for (status, description) in &self.errors {
            responses.insert(
                status.to_string(),
                json!({
                    "description": description,
                    "content": { "application/json": { "schema": component_ref("Error") } },
                }),
            );
        }
        op.insert("responses".into(), Value::Object(responses));
        Value::Object(op)
    }
}

fn param_json(p: &ParamDoc) -> Value {
    let schema = match &p.schema {
        ParamSchema::Integer => json!({ "type": "integer" }),
        ParamSchema::List => json!({ "type": "string" }),
        ParamSchema::OneOf(names) => json!({ "type": "string", "enum": names() }),
    };
    json!({
        "name": p.name,
        "in": p.location,
        "required": p.location == "path",
        "description": p.full_description(),
        "schema": schema,
    })
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required })
}

fn typed(kind: &str) -> Value {
    json!({ "type": kind })
}

/// Rows of container samples: their columns are the query vocabulary.
fn container_row() -> Value {
    let mut properties = Map::new();
    properties.insert(
        "time".into(),
        json!({ "type": "integer", "description": "Bucket start, epoch ms" }),
    );
    for label in Label::ALL {
        properties.insert(
            label.name().into(),
            json!({ "type": "string", "description": label.description() }),
        );
    }
    for metric in Metric::ALL {
        let kind = if metric.is_integer() {
            "integer"
        } else {
            "number"
        };
        properties.insert(
            metric.name().into(),
            json!({ "type": kind, "description": metric.description() }),
        );
    }
    properties.insert(
        "value".into(),
        json!({ "type": "number", "description": "Only with `metric`; a series has no row in a bucket where none of its readings had that (pressure or throttling) metric" }),
    );
    json!({
        "type": "object",
        "description": "Averages over the bucket. Without `metric`, the usage metrics (cpu_percent ... io_ops_per_sec); with `metric=NAME` (any metric, pressure and throttling included) one `value` column instead; `labels` chooses the label columns. The snapshot has every metric.",
        "properties": properties,
        "required": ["time"],
    })
}

/// The schemas every answer and the request body refer to.
fn components() -> Map<String, Value> {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    // Registers the batch and the types it holds among the definitions (a struct is referenced,
    // never inlined); the `$ref` it returns is not needed.
    let _ = generator.subschema_for::<ReadingBatch>();
    let mut schemas = generator.take_definitions(true);
    let int = || typed("integer");
    let num = || typed("number");
    let text = || typed("string");
    schemas.insert(
        "Error".into(),
        object(
            json!({
                "error": { "type": "string", "description": "What went wrong, for people" },
                "code": { "type": "string", "enum": ApiError::CODES, "description": "Stable, for programs" },
                "field": { "type": "string", "description": "Offending field path or query parameter" },
            }),
            &["error", "code"],
        ),
    );
    schemas.insert(
        "Status".into(),
        object(json!({ "status": text() }), &["status"]),
    );
    schemas.insert(
        "IngestAnswer".into(),
        object(
            json!({
                "status": { "type": "string", "enum": ["stored", "duplicate"] },
                "boot_id": text(), "sequence": int(), "readings": int(),
            }),
            &["status", "boot_id", "sequence", "readings"],
        ),
    );
    schemas.insert("ContainerRow".into(), container_row());
    let node_columns = [
        "cpus",
        "memory_total_bytes",
        "memory_free_bytes",
        "memory_available_bytes",
        "memory_used_bytes",
    ];
    let mut node = Map::new();
    node.insert("time".into(), int());
    node.insert("node".into(), text());
    node.insert("cpu_percent".into(), num());
    for column in node_columns {
        node.insert(column.into(), int());
    }
    node.insert("memory_used_percent".into(), num());
    let required: Vec<&str> = node.keys().map(String::as_str).collect();
    let node_row = object(Value::Object(node.clone()), &required);
    schemas.insert("NodeRow".into(), node_row);
    schemas.insert(
        "PodsPerKindRow".into(),
        object(
            json!({ "time": int(), "kind": text(), "pods": int() }),
            &["time", "kind", "pods"],
        ),
    );
    schemas.insert(
        "LabelValue".into(),
        object(json!({ "value": text() }), &["value"]),
    );
    schemas.insert(
        "LegacyRow".into(),
        object(
            json!({
                "time": { "type": "string", "format": "date-time" },
                "CPU": num(), "Mem": num(), "IO": int(), "Disc": int(),
            }),
            &["time", "CPU", "Mem", "IO", "Disc"],
        ),
    );
    schemas
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in super::routes() {
        let entry = paths
            .entry(route.path)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(methods) = entry {
            methods.insert(route.method.into(), route.doc.to_json());
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "stressmix log service",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Durable reading batches from the stressmix node agents, and the JSON queries the Grafana Infinity datasource asks. All errors are JSON `{\"error\": ..., \"code\": ..., \"field\": ...}`.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": components(),
        },
    })
}

/// The document as committed: pretty-printed, one trailing newline.
pub fn render() -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(&document()).unwrap_or_default();
    text.push(b'\n');
    text
}
