//! Server-side apply and `metadata.managedFields`, as structured-merge-diff does them: a manager
//! owns a set of field paths. Maps are descended key by key; lists follow their schema
//! (`shape.rs`): `map` lists by their keys (`k:{"name":"c"}`, the element itself and each field
//! inside it owned separately), `set` lists by value (`v:"x"`), `atomic` lists whole. Apply merges
//! the applied configuration into the live object, removes fields and elements the same manager
//! applied before but omits now (unless another manager owns them, or for an element anything
//! inside it), and reports a conflict when a field owned by a different manager would change
//! value, named as the apiserver does (`.spec.template.spec.containers[name="c"].image`).
//! Non-apply writes (create, PUT, patches) take ownership of the fields they change, as
//! `operation: Update` entries.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::shape::{ListType, Shape};

/// One step of a field path, as fieldsV1 spells it after the `f:`/`k:`/`v:` prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    /// A map key or struct field: `f:name`.
    Field(String),
    /// A `map` list element by its keys, canonical JSON: `k:{"name":"c"}`.
    Key(String),
    /// A `set` list element by its value, canonical JSON: `v:"x"`.
    Value(String),
}

pub type Path = Vec<Seg>;

/// `["spec", "replicas"]` as a path of fields.
pub fn fields(names: &[&str]) -> Path {
    names.iter().map(|n| Seg::Field(n.to_string())).collect()
}

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

/// The apiserver's spelling: `.spec.replicas`, `.spec.containers[name="c"].image`,
/// `.spec.ports[containerPort=80,protocol="TCP"]`, `.metadata.finalizers[="f"]`.
pub fn display(path: &Path) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Field(f) => format!(".{f}"),
            Seg::Key(k) => {
                let pairs: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .unwrap_or_default()
                    .iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
                format!("[{}]", pairs.join(","))
            }
            Seg::Value(v) => format!("[={v}]"),
        })
        .collect()
}

/// JSON with object keys sorted, so equal values give equal path segments.
fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let ordered: BTreeMap<&String, Value> =
                    m.iter().map(|(k, c)| (k, sorted(c))).collect();
                let mut out = Map::new();
                for (k, c) in ordered {
                    out.insert(k.clone(), c);
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

/// The `k:` segment of a `map` list element: its key fields (a missing one takes the schema's
/// default, as a port's protocol does).
fn element_key(elem: &Value, item: Shape, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = elem.get(k).or_else(|| item.default_of(k)) {
            m.insert(k.clone(), v.clone());
        }
    }
    canonical(&Value::Object(m))
}

/// Where the element a segment names sits in a list of this shape.
fn find_element(list: &[Value], shape: Shape, seg: &Seg) -> Option<usize> {
    match (seg, shape.list_type()) {
        (Seg::Key(k), ListType::Map(keys)) => {
            let item = shape.items();
            list.iter().position(|e| &element_key(e, item, &keys) == k)
        }
        (Seg::Value(v), _) => list.iter().position(|e| &canonical(e) == v),
        _ => None,
    }
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

/// Every owned path and its value: leaves (scalars, atomic lists and maps, empty maps), `set`
/// elements, and `map` list elements themselves (value `null`: an element is owned, it has no
/// value of its own to conflict over).
pub fn leaves(v: &Value, shape: Shape) -> BTreeMap<Path, Value> {
    fn walk(v: &Value, shape: Shape, path: &mut Path, out: &mut BTreeMap<Path, Value>) {
        match v {
            Value::Object(m) if !m.is_empty() && !shape.atomic_map() => {
                for (k, c) in m {
                    path.push(Seg::Field(k.clone()));
                    walk(c, shape.field(k), path, out);
                    path.pop();
                }
                return;
            }
            // An empty keyed or set list owns no element and nothing else: were the list a
            // leaf, dropping it later would take other managers' elements with it.
            Value::Array(a) if a.is_empty() && shape.list_type() != ListType::Atomic => return,
            Value::Array(a) if !path.is_empty() => match shape.list_type() {
                ListType::Map(keys) => {
                    let item = shape.items();
                    for e in a {
                        path.push(Seg::Key(element_key(e, item, &keys)));
                        out.insert(path.clone(), Value::Null);
                        walk(e, item, path, out);
                        path.pop();
                    }
                    return;
                }
                ListType::Set => {
                    for e in a {
                        path.push(Seg::Value(canonical(e)));
                        out.insert(path.clone(), e.clone());
                        path.pop();
                    }
                    return;
                }
                ListType::Atomic => {}
            },
            _ => {}
        }
        if !path.is_empty() {
            out.insert(path.clone(), v.clone());
        }
    }
    let mut out = BTreeMap::new();
    walk(v, shape, &mut Vec::new(), &mut out);
    out
}

pub fn value_at<'a>(v: &'a Value, shape: Shape, path: &Path) -> Option<&'a Value> {
    let mut cur = v;
    let mut shape = shape;
    for seg in path {
        match seg {
            Seg::Field(f) => {
                cur = cur.as_object()?.get(f)?;
                shape = shape.field(f);
            }
            Seg::Key(_) | Seg::Value(_) => {
                let list = cur.as_array()?;
                let i = find_element(list, shape, seg)?;
                cur = &list[i];
                shape = shape.items();
            }
        }
    }
    Some(cur)
}

