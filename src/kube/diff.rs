//! `wharf deploy --diff`: a unified diff between the live objects and what would be applied,
//! showing only the fields wharf sets (not server defaults or status) and never Secret values.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use similar::TextDiff;

/// Keep only the parts of `live` that `desired` sets, so the diff shows what wharf manages.
pub fn project(live: &Value, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => Value::Object(
            d.iter()
                .filter_map(|(k, dv)| l.get(k).map(|lv| (k.clone(), project(lv, dv))))
                .collect::<Map<_, _>>(),
        ),
        (Value::Array(l), Value::Array(d)) => Value::Array(
            l.iter()
                .enumerate()
                .map(|(i, lv)| d.get(i).map_or_else(|| lv.clone(), |dv| project(lv, dv)))
                .collect(),
        ),
        (l, _) => l.clone(),
    }
}

/// Replace each value of a Secret's `data`/`stringData` by a short digest: a changed value shows
/// as changed, its content never appears.
pub fn redact(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if obj.get("kind").and_then(Value::as_str) != Some("Secret") {
        return obj;
    }
    for field in ["data", "stringData"] {
        if let Some(Value::Object(m)) = obj.get_mut(field) {
            for v in m.values_mut() {
                let digest = hex::encode(Sha256::digest(v.to_string().as_bytes()));
                *v = Value::String(format!("<redacted sha256:{}>", &digest[..12]));
            }
        }
    }
    obj
}

fn yaml(v: &Value) -> String {
    serde_saphyr::to_string(v)
        .unwrap_or_else(|_| serde_json::to_string_pretty(v).unwrap_or_default())
}

/// The unified diff for one object (`live` None: a new object, all lines added), or None when
/// nothing differs.
pub fn object_diff(title: &str, live: Option<&Value>, desired: &Value) -> Option<String> {
    let desired = redact(desired);
    let old = live
        .map(|l| yaml(&redact(&project(&super::owned::wharf_view(l), &desired))))
        .unwrap_or_default();
    let new = yaml(&desired);
    if old == new {
        return None;
    }
    let diff = TextDiff::from_lines(&old, &new);
    Some(
        diff.unified_diff()
            .context_radius(3)
            .header(&format!("live {title}"), &format!("desired {title}"))
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_shows_changed_fields_only_and_hides_secrets() {
        let desired = json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "bmV3"}});
        let live =
            json!({"kind": "Secret", "metadata": {"name": "s", "uid": "u"}, "data": {"k": "b2xk"}});
        let d = object_diff("Secret wharf/s", Some(&live), &desired).unwrap();
        assert!(d.contains("<redacted sha256:"), "{d}");
        assert!(
            !d.contains("bmV3") && !d.contains("b2xk") && !d.contains("uid"),
            "{d}"
        );
        assert!(
            d.contains("-  k:") || d.contains("- k:") || d.contains("-  k"),
            "{d}"
        );
        let same = json!({"kind": "ConfigMap", "data": {"a": "1"}});
        let mut live = same.clone();
        live["status"] = json!({"x": 1});
        assert_eq!(object_diff("ConfigMap c", Some(&live), &same), None);
        let new = object_diff("ConfigMap c", None, &same).unwrap();
        assert!(new.contains("+kind: ConfigMap"), "{new}");
    }
}
