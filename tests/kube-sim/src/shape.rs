//! What server-side apply needs to know about an object's schema, read the way the real
//! apiserver's structured-merge-diff reads it: which lists merge by key
//! (`x-kubernetes-list-type: map` with `x-kubernetes-list-map-keys`), which by value (`set`), which
//! are replaced whole (`atomic`, also the default when a list says nothing), and which maps are
//! replaced whole (`x-kubernetes-map-type: atomic`). Built-in kinds read the official OpenAPI
//! definitions (`openapi.rs`), custom resources their CRD version's structural schema. Where there
//! is no schema (an unknown kind, `x-kubernetes-preserve-unknown-fields`), maps merge by key and
//! lists are atomic, as for real.

use serde_json::{Map, Value};

use crate::catalog::ResourceType;

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    Atomic,
    Set,
    /// Elements are identified by these fields (sorted as the schema lists them).
    Map(Vec<String>),
}

/// A position in a schema: a node and the definitions its `$ref`s point into.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    node: Option<&'a Value>,
    defs: Option<&'a Map<String, Value>>,
    /// The object's root, where `metadata` is ObjectMeta whatever the schema says (CRD schemas
    /// may not describe it).
    root: bool,
}

impl<'a> Shape<'a> {
    /// No schema: maps granular, lists atomic.
    pub const UNKNOWN: Shape<'static> = Shape {
        node: None,
        defs: None,
        root: false,
    };

    /// The root of an object described by `node`, whose `$ref`s name entries of `defs`.
    pub fn root(node: &'a Value, defs: Option<&'a Map<String, Value>>) -> Self {
        Shape {
            node: Some(node),
            defs,
            root: true,
        }
    }

    /// A node inside an object (not its root).
    pub fn new(node: &'a Value, defs: Option<&'a Map<String, Value>>) -> Self {
        Shape {
            node: Some(node),
            defs,
            root: false,
        }
    }

    fn at(&self, node: Option<&'a Value>) -> Shape<'a> {
        Shape {
            node,
            defs: self.defs,
            root: false,
        }
    }

    /// The node with `$ref` (or OpenAPI v3's `allOf: [{$ref}]`) followed.
    fn resolved(&self) -> Option<&'a Value> {
        let mut node = self.node?;
        for _ in 0..32 {
            let reference = node["$ref"].as_str().or_else(|| {
                node["allOf"]
                    .as_array()
                    .filter(|a| a.len() == 1)
                    .and_then(|a| a[0]["$ref"].as_str())
            });
            match reference {
                Some(r) => node = self.defs?.get(r.rsplit('/').next()?)?,
                None => return Some(node),
            }
        }
        None
    }

    /// The schema of field `name` of this map (a declared property, else `additionalProperties`).
    pub fn field(&self, name: &str) -> Shape<'a> {
        if self.root && name == "metadata" {
            return crate::openapi::object_meta();
        }
        let Some(node) = self.resolved() else {
            return Shape::UNKNOWN;
        };
        let child = node["properties"]
            .get(name)
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()));
        self.at(child)
    }

    /// The schema of this list's elements.
    pub fn items(&self) -> Shape<'a> {
        self.at(self.resolved().and_then(|n| n.get("items")))
    }

    pub fn list_type(&self) -> ListType {
        let Some(node) = self.resolved() else {
            return ListType::Atomic;
        };
        match node["x-kubernetes-list-type"].as_str() {
            Some("set") => ListType::Set,
            Some("map") => {
                let keys: Vec<String> = node["x-kubernetes-list-map-keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect();
                if keys.is_empty() {
                    ListType::Atomic
                } else {
                    ListType::Map(keys)
                }
            }
            _ => ListType::Atomic,
        }
    }

    /// `x-kubernetes-map-type: atomic` (a struct or map replaced whole, like a LabelSelector).
    pub fn atomic_map(&self) -> bool {
        self.resolved()
            .is_some_and(|n| n["x-kubernetes-map-type"] == "atomic")
    }

    /// The schema default of field `name`, used for a map-list key an element leaves out
    /// (a container port's `protocol` is `TCP`).
    pub fn default_of(&self, name: &str) -> Option<&'a Value> {
        self.field(name).resolved()?.get("default")
    }
}