/// Remove the field or element at `path`, then any map or list the removal left empty
/// (`metadata` itself stays).
pub fn remove_at(v: &mut Value, shape: Shape, path: &Path) {
    fn rec(v: &mut Value, shape: Shape, path: &[Seg], depth: usize) {
        let last = path.len() == 1;
        match (&path[0], v) {
            (Seg::Field(f), Value::Object(m)) => {
                if last {
                    m.remove(f);
                    return;
                }
                if let Some(child) = m.get_mut(f) {
                    rec(child, shape.field(f), &path[1..], depth + 1);
                    if is_empty_container(child) && !(depth == 0 && f == "metadata") {
                        m.remove(f);
                    }
                }
            }
            (seg, Value::Array(list)) => {
                let Some(i) = find_element(list, shape, seg) else {
                    return;
                };
                if last {
                    list.remove(i);
                    return;
                }
                rec(&mut list[i], shape.items(), &path[1..], depth + 1);
            }
            _ => {}
        }
    }
    if !path.is_empty() {
        rec(v, shape, path, 0)
    }
}

fn is_empty_container(v: &Value) -> bool {
    v.as_object().is_some_and(|m| m.is_empty()) || v.as_array().is_some_and(|a| a.is_empty())
}

/// Merge the applied `src` into `dst`: maps key by key, `map` lists element by element (by key,
/// new elements appended), `set` lists by value, anything else replaced.
pub fn merge_into(dst: &mut Value, src: &Value, shape: Shape) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) if !shape.atomic_map() => {
            for (k, v) in s {
                match d.get_mut(k) {
                    Some(existing) => merge_into(existing, v, shape.field(k)),
                    None => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(d), Value::Array(s)) => match shape.list_type() {
            ListType::Map(keys) => {
                let item = shape.items();
                for e in s {
                    let key = element_key(e, item, &keys);
                    match d.iter().position(|x| element_key(x, item, &keys) == key) {
                        Some(i) => merge_into(&mut d[i], e, item),
                        None => d.push(e.clone()),
                    }
                }
            }
            ListType::Set => {
                for e in s {
                    if !d.contains(e) {
                        d.push(e.clone());
                    }
                }
            }
            ListType::Atomic => *d = s.clone(),
        },
        (dst, src) => *dst = src.clone(),
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

fn seg_name(s: &Seg) -> String {
    match s {
        Seg::Field(f) => format!("f:{f}"),
        Seg::Key(k) => format!("k:{k}"),
        Seg::Value(v) => format!("v:{v}"),
    }
}

/// fieldsV1: a tree of `f:`/`k:`/`v:` nodes; a leaf is `{}`, an owned element that also has owned
/// fields says so with `".": {}`.
fn encode(fields: &BTreeSet<Path>) -> Value {
    let mut root = Value::Object(Map::new());
    for p in fields {
        let mut cur = &mut root;
        for seg in p {
            cur = cur
                .as_object_mut()
                .expect("fieldsV1 nodes are maps")
                .entry(seg_name(seg))
                .or_insert(json!({}));
        }
        if matches!(p.last(), Some(Seg::Key(_))) {
            cur.as_object_mut()
                .expect("fieldsV1 nodes are maps")
                .insert(".".into(), json!({}));
        }
    }
    root
}

fn decode(v: &Value) -> BTreeSet<Path> {
    fn walk(v: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        let Some(m) = v.as_object() else { return };
        let children: Vec<(Seg, &Value)> = m
            .iter()
            .filter_map(|(k, c)| {
                let seg = if let Some(f) = k.strip_prefix("f:") {
                    Seg::Field(f.into())
                } else if let Some(key) = k.strip_prefix("k:") {
                    // Re-encode so a real client's spacing or key order still matches ours.
                    Seg::Key(serde_json::from_str(key).map_or(key.to_string(), |j| canonical(&j)))
                } else if let Some(val) = k.strip_prefix("v:") {
                    Seg::Value(serde_json::from_str(val).map_or(val.to_string(), |j| canonical(&j)))
                } else {
                    return None;
                };
                Some((seg, c))
            })
            .collect();
        if !path.is_empty() && (children.is_empty() || m.contains_key(".")) {
            out.insert(path.clone());
        }
        for (seg, c) in children {
            path.push(seg);
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

pub fn write_entries(obj: &mut Value, shape: Shape, mut entries: Vec<Entry>) {
    // Forget paths that no longer exist, and entries that own nothing.
    for e in entries.iter_mut() {
        e.fields.retain(|p| value_at(obj, shape, p).is_some());
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

/// Server-side apply of `applied` (by `manager`) onto `live`, whose schema is `shape`. Returns the
/// new object (with managedFields updated) or the conflicts when `force` is false.
// These are the inputs of an apply; bundling them would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    live: &Value,
    applied: &Value,
    shape: Shape,
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
    let applied_leaves = leaves(&applied_scoped, shape);
    let mut entries = read_entries(live);
    let mine_before: BTreeSet<Path> = entries
        .iter()
        .find(|e| e.same_owner(manager, "Apply", sub))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    // Another manager owns the path, or (for an element) something inside it.
    let owned_by_others = |p: &Path, entries: &[Entry]| {
        entries.iter().any(|e| {
            !e.same_owner(manager, "Apply", sub)
                && (e.fields.contains(p)
                    || (matches!(p.last(), Some(Seg::Key(_)))
                        && e.fields.iter().any(|q| q.starts_with(p))))
        })
    };

    let mut result = live.clone();
    for p in mine_before
        .iter()
        .filter(|p| !applied_leaves.contains_key(*p))
    {
        if !owned_by_others(p, &entries) {
            remove_at(&mut result, shape, p);
        }
    }
    merge_into(&mut result, &applied_scoped, shape);

    let mut conflicts = Vec::new();
    for e in entries
        .iter_mut()
        .filter(|e| !e.same_owner(manager, "Apply", sub))
    {
        // Only values conflict: owning an element or a set member is never in the way.
        let changed: Vec<Path> = e
            .fields
            .iter()
            .filter(|p| matches!(p.last(), Some(Seg::Field(_))))
            .filter(|p| value_at(live, shape, p) != value_at(&result, shape, p))
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
    write_entries(&mut result, shape, entries);
    Ok(result)
}

/// After a non-apply write (`old` -> `new`), give `manager` the fields it changed.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    shape: Shape,
    manager: &str,
    scope: Scope,
    now: &str,
) {
    let sub = scope.subresource();
    let before = old
        .map(|o| leaves(&scoped(o, scope), shape))
        .unwrap_or_default();
    let after = leaves(&scoped(new, scope), shape);
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
    write_entries(new, shape, entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: Scope = Scope::Main {
        status_separate: true,
    };

    fn shape() -> Shape<'static> {
        crate::openapi::builtin_kind("apps", "v1", "Deployment").unwrap()
    }

    fn apply(
        live: &Value,
        applied: &Value,
        manager: &str,
        force: bool,
        scope: Scope,
        now: &str,
    ) -> Result<Value, Vec<Conflict>> {
        super::apply(live, applied, shape(), manager, force, scope, now)
    }

    fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, scope: Scope, now: &str) {
        super::record_update(old, new, shape(), manager, scope, now)
    }

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"app": "d"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    #[test]
    fn fields_v1_round_trips() {
        let mut containers = fields(&["spec", "template", "spec", "containers"]);
        containers.push(Seg::Key(r#"{"name":"c"}"#.into()));
        let mut image = containers.clone();
        image.push(Seg::Field("image".into()));
        let mut finalizer = fields(&["metadata", "finalizers"]);
        finalizer.push(Seg::Value(r#""f""#.into()));
        let set: BTreeSet<Path> = [
            fields(&["spec", "replicas"]),
            fields(&["metadata", "labels", "app"]),
            containers,
            image,
            finalizer,
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
        assert!(!wharf.fields.contains(&fields(&["spec", "replicas"])));
    }

    #[test]
    fn several_conflicts_are_grouped_by_manager() {
        let base =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        let live = apply(&base, &deploy(1, "a"), "wharf", false, MAIN, "t1").unwrap();
        let err = apply(&live, &deploy(2, "b"), "other", false, MAIN, "t2").unwrap_err();
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 2 conflicts: conflicts with \"wharf\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"c\"].image"
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
