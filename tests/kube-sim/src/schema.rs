//! Custom-resource validation: a CRD version's structural `openAPIV3Schema` converted to JSON Schema
//! (draft 4, whose boolean `exclusiveMinimum` matches OpenAPI 3.0) and checked with `jsonschema`,
//! plus the apiserver's pruning of unknown fields.
//!
//! Enforced: type, properties, required, items, additionalProperties, enum, minimum/maximum,
//! exclusiveMinimum/exclusiveMaximum, minLength/maxLength, pattern, minItems/maxItems, uniqueItems,
//! multipleOf, allOf/anyOf/oneOf/not, nullable, x-kubernetes-int-or-string,
//! x-kubernetes-preserve-unknown-fields (for pruning), and `x-kubernetes-validations` CEL rules
//! evaluated with the `cel` crate (`self` bound to the field's value). Not enforced: `format`,
//! transition rules (those using `oldSelf`), rules the `cel` crate cannot parse (skipped),
//! `x-kubernetes-list-type`/`list-map-keys` uniqueness, defaults. (Server-side apply reads the
//! list types through `shape.rs`.)

use serde_json::{Map, Value, json};

/// A compiled CRD version schema.
#[derive(Debug)]
pub struct CrSchema {
    structural: Value,
    validator: jsonschema::Validator,
}

/// Keywords copied as they are (their meaning is the same in OpenAPI 3.0 and JSON Schema draft 4).
const COPIED: &[&str] = &[
    "required",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "multipleOf",
    "minProperties",
    "maxProperties",
];

impl CrSchema {
    pub fn new(structural: &Value) -> Result<Self, String> {
        let mut converted = convert(structural);
        // metadata, apiVersion and kind are the apiserver's to check, not the CRD author's.
        if let Some(props) = converted
            .get_mut("properties")
            .and_then(Value::as_object_mut)
        {
            for k in ["metadata", "apiVersion", "kind"] {
                props.remove(k);
            }
        }
        // The same for a root `required` naming them (Argo's CRDs require `metadata`): every
        // object the apiserver validates has its metadata, which is checked apart from the schema
        // (and removed from the instance `validate` checks).
        if let Some(root) = converted.as_object_mut()
            && let Some(required) = root.get_mut("required").and_then(Value::as_array_mut)
        {
            required.retain(|r| !matches!(r.as_str(), Some("metadata" | "apiVersion" | "kind")));
            // JSON Schema draft 4 wants at least one name in a `required`.
            if required.is_empty() {
                root.remove("required");
            }
        }
        let validator = jsonschema::draft4::new(&converted).map_err(|e| e.to_string())?;
        Ok(CrSchema {
            structural: structural.clone(),
            validator,
        })
    }

    /// The version's `openAPIV3Schema` as the CRD gave it (what SSA and /openapi read).
    pub fn structural(&self) -> &Value {
        &self.structural
    }

    /// Drop fields the schema does not declare, as the apiserver does before storing.
    pub fn prune(&self, obj: &mut Value) {
        if let Some(map) = obj.as_object_mut() {
            let keep_root = ["apiVersion", "kind", "metadata"];
            prune_object(map, &self.structural, &keep_root);
        }
    }

    /// Validation failures as (field path, message) pairs, in the apiserver's style.
    pub fn validate(&self, obj: &Value) -> Vec<(String, String)> {
        let mut instance = obj.clone();
        if let Some(m) = instance.as_object_mut() {
            m.remove("metadata");
        }
        let mut causes = self.schema_errors(&instance);
        if causes.is_empty() {
            // Rules may read `self.metadata.name` / `generateName`, the only metadata CEL sees.
            let mut with_meta = instance.clone();
            if let Some(m) = with_meta.as_object_mut() {
                let mut md = serde_json::Map::new();
                for k in ["name", "generateName"] {
                    if let Some(v) = obj["metadata"].get(k) {
                        md.insert(k.to_string(), v.clone());
                    }
                }
                m.insert("metadata".into(), Value::Object(md));
            }
            cel_rules(&self.structural, &with_meta, "", &mut causes);
        }
        causes
    }

    fn schema_errors(&self, instance: &Value) -> Vec<(String, String)> {
        self.validator
            .iter_errors(instance)
            .map(|e| {
                let path = dotted(e.instance_path().as_str());
                match e.kind() {
                    jsonschema::error::ValidationErrorKind::Required { property } => {
                        let prop = property
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| property.to_string());
                        let field = if path.is_empty() {
                            prop
                        } else {
                            format!("{path}.{prop}")
                        };
                        (field, "Required value".to_string())
                    }
                    _ => {
                        let field = if path.is_empty() {
                            "<root>".to_string()
                        } else {
                            path
                        };
                        (field, format!("Invalid value: {}: {}", e.instance(), e))
                    }
                }
            })
            .collect()
    }
}