/// Fields of `obj` its schema does not declare, as `spec.containers[0].bogus` (what
/// `fieldValidation=Strict` refuses). Only where the schema is known and closed: no schema,
/// `additionalProperties` and `x-kubernetes-preserve-unknown-fields` accept anything.
pub fn unknown_fields(obj: &Value, shape: Shape) -> Vec<String> {
    fn walk(v: &Value, shape: Shape, path: &str, out: &mut Vec<String>) {
        let node = shape.resolved();
        match v {
            Value::Object(m) => {
                let closed = node.is_some_and(|n| {
                    n["properties"].is_object()
                        && n.get("additionalProperties").is_none_or(|a| a == false)
                        && n["x-kubernetes-preserve-unknown-fields"] != true
                });
                for (k, c) in m {
                    let here = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let declared = node.is_some_and(|n| n["properties"].get(k).is_some());
                    if closed && !declared && !(shape.root && k == "metadata") {
                        out.push(here);
                    } else {
                        walk(c, shape.field(k), &here, out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, c) in items.iter().enumerate() {
                    walk(c, shape.items(), &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(obj, shape, "", &mut out);
    out
}

/// The shape of objects of a served type.
pub fn for_type(rt: &ResourceType) -> Shape<'_> {
    match &rt.crd {
        Some(info) => match &info.validator {
            Some(schema) => Shape::root(schema.structural(), None),
            None => Shape {
                root: true,
                ..Shape::UNKNOWN
            },
        },
        None => crate::openapi::builtin_kind(&rt.group, &rt.version, &rt.kind).unwrap_or(Shape {
            root: true,
            ..Shape::UNKNOWN
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn built_in_list_types_come_from_the_official_definitions() {
        let deploy = crate::openapi::builtin_kind("apps", "v1", "Deployment").unwrap();
        let pod = deploy.field("spec").field("template").field("spec");
        let containers = pod.field("containers");
        assert_eq!(containers.list_type(), ListType::Map(vec!["name".into()]));
        let c = containers.items();
        assert_eq!(
            c.field("env").list_type(),
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(
            c.field("ports").list_type(),
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert_eq!(
            c.field("ports").items().default_of("protocol"),
            Some(&json!("TCP"))
        );
        assert_eq!(
            c.field("volumeMounts").list_type(),
            ListType::Map(vec!["mountPath".into()])
        );
        assert_eq!(
            pod.field("volumes").list_type(),
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(c.field("args").list_type(), ListType::Atomic);
        assert!(deploy.field("spec").field("selector").atomic_map());
        assert_eq!(
            deploy.field("metadata").field("finalizers").list_type(),
            ListType::Set
        );
        assert_eq!(
            deploy
                .field("metadata")
                .field("ownerReferences")
                .list_type(),
            ListType::Map(vec!["uid".into()])
        );
        // Labels are a map of strings: each key its own field.
        assert!(!deploy.field("metadata").field("labels").atomic_map());
    }

    #[test]
    fn unknown_fields_are_named_where_the_schema_is_closed() {
        let deploy = crate::openapi::builtin_kind("apps", "v1", "Deployment").unwrap();
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"any": "x"}},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 1, "bogus": 1}]}]}},
                     "replicaz": 2}});
        assert_eq!(
            unknown_fields(&obj, deploy),
            [
                "spec.replicaz",
                "spec.template.spec.containers[0].ports[0].bogus"
            ]
        );
        let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        assert!(unknown_fields(&json!({"anything": 1}), Shape::root(&open, None)).is_empty());
    }

    #[test]
    fn crd_lists_are_atomic_unless_their_schema_says_otherwise() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "plain": {"type": "array", "items": {"type": "string"}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "workers": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}}}});
        let root = Shape::root(&schema, None);
        let spec = root.field("spec");
        assert_eq!(spec.field("plain").list_type(), ListType::Atomic);
        assert_eq!(spec.field("tags").list_type(), ListType::Set);
        assert_eq!(
            spec.field("workers").list_type(),
            ListType::Map(vec!["name".into()])
        );
        // metadata is ObjectMeta even though the CRD schema does not say so.
        assert_eq!(
            root.field("metadata").field("finalizers").list_type(),
            ListType::Set
        );
    }
}
