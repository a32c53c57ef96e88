//! The part of a live object that is wharf's to compare: server-side apply merges keyed lists
//! (containers, env, volumes, ports…) element by element, so a service mesh's injected sidecar or
//! a user's extra env var sits in the same list as wharf's elements without being wharf's. The
//! live object's `managedFields` say which elements wharf applied (`k:{"name":"web"}`,
//! `v:"finalizer"`); the others are dropped before comparing or diffing, so they are neither drift
//! nor something a re-apply would fight over.

use serde_json::{Map, Value};

use super::FIELD_MANAGER;

/// `live` without the list elements another field manager added. Unchanged when wharf has no
/// `Apply` entry in `managedFields` (an object wharf never applied, or a server that keeps none).
pub fn wharf_view(live: &Value) -> Value {
    let entry = live["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| {
            e["manager"] == FIELD_MANAGER
                && e["operation"] == "Apply"
                && e.get("subresource").is_none()
        });
    match entry {
        Some(e) => keep_owned(live, &e["fieldsV1"]),
        None => live.clone(),
    }
}

fn keep_owned(v: &Value, node: &Value) -> Value {
    let Some(children) = node.as_object() else {
        return v.clone();
    };
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, c)| {
                    let c = match children.get(&format!("f:{k}")) {
                        Some(n) => keep_owned(c, n),
                        None => c.clone(),
                    };
                    (k.clone(), c)
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => {
            let elements: Vec<(Element, &Value)> = children
                .iter()
                .filter_map(|(k, n)| Element::parse(k).map(|e| (e, n)))
                .collect();
            if elements.is_empty() {
                // An atomic list: wharf owns it whole.
                return v.clone();
            }
            Value::Array(
                items
                    .iter()
                    .filter_map(|item| {
                        elements
                            .iter()
                            .find(|(e, _)| e.matches(item))
                            .map(|(_, n)| keep_owned(item, n))
                    })
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

/// A list element as fieldsV1 names it: by its key fields or by its value.
enum Element {
    Key(Map<String, Value>),
    Value(Value),
}

impl Element {
    fn parse(name: &str) -> Option<Element> {
        if let Some(k) = name.strip_prefix("k:") {
            return serde_json::from_str(k).ok().map(Element::Key);
        }
        name.strip_prefix("v:")
            .and_then(|v| serde_json::from_str(v).ok())
            .map(Element::Value)
    }

    fn matches(&self, item: &Value) -> bool {
        match self {
            // A key field the stored element lacks is one the server fills from its schema
            // default (a port's `protocol: TCP`); the others must be equal.
            Element::Key(keys) => {
                keys.iter().any(|(k, _)| item.get(k).is_some())
                    && keys
                        .iter()
                        .all(|(k, want)| item.get(k).is_none_or(|v| v == want))
            }
            Element::Value(want) => item == want,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn another_managers_elements_are_not_wharfs() {
        let live = json!({
            "metadata": {"name": "web", "managedFields": [
                {"manager": "wharf", "operation": "Apply", "fieldsV1": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}, "f:env": {
                        "k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}}}}}}},
                {"manager": "mesh", "operation": "Apply", "fieldsV1": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"proxy\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}]},
            "spec": {"containers": [
                {"name": "web", "image": "web:1", "env": [{"name": "A", "value": "1"}, {"name": "MESH", "value": "on"}]},
                {"name": "proxy", "image": "envoy"}]}});
        let view = wharf_view(&live);
        assert_eq!(
            view["spec"]["containers"],
            json!([{"name": "web", "image": "web:1", "env": [{"name": "A", "value": "1"}]}])
        );
    }

    #[test]
    fn without_a_wharf_entry_everything_counts() {
        let live = json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(wharf_view(&live), live);
    }
}