/// Evaluate the `x-kubernetes-validations` rules of `schema` (and below) against `value`.
fn cel_rules(schema: &Value, value: &Value, path: &str, causes: &mut Vec<(String, String)>) {
    if value.is_null() {
        return;
    }
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(src) = rule["rule"].as_str() else {
            continue;
        };
        if src.contains("oldSelf") {
            continue; // transition rules need the previous object; not enforced
        }
        let Ok(program) = cel::Program::compile(src) else {
            tracing::warn!(
                rule = src,
                "kube-sim cannot parse this CEL rule; it is not enforced"
            );
            continue;
        };
        let mut ctx = cel::Context::default();
        let Ok(this) = cel::to_value(value) else {
            continue;
        };
        ctx.add_variable_from_value("self", this);
        let field = if path.is_empty() {
            "<root>".to_string()
        } else {
            path.to_string()
        };
        let message = rule["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("failed rule: {src}"));
        match program.execute(&ctx) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(_) => causes.push((field, format!("Invalid value: \"object\": {message}"))),
            Err(e) => causes.push((
                field,
                format!("Invalid value: \"object\": rule \"{src}\" could not be evaluated: {e}"),
            )),
        }
    }
    let child = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match value {
        Value::Object(m) => {
            let props = schema["properties"].as_object();
            for (k, v) in m {
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    cel_rules(s, v, &child(k), causes);
                } else if schema["additionalProperties"].is_object() {
                    cel_rules(&schema["additionalProperties"], v, &child(k), causes);
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, v) in items.iter().enumerate() {
                cel_rules(&schema["items"], v, &format!("{path}[{i}]"), causes);
            }
        }
        _ => {}
    }
}

/// `/spec/items/0/name` -> `spec.items[0].name`
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg.chars().all(|c| c.is_ascii_digit()) && !seg.is_empty() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

fn convert(s: &Value) -> Value {
    let Some(src) = s.as_object() else {
        return json!({});
    };
    let mut out = Map::new();
    for k in COPIED {
        if let Some(v) = src.get(*k) {
            out.insert((*k).to_string(), v.clone());
        }
    }
    if src.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        out.insert("type".into(), json!(["integer", "string"]));
    } else if let Some(t) = src.get("type") {
        if src.get("nullable") == Some(&Value::Bool(true)) {
            out.insert("type".into(), json!([t, "null"]));
            if let Some(Value::Array(e)) = out.get_mut("enum") {
                e.push(Value::Null);
            }
        } else {
            out.insert("type".into(), t.clone());
        }
    }
    if let Some(props) = src.get("properties").and_then(Value::as_object) {
        let converted: Map<String, Value> =
            props.iter().map(|(k, v)| (k.clone(), convert(v))).collect();
        out.insert("properties".into(), Value::Object(converted));
    }
    if let Some(items) = src.get("items") {
        out.insert("items".into(), convert(items));
    }
    match src.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            out.insert("additionalProperties".into(), Value::Bool(*b));
        }
        Some(v @ Value::Object(_)) => {
            out.insert("additionalProperties".into(), convert(v));
        }
        _ => {}
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(list)) = src.get(k) {
            out.insert(k.into(), Value::Array(list.iter().map(convert).collect()));
        }
    }
    if let Some(n) = src.get("not") {
        out.insert("not".into(), convert(n));
    }
    Value::Object(out)
}

fn prune_object(map: &mut Map<String, Value>, schema: &Value, keep: &[&str]) {
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let embedded = schema.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        if keep.contains(&k.as_str())
            || (embedded && ["apiVersion", "kind", "metadata"].contains(&k.as_str()))
        {
            continue;
        }
        let child_schema = props.and_then(|p| p.get(&k)).or(match additional {
            Some(v @ Value::Object(_)) => Some(v),
            _ => None,
        });
        match child_schema {
            Some(cs) => {
                if let Some(v) = map.get_mut(&k) {
                    prune_value(v, cs)
                }
            }
            None if preserve || additional == Some(&Value::Bool(true)) => {}
            None => {
                map.remove(&k);
            }
        }
    }
}

