//! The official OpenAPI definitions of the built-in kinds (Kubernetes v1.33.0, extracted by
//! `openapi/extract.py`, which says where they come from), for server-side apply's list types
//! (`shape.rs`) and for the `/openapi/v2` and `/openapi/v3` documents.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::shape::Shape;

/// The definitions, and which one describes each (group, version, kind).
pub struct Builtin {
    pub definitions: Map<String, Value>,
    by_kind: HashMap<(String, String, String), String>,
}

static BUILTIN: LazyLock<Builtin> = LazyLock::new(|| {
    let doc: Value = serde_json::from_str(include_str!("../openapi/builtin-v1.33.json"))
        .expect("openapi/builtin-v1.33.json is JSON");
    let Value::Object(definitions) = doc["definitions"].clone() else {
        panic!("openapi/builtin-v1.33.json has no definitions map")
    };
    let mut by_kind = HashMap::new();
    for (name, d) in &definitions {
        for gvk in d["x-kubernetes-group-version-kind"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let part = |k: &str| gvk[k].as_str().unwrap_or_default().to_string();
            by_kind
                .entry((part("group"), part("version"), part("kind")))
                .or_insert_with(|| name.clone());
        }
    }
    Builtin {
        definitions,
        by_kind,
    }
});

pub fn builtin() -> &'static Builtin {
    &BUILTIN
}

impl Builtin {
    /// The definition name of a built-in kind (`io.k8s.api.apps.v1.Deployment`).
    pub fn definition_of(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.by_kind
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .map(String::as_str)
    }
}

/// The shape of a built-in kind's objects, if the definitions have it.
pub fn builtin_kind(group: &str, version: &str, kind: &str) -> Option<Shape<'static>> {
    let b = builtin();
    let name = b.definition_of(group, version, kind)?;
    Some(Shape::root(&b.definitions[name], Some(&b.definitions)))
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// ObjectMeta, every object's `metadata` (custom resources' too).
pub fn object_meta() -> Shape<'static> {
    let b = builtin();
    let meta = &b.definitions[OBJECT_META];
    Shape::new(meta, Some(&b.definitions))
}

// ---- The documents: /openapi/v2, /openapi/v3 and /openapi/v3/{api/v1 | apis/{g}/{v}} ----

/// One kind as the documents describe it: its definition name and schema (refs in v2 form).
struct Described {
    group: String,
    version: String,
    kind: String,
    plural: String,
    namespaced: bool,
    definition: String,
    schema: Value,
}

