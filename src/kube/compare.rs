//! Deciding whether an apply would change anything: the desired object is compared against the
//! live one on the desired fields only, so fields the server sets (status, uid, defaults,
//! managedFields) never count as a difference. A no-change deploy therefore writes nothing.

use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// True when every field of `desired` is present in `live` with the same value. Lists must have
/// the same length, element by element (order matters to the apiserver for most lists).
pub fn contains(live: &Value, desired: &Value) -> bool {
    contains_at(live, desired, false)
}

/// `quantities`: inside `resources` (requests, limits) the apiserver stores quantities in
/// canonical form (`0.5` becomes `500m`, `1000m` becomes `1`), so they compare by value there.
fn contains_at(live: &Value, desired: &Value, quantities: bool) -> bool {
    match (live, desired) {
        (_, Value::Null) => true,
        (Value::Object(l), Value::Object(d)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => contains_at(lv, dv, quantities || k == "resources"),
            None => is_empty(dv),
        }),
        (Value::Array(l), Value::Array(d)) => {
            l.len() == d.len()
                && l.iter()
                    .zip(d)
                    .all(|(lv, dv)| contains_at(lv, dv, quantities))
        }
        (Value::Number(l), Value::Number(d)) => l.as_f64() == d.as_f64(),
        // The apiserver stores `port: "80"`-like int-or-string values as given, but charms often
        // write numbers as strings and vice versa: compare their text.
        (Value::String(l), Value::Number(d)) | (Value::Number(d), Value::String(l)) => {
            *l == d.to_string() || (quantities && quantity(l) == d.as_f64())
        }
        (Value::String(l), Value::String(d)) if quantities && l != d => {
            matches!((quantity(l), quantity(d)), (Some(a), Some(b)) if (a - b).abs() <= 1e-9 * a.abs().max(b.abs()))
        }
        (l, d) => l == d,
    }
}

/// The value of a Kubernetes quantity (`500m`, `1.5Gi`, `2e3`, `10`), or None if it is not one.
pub fn quantity(text: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let text = text.trim();
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = text.strip_suffix(suffix)
            && let Ok(n) = number.parse::<f64>()
            && !number.is_empty()
            && !number.ends_with(['e', 'E'])
        {
            return Some(n * factor);
        }
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// An empty map or list in the desired object is satisfied by the field being absent: the
/// apiserver drops empty values (`labels: {}`) when it stores the object.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Bring a rendered object to the form the apiserver stores, so that comparing is meaningful:
/// a Secret's `stringData` becomes base64 `data` (the server never returns `stringData`).
pub fn normalise(mut obj: Value) -> Value {
    let is_secret = obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("v1");
    if is_secret
        && let Some(map) = obj.as_object_mut()
        && let Some(Value::Object(string_data)) = map.remove("stringData")
    {
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(data) = data {
            for (k, v) in string_data {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                data.insert(
                    k,
                    Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
    }
    obj
}

/// A digest of the desired object as applied, kept in the release inventory: when it changes,
/// the object is applied even if the live one already has every desired field, so fields a new
/// render dropped are removed by server-side apply.
pub fn digest(obj: &Value) -> String {
    let text = serde_json::to_string(&sorted(obj)).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The same value with every map's keys in order, so the text does not depend on whether some
/// crate in the build turned on serde_json's `preserve_order`.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<_> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_set_fields_are_not_differences() {
        let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "labels": {"x": "1"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i:1"}]}}}});
        let mut live = desired.clone();
        live["metadata"]["uid"] = json!("u-1");
        live["metadata"]["managedFields"] = json!([{"manager": "wharf"}]);
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        live["status"] = json!({"readyReplicas": 1});
        assert!(contains(&live, &desired));
    }

    #[test]
    fn changed_missing_and_reordered_values_are_differences() {
        let desired = json!({"spec": {"replicas": 2, "ports": [{"port": 80}, {"port": 81}]}});
        assert!(!contains(
            &json!({"spec": {"replicas": 1, "ports": [{"port": 80}, {"port": 81}]}}),
            &desired
        ));
        assert!(!contains(
            &json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}}),
            &desired
        ));
        assert!(!contains(
            &json!({"spec": {"replicas": 2, "ports": [{"port": 81}, {"port": 80}]}}),
            &desired
        ));
        assert!(!contains(
            &json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}}),
            &desired
        ));
    }

    #[test]
    fn empty_maps_and_number_forms_match() {
        assert!(contains(&json!({"a": 1}), &json!({"a": 1.0, "labels": {}})));
        assert!(contains(&json!({"port": "8080"}), &json!({"port": 8080})));
        assert!(!contains(&json!({"port": "8081"}), &json!({"port": 8080})));
    }

    #[test]
    fn resource_quantities_compare_by_value() {
        let desired = json!({"resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"cpu": 1}}});
        let live = json!({"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1"}}});
        assert!(contains(&live, &desired));
        let bigger = json!({"resources": {"requests": {"cpu": "600m", "memory": "1Gi"}, "limits": {"cpu": "1"}}});
        assert!(!contains(&bigger, &desired));
        // Outside resources, text is text.
        assert!(!contains(
            &json!({"labels": {"v": "1"}}),
            &json!({"labels": {"v": "1.0"}})
        ));
        assert_eq!(quantity("2e3"), Some(2000.0));
        assert_eq!(quantity("1.5Gi"), Some(1.5 * 1073741824.0));
        assert_eq!(quantity("web"), None);
    }

    #[test]
    fn secret_string_data_becomes_data() {
        let s = normalise(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"a": "YQ=="}, "stringData": {"b": "hello"}}),
        );
        assert_eq!(s["data"]["b"], "aGVsbG8=");
        assert_eq!(s["data"]["a"], "YQ==");
        assert!(s.get("stringData").is_none());
        // Other kinds are untouched.
        let c = json!({"apiVersion": "v1", "kind": "ConfigMap", "stringData": {"b": "x"}});
        assert_eq!(normalise(c.clone()), c);
    }

    #[test]
    fn digest_is_stable_and_sensitive() {
        let a = json!({"b": 1, "a": [1, 2]});
        assert_eq!(digest(&a), digest(&json!({"a": [1, 2], "b": 1})));
        assert_ne!(digest(&a), digest(&json!({"a": [2, 1], "b": 1})));
    }
}
