//! Server-side apply and `metadata.managedFields`, simplified: a manager owns a set of leaf paths
//! (a map key path; lists are atomic leaves, they are never merged by key). Apply merges the applied
//! configuration into the live object, removes fields the same manager applied before but omits
//! now (unless another manager also owns them), and reports a conflict when a field owned by a
//! different manager would change value. Non-apply writes (create, PUT, patches) take ownership of
//! the fields they change, as `operation: Update` entries.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

pub type Path = Vec<String>;

/// Which part of an object a write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The main resource; `status_separate` when the kind has a `/status` subresource.
    Main { status_separate: bool },
    /// The `/status` subresource.
    Status,
}

impl Scope {
    pub fn subresource(self) -> Option<&'static str> {
        match self {
            Scope::Status => Some("status"),
            Scope::Main { .. } => None,
        }
    }
}

/// `.spec.replicas`
pub fn display(path: &Path) -> String {
    path.iter().map(|s| format!(".{s}")).collect()
}

/// The part of `obj` a writer in `scope` owns: no identity/system metadata, no status on the main
/// resource when status is separate, only status on the status subresource.
pub fn scoped(obj: &Value, scope: Scope) -> Value {
    let mut out = Map::new();
    let Some(m) = obj.as_object() else {
        return Value::Object(out);
    };
    for (k, v) in m {
        let keep = match (scope, k.as_str()) {
            (_, "apiVersion" | "kind") => false,
            (Scope::Status, "status") => true,
            (Scope::Status, _) => false,
            (Scope::Main { status_separate }, "status") => !status_separate,
            (Scope::Main { .. }, "metadata") => {
                let mut md = Map::new();
                for f in ["labels", "annotations", "ownerReferences", "finalizers"] {
                    if let Some(x) = v.get(f) {
                        md.insert(f.into(), x.clone());
                    }
                }
                if !md.is_empty() {
                    out.insert(k.clone(), Value::Object(md));
                }
                false
            }
            _ => true,
        };
        if keep {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// Leaf paths and their values (maps are descended, everything else is a leaf).
pub fn leaves(v: &Value) -> BTreeMap<Path, Value> {
    fn walk(v: &Value, path: &mut Path, out: &mut BTreeMap<Path, Value>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, c) in m {
                    path.push(k.clone());
                    walk(c, path, out);
                    path.pop();
                }
            }
            _ if path.is_empty() => {}
            _ => {
                out.insert(path.clone(), v.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

pub fn value_at<'a>(v: &'a Value, path: &Path) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.as_object()?.get(k))
}

/// Remove the leaf at `path`, then any parent map it leaves empty (below `keep_depth`).
pub fn remove_at(v: &mut Value, path: &Path) {
    fn rec(v: &mut Value, path: &[String], depth: usize) {
        let Some(m) = v.as_object_mut() else { return };
        if path.len() == 1 {
            m.remove(&path[0]);
            return;
        }
        if let Some(child) = m.get_mut(&path[0]) {
            rec(child, &path[1..], depth + 1);
            // Keep metadata itself; prune maps the removal emptied.
            if child.as_object().is_some_and(|c| c.is_empty())
                && !(depth == 0 && path[0] == "metadata")
            {
                m.remove(&path[0]);
            }
        }
    }
    if !path.is_empty() {
        rec(v, path, 0)
    }
}

/// Deep-merge `src` into `dst`: maps recursively, anything else replaces.
pub fn merge_into(dst: &mut Value, src: &Value) {
    match (dst.as_object_mut(), src.as_object()) {
        (Some(d), Some(s)) => {
            for (k, v) in s {
                match d.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        merge_into(existing, v)
                    }
                    _ => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *dst = src.clone(),
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: BTreeSet<Path>,
}

impl Entry {
    fn same_owner(&self, manager: &str, operation: &str, sub: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == sub
    }
}

fn encode(fields: &BTreeSet<Path>) -> Value {
    let mut root = Value::Object(Map::new());
    for p in fields {
        let mut cur = &mut root;
        for seg in p {
            cur = cur
                .as_object_mut()
                .expect("fieldsV1 nodes are maps")
                .entry(format!("f:{seg}"))
                .or_insert(json!({}));
        }
    }
    root
}

fn decode(v: &Value) -> BTreeSet<Path> {
    fn walk(v: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        let Some(m) = v.as_object() else { return };
        let children: Vec<(&String, &Value)> =
            m.iter().filter(|(k, _)| k.as_str() != ".").collect();
        // A leaf, or a list written by a real client in `k:`/`v:` form: we treat lists atomically.
        if children.is_empty() || children.iter().any(|(k, _)| !k.starts_with("f:")) {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        }
        for (k, c) in children {
            path.push(k[2..].to_string());
            walk(c, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().into(),
            operation: e["operation"].as_str().unwrap_or("Update").into(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
            time: e["time"].as_str().unwrap_or_default().into(),
            subresource: e["subresource"].as_str().map(str::to_string),
            fields: decode(&e["fieldsV1"]),
        })
        .collect()
}

pub fn write_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    // Forget paths that no longer exist, and entries that own nothing.
    for e in entries.iter_mut() {
        e.fields.retain(|p| value_at(obj, p).is_some());
    }
    entries.retain(|e| !e.fields.is_empty());
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode(&e.fields),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            md.remove("managedFields");
        } else {
            md.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// A field another manager owns that the apply would change.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: Path,
}

/// The apiserver's message: `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas`,
/// or for several, grouped by manager (sorted), one `- path` line per field.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with \"{}\" using {}: {}",
            c.manager,
            c.api_version,
            display(&c.path)
        );
    }
    let mut by_manager: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for c in conflicts {
        by_manager
            .entry((&c.manager, &c.api_version))
            .or_default()
            .push(display(&c.path));
    }
    let mut lines = Vec::new();
    for ((manager, api_version), paths) in by_manager {
        lines.push(format!("conflicts with \"{manager}\" using {api_version}:"));
        lines.extend(paths.into_iter().map(|p| format!("- {p}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Server-side apply of `applied` (by `manager`) onto `live`. Returns the new object (with
/// managedFields updated) or the conflicts when `force` is false.
pub fn apply(
    live: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    scope: Scope,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let sub = scope.subresource();
    let api_version = applied["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let applied_scoped = scoped(applied, scope);
    let applied_leaves = leaves(&applied_scoped);
    let mut entries = read_entries(live);
    let mine_before: BTreeSet<Path> = entries
        .iter()
        .find(|e| e.same_owner(manager, "Apply", sub))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let owned_by_others = |p: &Path, entries: &[Entry]| {
        entries
            .iter()
            .any(|e| !e.same_owner(manager, "Apply", sub) && e.fields.contains(p))
    };

    let mut result = live.clone();
    for p in mine_before
        .iter()
        .filter(|p| !applied_leaves.contains_key(*p))
    {
        if !owned_by_others(p, &entries) {
            remove_at(&mut result, p);
        }
    }
    merge_into(&mut result, &applied_scoped);

    let mut conflicts = Vec::new();
    for e in entries
        .iter_mut()
        .filter(|e| !e.same_owner(manager, "Apply", sub))
    {
        let changed: Vec<Path> = e
            .fields
            .iter()
            .filter(|p| value_at(live, p) != value_at(&result, p))
            .cloned()
            .collect();
        for p in changed {
            if force {
                e.fields.remove(&p);
            } else {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    path: p,
                });
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }

    let fields: BTreeSet<Path> = applied_leaves.into_keys().collect();
    match entries
        .iter_mut()
        .find(|e| e.same_owner(manager, "Apply", sub))
    {
        Some(e) => {
            if e.fields != fields || e.api_version != api_version {
                e.fields = fields;
                e.api_version = api_version;
                e.time = now.to_string();
            }
        }
        None => entries.push(Entry {
            manager: manager.into(),
            operation: "Apply".into(),
            api_version,
            time: now.into(),
            subresource: sub.map(str::to_string),
            fields,
        }),
    }
    write_entries(&mut result, entries);
    Ok(result)
}

/// After a non-apply write (`old` -> `new`), give `manager` the fields it changed.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, scope: Scope, now: &str) {
    let sub = scope.subresource();
    let before = old.map(|o| leaves(&scoped(o, scope))).unwrap_or_default();
    let after = leaves(&scoped(new, scope));
    let changed: BTreeSet<Path> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(*v))
        .map(|(p, _)| p.clone())
        .collect();
    let mut entries = old.map(read_entries).unwrap_or_default();
    if !changed.is_empty() {
        for e in entries.iter_mut() {
            e.fields.retain(|p| !changed.contains(p));
        }
        let api_version = new["apiVersion"].as_str().unwrap_or_default().to_string();
        match entries
            .iter_mut()
            .find(|e| e.same_owner(manager, "Update", sub))
        {
            Some(e) => {
                e.fields.extend(changed);
                e.time = now.into();
                e.api_version = api_version;
            }
            None => entries.push(Entry {
                manager: manager.into(),
                operation: "Update".into(),
                api_version,
                time: now.into(),
                subresource: sub.map(str::to_string),
                fields: changed,
            }),
        }
    }
    write_entries(new, entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: Scope = Scope::Main {
        status_separate: true,
    };

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"app": "d"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    #[test]
    fn fields_v1_round_trips() {
        let set: BTreeSet<Path> = [
            vec!["spec".to_string(), "replicas".to_string()],
            vec!["metadata".into(), "labels".into(), "app".into()],
        ]
        .into();
        assert_eq!(decode(&encode(&set)), set);
    }

    #[test]
    fn reapplying_the_same_config_changes_nothing() {
        let base =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        let once = apply(&base, &deploy(1, "a"), "wharf", false, MAIN, "t1").unwrap();
        let twice = apply(&once, &deploy(1, "a"), "wharf", false, MAIN, "t2").unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn other_manager_changing_an_owned_field_conflicts_unless_forced() {
        let base =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        let live = apply(&base, &deploy(1, "a"), "wharf", false, MAIN, "t1").unwrap();
        let err = apply(&live, &deploy(3, "a"), "other", false, MAIN, "t2").unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 1 conflict: conflict with \"wharf\" using apps/v1: .spec.replicas"
        );
        let forced = apply(&live, &deploy(3, "a"), "other", true, MAIN, "t2").unwrap();
        assert_eq!(forced["spec"]["replicas"], json!(3));
        let wharf = read_entries(&forced)
            .into_iter()
            .find(|e| e.manager == "wharf")
            .unwrap();
        assert!(
            !wharf
                .fields
                .contains(&vec!["spec".to_string(), "replicas".to_string()])
        );
    }

    #[test]
    fn several_conflicts_are_grouped_by_manager() {
        let base =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        let live = apply(&base, &deploy(1, "a"), "wharf", false, MAIN, "t1").unwrap();
        let err = apply(&live, &deploy(2, "b"), "other", false, MAIN, "t2").unwrap_err();
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 2 conflicts: conflicts with \"wharf\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers"
        );
    }

    #[test]
    fn same_value_from_another_manager_is_shared_not_a_conflict() {
        let base =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        let live = apply(&base, &deploy(1, "a"), "wharf", false, MAIN, "t1").unwrap();
        assert!(apply(&live, &deploy(1, "a"), "other", false, MAIN, "t2").is_ok());
    }

    #[test]
    fn omitted_fields_the_manager_owned_are_removed() {
        let base =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        let live = apply(&base, &deploy(1, "a"), "wharf", false, MAIN, "t1").unwrap();
        let mut smaller = deploy(1, "a");
        smaller["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        let out = apply(&live, &smaller, "wharf", false, MAIN, "t2").unwrap();
        assert_eq!(out["metadata"].get("labels"), None);
        assert_eq!(out["spec"]["replicas"], json!(1));
    }

    #[test]
    fn update_takes_ownership_from_appliers() {
        let base =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        let live = apply(&base, &deploy(1, "a"), "wharf", false, MAIN, "t1").unwrap();
        let mut edited = live.clone();
        edited["spec"]["replicas"] = json!(5);
        record_update(
            Some(&live),
            &mut edited,
            "kubectl-client-side-apply",
            MAIN,
            "t2",
        );
        let err = apply(&edited, &deploy(1, "a"), "wharf", false, MAIN, "t3").unwrap_err();
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
        assert!(err.iter().any(|c| c.manager == "kubectl-client-side-apply"));
    }
}
