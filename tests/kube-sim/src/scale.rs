//! The `/scale` subresource: `autoscaling/v1` Scale objects for Deployments, StatefulSets,
//! ReplicaSets and custom resources whose CRD declares `subresources.scale`. A write through it
//! changes only the target's `spec.replicas` (or the CRD's `specReplicasPath`), and the writer
//! becomes that field's owner in `managedFields` with `subresource: scale` — which is how a real
//! HorizontalPodAutoscaler (manager `kube-controller-manager`) takes `spec.replicas` over.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::catalog::ResourceType;
use crate::error::{ApiError, ApiResult};
use crate::managed::{self, Entry, Scope};
use crate::ops::{PatchKind, WriteCtx, now, parse_body};
use crate::store::{ObjKey, State};

/// Where a kind keeps what its Scale shows, as JSON pointers.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    /// For built-ins the label selector object at `spec.selector`; for CRDs the string at
    /// `labelSelectorPath` (usually `.status.selector`).
    pub selector: Option<String>,
    pub selector_is_string: bool,
}

/// `.spec.replicas` → `/spec/replicas`
fn pointer(json_path: &str) -> String {
    format!("/{}", json_path.trim_start_matches('.').replace('.', "/"))
}

/// The scale paths of `rt`, or None when it has no `/scale`.
pub fn paths(st: &State, rt: &ResourceType) -> Option<ScalePaths> {
    if !rt.scale {
        return None;
    }
    let Some(crd) = &rt.crd else {
        return Some(ScalePaths {
            spec_replicas: "/spec/replicas".into(),
            status_replicas: "/status/replicas".into(),
            selector: Some("/spec/selector".into()),
            selector_is_string: false,
        });
    };
    let crd_rt = st
        .catalog
        .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")?;
    let crd_obj = st.get(&ObjKey::new(&crd_rt, "", &crd.crd_name))?;
    let version = crd_obj["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == json!(rt.version))?;
    let s = version.pointer("/subresources/scale")?;
    Some(ScalePaths {
        spec_replicas: pointer(s["specReplicasPath"].as_str().unwrap_or(".spec.replicas")),
        status_replicas: pointer(
            s["statusReplicasPath"]
                .as_str()
                .unwrap_or(".status.replicas"),
        ),
        selector: s["labelSelectorPath"].as_str().map(pointer),
        selector_is_string: true,
    })
}

/// A label selector object (`matchLabels`, `matchExpressions`) as its string form
/// (`app=web,tier in (a,b)`), the way `status.selector` of a Scale shows it.
pub fn selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}

/// The `autoscaling/v1` Scale of a stored object.
pub fn scale_of(obj: &Value, paths: &ScalePaths) -> Value {
    let md = &obj["metadata"];
    let mut scale = json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": md["name"], "namespace": md["namespace"], "uid": md["uid"],
            "resourceVersion": md["resourceVersion"], "creationTimestamp": md["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer(&paths.spec_replicas).and_then(Value::as_i64).unwrap_or(0)},
        "status": {"replicas": obj.pointer(&paths.status_replicas).and_then(Value::as_i64).unwrap_or(0)},
    });
    if let Some(sel) = paths.selector.as_deref().and_then(|p| obj.pointer(p)) {
        let text = if paths.selector_is_string {
            sel.as_str().unwrap_or_default().to_string()
        } else {
            selector_string(sel)
        };
        if !text.is_empty() {
            scale["status"]["selector"] = json!(text);
        }
    }
    if md["namespace"].is_null() {
        scale["metadata"]
            .as_object_mut()
            .expect("map")
            .remove("namespace");
    }
    scale
}

fn no_scale(rt: &ResourceType) -> ApiError {
    ApiError::no_route(&format!(
        "{}/scale (the kind has no scale subresource)",
        rt.plural
    ))
}

