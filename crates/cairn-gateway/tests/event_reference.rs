//! `docs/events.md` — the reference of the run's event kinds — is generated
//! from `RunEvent` (through its schema in the OpenAPI document), so it names
//! every kind and field the server sends, and nothing else. After a change
//! to the events, regenerate it with
//! `CAIRN_UPDATE_DOCS=1 cargo test -p cairn-gateway --test event_reference`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write;
use std::path::PathBuf;

use serde_json::Value;

/// A schema's type in words: a `$ref`'s name, a primitive, an array of
/// something, or one of several (`null` meaning optional).
fn type_of(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        return format!("`{}`", reference.rsplit('/').next().unwrap());
    }
    if let Some(choices) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let named: Vec<String> = choices.iter().filter(|c| c["type"] != "null").map(type_of).collect();
        return named.join(" or ");
    }
    match &schema["type"] {
        Value::String(kind) if kind == "array" => format!("list of {}", type_of(&schema["items"])),
        Value::String(kind) => {
            let values = schema["enum"].as_array().map(|v| {
                v.iter().map(|v| format!("`{}`", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(", ")
            });
            values.map_or_else(|| kind.clone(), |values| format!("{kind}: {values}"))
        }
        Value::Array(kinds) => {
            kinds.iter().filter_map(Value::as_str).filter(|k| *k != "null").collect::<Vec<_>>().join(" or ")
        }
        _ => "object".to_owned(),
    }
}

/// One line per field of an object schema (following `allOf`).
fn fields(schemas: &Value, schema: &Value, out: &mut String) {
    if let Some(reference) = schema["$ref"].as_str() {
        return fields(schemas, &schemas[reference.rsplit('/').next().unwrap()], out);
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        fields(schemas, part, out);
    }
    if let Some(variants) = schema["oneOf"].as_array() {
        // A tagged union inside the payload (an output's `type`).
        for variant in variants {
            let tag = variant["properties"]["type"]["enum"][0].as_str().unwrap_or("?");
            writeln!(out, "- when `type` is `{tag}`:").unwrap();
            let mut inner = String::new();
            fields(schemas, variant, &mut inner);
            for line in inner.lines().filter(|l| !l.starts_with("- `type`")) {
                writeln!(out, "  {line}").unwrap();
            }
        }
    }
    let required: Vec<&str> = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    for (name, field) in schema["properties"].as_object().into_iter().flatten() {
        let optional = if required.contains(&name.as_str()) { "" } else { ", optional" };
        let about = field["description"].as_str().map(|d| format!(": {}", d.replace('\n', " "))).unwrap_or_default();
        writeln!(out, "- `{name}` ({}{optional}){about}", type_of(field)).unwrap();
    }
}

fn reference() -> String {
    let document: Value = serde_json::from_str(&cairn_gateway::openapi_document().to_json().unwrap()).unwrap();
    let schemas = &document["components"]["schemas"];
    let mut out = String::from(
        "# Run events\n\n\
         <!-- Generated from `RunEvent` (crates/cairn-agent/src/events.rs) by\n\
         `CAIRN_UPDATE_DOCS=1 cargo test -p cairn-gateway --test event_reference`; do not edit. -->\n\n\
         Every event of a thread's log is `{\"seq\", \"run_id\", \"kind\", \"payload\", \"created_at\"}`\n\
         (see [agent.md](agent.md) for how to read them live). These are the kinds and\n\
         their payloads; the `RunEvent` schema in `openapi.json` says the same for\n\
         machines.\n",
    );
    for variant in schemas["RunEvent"]["oneOf"].as_array().unwrap() {
        let kind = variant["properties"]["kind"]["enum"][0].as_str().unwrap();
        let about = variant["description"].as_str().unwrap_or_default().replace('\n', " ");
        write!(out, "\n## `{kind}`\n\n{about}\n\n").unwrap();
        fields(schemas, &variant["properties"]["payload"], &mut out);
    }
    out
}

#[test]
fn the_event_reference_is_generated_from_the_events() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.md");
    let generated = reference();
    assert!(generated.contains("## `run.status`") && generated.contains("## `context.summarized`"), "{generated}");
    if std::env::var("CAIRN_UPDATE_DOCS").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/events.md is out of date; regenerate it with \
         CAIRN_UPDATE_DOCS=1 cargo test -p cairn-gateway --test event_reference"
    );
}