/// `com.example.v1.Pool` for a custom resource, as the apiserver names its definition.
fn crd_definition_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// A CRD version's schema as the apiserver publishes it: apiVersion, kind and metadata added,
/// the group-version-kind extension set.
fn crd_schema(structural: &Value, group: &str, version: &str, kind: &str) -> Value {
    let mut s = structural.clone();
    if !s.is_object() {
        s = serde_json::json!({"type": "object"});
    }
    let props = s
        .as_object_mut()
        .expect("object")
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(p) = props.as_object_mut() {
        p.insert("apiVersion".into(), serde_json::json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
        p.insert("kind".into(), serde_json::json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
        p.insert(
            "metadata".into(),
            serde_json::json!({"$ref": format!("#/definitions/{OBJECT_META}")}),
        );
    }
    s["x-kubernetes-group-version-kind"] =
        serde_json::json!([{"group": group, "version": version, "kind": kind}]);
    s
}

/// Every kind the documents describe: built-ins with a definition, and custom resources whose CRD
/// is Established (the apiserver publishes a CRD's schema only then).
fn described(state: &crate::store::State) -> Vec<Described> {
    let b = builtin();
    let mut out = Vec::new();
    for rt in state.catalog.all() {
        let (definition, schema) = match &rt.crd {
            None => match b.definition_of(&rt.group, &rt.version, &rt.kind) {
                Some(d) => (d.to_string(), b.definitions[d].clone()),
                None => continue,
            },
            Some(info) => {
                let established = state
                    .objects
                    .iter()
                    .find(|(k, _)| {
                        k.plural == "customresourcedefinitions"
                            && k.group == "apiextensions.k8s.io"
                            && k.name == info.crd_name
                    })
                    .is_some_and(|(_, crd)| {
                        crd["status"]["conditions"].as_array().is_some_and(|c| {
                            c.iter()
                                .any(|c| c["type"] == "Established" && c["status"] == "True")
                        })
                    });
                if !established {
                    continue;
                }
                let structural = info
                    .validator
                    .as_ref()
                    .map(|v| v.structural().clone())
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
                (
                    crd_definition_name(&rt.group, &rt.version, &rt.kind),
                    crd_schema(&structural, &rt.group, &rt.version, &rt.kind),
                )
            }
        };
        out.push(Described {
            group: rt.group.clone(),
            version: rt.version.clone(),
            kind: rt.kind.clone(),
            plural: rt.plural.clone(),
            namespaced: rt.namespaced,
            definition,
            schema,
        });
    }
    out
}

/// The definitions `roots` need, built-ins resolved through `$ref`s.
fn closure(roots: &[&Described]) -> Map<String, Value> {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    match (k.as_str(), c) {
                        ("$ref", Value::String(r)) => {
                            out.push(r.rsplit('/').next().unwrap_or_default().to_string())
                        }
                        _ => refs(c, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
            _ => {}
        }
    }
    let b = builtin();
    let mut out = Map::new();
    let mut todo = vec![
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status".to_string(),
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".to_string(),
    ];
    for d in roots {
        out.insert(d.definition.clone(), d.schema.clone());
        refs(&d.schema, &mut todo);
        let list = format!("{}List", d.definition);
        if b.definitions.contains_key(&list) {
            todo.push(list);
        }
    }
    while let Some(name) = todo.pop() {
        if out.contains_key(&name) {
            continue;
        }
        if let Some(d) = b.definitions.get(&name) {
            out.insert(name, d.clone());
            refs(d, &mut todo);
        }
    }
    out
}

/// `/api/v1/namespaces/{namespace}/pods` and `.../{name}`, each with a GET naming its kind.
fn paths(kinds: &[&Described], v3: bool) -> Map<String, Value> {
    let prefix = if v3 {
        "#/components/schemas/"
    } else {
        "#/definitions/"
    };
    let mut out = Map::new();
    for d in kinds {
        let base = if d.group.is_empty() {
            format!("/api/{}", d.version)
        } else {
            format!("/apis/{}/{}", d.group, d.version)
        };
        let scope = if d.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let gvk = serde_json::json!({"group": d.group, "version": d.version, "kind": d.kind});
        let response = |schema: Value| {
            if v3 {
                serde_json::json!({"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}})
            } else {
                serde_json::json!({"200": {"description": "OK", "schema": schema}})
            }
        };
        let one = serde_json::json!({"$ref": format!("{prefix}{}", d.definition)});
        let list = serde_json::json!({"$ref": format!("{prefix}{}List", d.definition)});
        out.insert(
            format!("{base}{scope}/{}", d.plural),
            serde_json::json!({"get": {"operationId": format!("list{}", d.kind), "x-kubernetes-action": "list",
                "x-kubernetes-group-version-kind": gvk, "responses": response(list)}}),
        );
        // Writes take `fieldValidation` (kube-sim enforces Strict on creates, replaces and
        // applies); kubectl looks for the parameter on the PATCH operation.
        let field_validation = serde_json::json!([{"name": "fieldValidation", "in": "query", "type": "string",
            "schema": {"type": "string"}, "uniqueItems": true}]);
        out.insert(
            format!("{base}{scope}/{}/{{name}}", d.plural),
            serde_json::json!({
                "get": {"operationId": format!("read{}", d.kind), "x-kubernetes-action": "get",
                        "x-kubernetes-group-version-kind": gvk, "responses": response(one.clone())},
                "put": {"operationId": format!("replace{}", d.kind), "x-kubernetes-action": "put",
                        "x-kubernetes-group-version-kind": gvk, "parameters": field_validation, "responses": response(one.clone())},
                "patch": {"operationId": format!("patch{}", d.kind), "x-kubernetes-action": "patch",
                          "x-kubernetes-group-version-kind": gvk, "parameters": field_validation, "responses": response(one)}}),
        );
    }
    out
}

/// Rewrite `#/definitions/X` refs to `#/components/schemas/X`.
fn v3_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, c) in m.iter_mut() {
                match c {
                    Value::String(r) if k == "$ref" => {
                        if let Some(name) = r.strip_prefix("#/definitions/") {
                            *r = format!("#/components/schemas/{name}");
                        }
                    }
                    _ => v3_refs(c),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(v3_refs),
        _ => {}
    }
}

fn info(kube_version: &str) -> Value {
    serde_json::json!({"title": "Kubernetes", "version": format!("v{}", kube_version.trim_start_matches('v'))})
}

/// `/openapi/v2`: every described kind in one Swagger 2.0 document.
pub fn v2(state: &crate::store::State, kube_version: &str) -> Value {
    let all = described(state);
    let refs: Vec<&Described> = all.iter().collect();
    serde_json::json!({
        "swagger": "2.0",
        "info": info(kube_version),
        "paths": paths(&refs, false),
        "definitions": closure(&refs),
    })
}

/// `api/v1` or `apis/{group}/{version}`: the path of a group version's v3 document.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// One group version's OpenAPI v3 document, or None when nothing is served there.
pub fn v3_group_version(
    state: &crate::store::State,
    kube_version: &str,
    gv: &str,
) -> Option<Value> {
    let all = described(state);
    let kinds: Vec<&Described> = all
        .iter()
        .filter(|d| gv_path(&d.group, &d.version) == gv)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut doc = serde_json::json!({
        "openapi": "3.0.0",
        "info": info(kube_version),
        "paths": paths(&kinds, true),
        "components": {"schemas": closure(&kinds)},
    });
    v3_refs(&mut doc);
    Some(doc)
}

/// `/openapi/v3`: each group version's document path, with a hash of its content (clients cache
/// by it, so it changes when the document does).
pub fn v3_discovery(state: &crate::store::State, kube_version: &str) -> Value {
    use sha2::Digest;
    let gvs: std::collections::BTreeSet<String> = described(state)
        .iter()
        .map(|d| gv_path(&d.group, &d.version))
        .collect();
    let mut paths = Map::new();
    for gv in gvs {
        let doc = v3_group_version(state, kube_version, &gv).unwrap_or_default();
        let hash = hex_upper(&sha2::Sha512::digest(doc.to_string().as_bytes()));
        paths.insert(
            gv.clone(),
            serde_json::json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={hash}")}),
        );
    }
    serde_json::json!({"paths": paths})
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Answer `/openapi/{rest}`: (content type, body), or None for a path that is not served.
pub fn serve(
    state: &crate::store::State,
    kube_version: &str,
    rest: &str,
) -> Option<(&'static str, String)> {
    let json = "application/json";
    match rest.trim_matches('/') {
        "v2" => Some((json, v2(state, kube_version).to_string())),
        "v3" => Some((json, v3_discovery(state, kube_version).to_string())),
        gv => {
            let gv = gv.strip_prefix("v3/")?;
            v3_group_version(state, kube_version, gv).map(|d| (json, d.to_string()))
        }
    }
}

/// `fieldValidation=Strict` (advertised on the documents' write operations, so kubectl's
/// `--validate=strict` asks the server instead of validating itself): a create, a replace or an
/// apply whose body has a field its schema does not declare is 400, as the apiserver answers.
/// Merge and JSON patches are partial and not checked here.
pub fn check_strict(
    rt: &crate::catalog::ResourceType,
    patch: bool,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<(), crate::error::ApiError> {
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let apply = ctype.starts_with("application/apply-patch");
    // The checks run on the object written: a subresource write is not one.
    if patch && !apply {
        return Ok(());
    }
    let Ok(obj) = crate::ops::parse_body(body) else {
        return Ok(()); // the write itself reports an unreadable body
    };
    let unknown = crate::shape::unknown_fields(&obj, crate::shape::for_type(rt));
    if unknown.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    Err(crate::error::ApiError::bad_request(format!(
        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
        rt.kind,
        rt.api_version(),
        rt.kind,
        listed.join(", ")
    )))
}