fn stored(st: &State, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<Value> {
    st.get(&ObjKey::new(rt, ns, name))
        .cloned()
        .ok_or_else(|| ApiError::not_found(&rt.plural, &rt.group, name))
}

/// GET `.../NAME/scale`.
pub fn get(st: &State, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<Value> {
    let paths = paths(st, rt).ok_or_else(|| no_scale(rt))?;
    Ok(scale_of(&stored(st, rt, ns, name)?, &paths))
}

/// PUT `.../NAME/scale` with a Scale body.
pub fn update(
    st: &mut State,
    rt: &Arc<ResourceType>,
    ns: &str,
    name: &str,
    body: Value,
    ctx: &WriteCtx,
) -> ApiResult<Value> {
    let paths = paths(st, rt).ok_or_else(|| no_scale(rt))?;
    let obj = stored(st, rt, ns, name)?;
    write(st, rt, &obj, &paths, &body, ctx)
}

/// PATCH `.../NAME/scale`: the patch applies to the Scale, then the Scale is written as by PUT.
pub fn patch(
    st: &mut State,
    rt: &Arc<ResourceType>,
    ns: &str,
    name: &str,
    kind: PatchKind,
    body: &[u8],
    ctx: &WriteCtx,
) -> ApiResult<Value> {
    let paths = paths(st, rt).ok_or_else(|| no_scale(rt))?;
    let obj = stored(st, rt, ns, name)?;
    let mut scale = scale_of(&obj, &paths);
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the JSON patch body is not a list of operations: {e}"
                ))
            })?;
            json_patch::patch(&mut scale, &ops.0).map_err(|e| {
                ApiError::new(422, "Invalid", format!("the JSON patch failed: {e}"))
            })?;
        }
        PatchKind::Merge | PatchKind::Strategic => {
            json_patch::merge(&mut scale, &parse_body(body)?)
        }
        PatchKind::Apply { .. } => {
            // Only `spec.replicas` can be applied to a Scale; take it as a merge of that field.
            let applied = parse_body(body)?;
            if let Some(r) = applied.pointer("/spec/replicas") {
                scale["spec"]["replicas"] = r.clone();
            }
        }
    }
    write(st, rt, &obj, &paths, &scale, ctx)
}

fn write(
    st: &mut State,
    rt: &Arc<ResourceType>,
    old: &Value,
    paths: &ScalePaths,
    scale: &Value,
    ctx: &WriteCtx,
) -> ApiResult<Value> {
    let name = old["metadata"]["name"].as_str().unwrap_or_default();
    if let Some(rv) = scale["metadata"]["resourceVersion"].as_str()
        && !rv.is_empty()
        && Some(rv) != old["metadata"]["resourceVersion"].as_str()
    {
        return Err(ApiError::conflict(&rt.plural, &rt.group, name));
    }
    let replicas = match &scale["spec"]["replicas"] {
        Value::Null => 0,
        v => v.as_i64().filter(|r| *r >= 0).ok_or_else(|| {
            ApiError::invalid(
                "Scale",
                "autoscaling",
                name,
                vec![(
                    "spec.replicas".into(),
                    format!("Invalid value: {v}: must be greater than or equal to 0"),
                )],
            )
        })?,
    };
    let mut new = old.clone();
    let field = &paths.spec_replicas;
    set_pointer(&mut new, field, json!(replicas));
    if new.pointer(field) != old.pointer(field) {
        take_ownership(&mut new, old, rt, field, &ctx.manager);
    }
    let scope = Scope::Main {
        status_separate: rt.status,
    };
    let stored = st.finish_write(rt, old, new, scope, None, ctx)?;
    Ok(scale_of(&stored, paths))
}

fn set_pointer(obj: &mut Value, pointer: &str, value: Value) {
    let mut cur = obj;
    let segs: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, seg) in segs.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let map = cur.as_object_mut().expect("made a map");
        if i + 1 == segs.len() {
            map.insert(seg.to_string(), value);
            return;
        }
        cur = map.entry(seg.to_string()).or_insert(json!({}));
    }
}

/// The apiserver's field manager for a write through `/scale`: the writer's `Update` entry with
/// `subresource: scale` owns the replicas field, taken from whoever held it before.
fn take_ownership(new: &mut Value, old: &Value, rt: &ResourceType, pointer: &str, manager: &str) {
    let names: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let path = managed::fields(&names);
    let mut entries = managed::read_entries(old);
    for e in entries.iter_mut() {
        e.fields.remove(&path);
    }
    let api_version = old["apiVersion"].as_str().unwrap_or_default().to_string();
    match entries.iter_mut().find(|e| {
        e.manager == manager && e.operation == "Update" && e.subresource.as_deref() == Some("scale")
    }) {
        Some(e) => {
            e.fields.insert(path);
            e.time = now();
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version,
            time: now(),
            subresource: Some("scale".into()),
            fields: [path].into(),
        }),
    }
    managed::write_entries(new, crate::shape::for_type(rt), entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_print_like_the_apiserver() {
        let sel = json!({"matchLabels": {"app": "web", "tier": "front"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}, {"key": "x", "operator": "DoesNotExist"}]});
        assert_eq!(selector_string(&sel), "app=web,tier=front,env in (a,b),!x");
    }

    #[test]
    fn json_paths_become_pointers() {
        assert_eq!(pointer(".spec.replicas"), "/spec/replicas");
        assert_eq!(pointer(".status.selector"), "/status/selector");
    }
}