fn prune_value(v: &mut Value, schema: &Value) {
    match v {
        Value::Object(m) => prune_object(m, schema, &[]),
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for i in items {
                    prune_value(i, is);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> CrSchema {
        CrSchema::new(&json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["model"],
                    "properties": {
                        "model": {"type": "string", "enum": ["mlp", "cnn"]},
                        "epochs": {"type": "integer", "minimum": 1, "maximum": 100},
                        "rate": {"type": "number", "minimum": 0, "exclusiveMinimum": true},
                        "name": {"type": "string", "pattern": "^[a-z]+$"},
                        "port": {"x-kubernetes-int-or-string": true},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }
                },
                "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
            }
        }))
        .unwrap()
    }

    /// Argo's CRDs list `metadata` (and `spec`) as required at the root, as a real apiserver
    /// accepts: every object has metadata. A missing `spec` is still refused.
    #[test]
    fn a_root_that_requires_metadata_accepts_every_object_with_its_required_spec() {
        let s = CrSchema::new(&json!({
            "type": "object",
            "required": ["metadata", "spec"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        }))
        .unwrap();
        let meta = json!({"name": "wf"});
        let ok = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": meta, "spec": {"entrypoint": "main"}});
        assert_eq!(s.validate(&ok), vec![]);
        let errs = s.validate(
            &json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": meta}),
        );
        assert!(errs.iter().any(|(f, _)| f == "spec"), "{errs:?}");
        // Argo's WorkflowTaskResult requires only `metadata`: nothing is left to require.
        let only_metadata = CrSchema::new(&json!({
            "type": "object",
            "required": ["metadata"],
            "properties": {"metadata": {"type": "object"}, "phase": {"type": "string"}}
        }))
        .unwrap();
        assert_eq!(
            only_metadata.validate(&json!({"metadata": meta, "phase": "Succeeded"})),
            vec![]
        );
    }

    #[test]
    fn table_of_invalid_specs_names_the_field() {
        let s = schema();
        let cases = [
            (json!({"epochs": 1}), "spec.model"),
            (json!({"model": "rnn"}), "spec.model"),
            (json!({"model": "mlp", "epochs": 0}), "spec.epochs"),
            (json!({"model": "mlp", "epochs": 101}), "spec.epochs"),
            (json!({"model": "mlp", "epochs": "3"}), "spec.epochs"),
            (json!({"model": "mlp", "rate": 0}), "spec.rate"),
            (json!({"model": "mlp", "name": "Bad"}), "spec.name"),
            (json!({"model": "mlp", "port": 1.5}), "spec.port"),
        ];
        for (spec, field) in cases {
            let errs = s.validate(
                &json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": 3}, "spec": spec}),
            );
            assert!(
                errs.iter().any(|(f, _)| f == field),
                "{spec}: expected an error on {field}, got {errs:?}"
            );
        }
    }

    #[test]
    fn valid_spec_passes_and_int_or_string_takes_both() {
        let s = schema();
        for port in [json!(80), json!("http")] {
            let errs = s.validate(
                &json!({"spec": {"model": "cnn", "epochs": 5, "rate": 0.1, "port": port}}),
            );
            assert!(errs.is_empty(), "{errs:?}");
        }
    }

    #[test]
    fn cel_rules_are_enforced_with_self_bound_to_the_field() {
        let s = CrSchema::new(&json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"},
                    {"rule": "self.minReplicas == oldSelf.minReplicas"}
                ],
                "properties": {
                    "minReplicas": {"type": "integer"},
                    "maxReplicas": {"type": "integer"},
                    "name": {"type": "string", "x-kubernetes-validations": [{"rule": "size(self) <= 5"}]}
                }
            }},
            "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('ok')", "message": "name must start with ok"}]
        }))
        .unwrap();
        let meta = json!({"name": "ok-1"});
        let good =
            json!({"metadata": meta, "spec": {"minReplicas": 1, "maxReplicas": 2, "name": "ab"}});
        assert!(s.validate(&good).is_empty(), "{:?}", s.validate(&good));
        let bad_name = s.validate(
            &json!({"metadata": {"name": "x"}, "spec": {"minReplicas": 1, "maxReplicas": 2}}),
        );
        assert_eq!(
            bad_name,
            vec![(
                "<root>".to_string(),
                "Invalid value: \"object\": name must start with ok".to_string()
            )]
        );
        let errs = s.validate(&json!({"metadata": meta, "spec": {"minReplicas": 3, "maxReplicas": 2, "name": "toolong"}}));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(
            errs[0],
            (
                "spec".to_string(),
                "Invalid value: \"object\": minReplicas must not exceed maxReplicas".to_string()
            )
        );
        assert_eq!(errs[1].0, "spec.name");
        assert!(
            errs[1].1.contains("failed rule: size(self) <= 5"),
            "{errs:?}"
        );
    }

    #[test]
    fn pruning_drops_undeclared_fields_but_keeps_preserved_ones() {
        let s = schema();
        let mut obj = json!({
            "apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"model": "mlp", "bogus": 1, "extra": {"anything": {"goes": true}}},
            "junk": true
        });
        s.prune(&mut obj);
        assert_eq!(obj["spec"].get("bogus"), None);
        assert_eq!(obj.get("junk"), None);
        assert_eq!(obj["spec"]["extra"]["anything"]["goes"], json!(true));
        assert_eq!(obj["metadata"]["name"], json!("a"));
    }
}
