//! Server-side defaulting the clients rely on (Service cluster IPs and node ports, Secret
//! `stringData`, workload replicas, Job selectors and pod labels, Namespace phase) and the
//! allocators behind it (cluster IPs from 10.152.183.0/24 like MicroK8s, LoadBalancer pool,
//! node ports 30000-32767); and custom resources' structural-schema `default`s, applied the way
//! the apiextensions-apiserver applies them (`structural_defaults`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use base64::Engine;
use serde_json::{Value, json};

use crate::catalog::ResourceType;

/// Addresses and ports handed out to Services.
#[derive(Debug, Default)]
pub struct Allocator {
    cluster_ips: BTreeSet<u8>,
    lb_pool: Vec<Ipv4Addr>,
    /// Service uid -> LoadBalancer address.
    lb_used: BTreeMap<String, Ipv4Addr>,
    node_ports: BTreeSet<u16>,
}

/// Parse `10.64.140.43-10.64.140.49` (or a single address) into the addresses it covers.
pub fn parse_pool(spec: &str) -> Result<Vec<Ipv4Addr>, String> {
    let (a, b) = spec.split_once('-').unwrap_or((spec, spec));
    let parse = |s: &str| {
        s.trim().parse::<Ipv4Addr>().map_err(|e| format!("LoadBalancer pool \"{spec}\": \"{s}\" is not an IPv4 address ({e}); write it as FIRST-LAST, e.g. 10.64.140.43-10.64.140.49"))
    };
    let (a, b) = (u32::from(parse(a)?), u32::from(parse(b)?));
    if b < a || b - a > 65_535 {
        return Err(format!(
            "LoadBalancer pool \"{spec}\": the last address must follow the first (at most 65536 addresses)"
        ));
    }
    Ok((a..=b).map(Ipv4Addr::from).collect())
}

impl Allocator {
    pub fn new(lb_pool: Vec<Ipv4Addr>) -> Self {
        let mut cluster_ips = BTreeSet::new();
        cluster_ips.insert(1); // 10.152.183.1 is the `kubernetes` Service in MicroK8s.
        Allocator {
            cluster_ips,
            lb_pool,
            ..Default::default()
        }
    }

    fn cluster_ip(&mut self) -> Option<String> {
        let n = (2..=254u8).find(|n| !self.cluster_ips.contains(n))?;
        self.cluster_ips.insert(n);
        Some(format!("10.152.183.{n}"))
    }

    fn node_port(&mut self) -> Option<u16> {
        let p = (30000..=32767u16).find(|p| !self.node_ports.contains(p))?;
        self.node_ports.insert(p);
        Some(p)
    }

    /// A LoadBalancer address for the Service with this uid (the same one on every call).
    pub fn lb_ip(&mut self, uid: &str) -> Option<Ipv4Addr> {
        if let Some(ip) = self.lb_used.get(uid) {
            return Some(*ip);
        }
        let used: BTreeSet<Ipv4Addr> = self.lb_used.values().copied().collect();
        let ip = self.lb_pool.iter().copied().find(|ip| !used.contains(ip))?;
        self.lb_used.insert(uid.to_string(), ip);
        Some(ip)
    }

    /// Give back what a deleted object held.
    pub fn release(&mut self, obj: &Value) {
        if obj["kind"] != "Service" {
            return;
        }
        if let Some(n) = obj["spec"]["clusterIP"]
            .as_str()
            .and_then(|ip| ip.strip_prefix("10.152.183."))
            .and_then(|n| n.parse().ok())
        {
            self.cluster_ips.remove(&n);
        }
        for p in obj["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(np) = p["nodePort"].as_u64() {
                self.node_ports.remove(&(np as u16));
            }
        }
        if let Some(uid) = obj["metadata"]["uid"].as_str() {
            self.lb_used.remove(uid);
        }
    }
}

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut() {
        m.entry(key.to_string()).or_insert(v);
    }
}

/// Apply defaults to `obj` (the object about to be stored; `old` on updates). Deterministic given
/// `old`, so re-applying an unchanged manifest yields an identical object.
pub fn apply_defaults(
    rt: &ResourceType,
    obj: &mut Value,
    old: Option<&Value>,
    alloc: &mut Allocator,
) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => {
            let name = obj["metadata"]["name"].clone();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            if old.is_none() {
                obj["status"] = json!({"phase": "Active"});
                // The namespace controller's own finalizer, removed when the contents are gone.
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
            }
        }
        ("", "Secret") => {
            set_default(obj, "type", json!("Opaque"));
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                for (k, v) in sd {
                    let enc = base64::engine::general_purpose::STANDARD
                        .encode(v.as_str().unwrap_or_default());
                    obj["data"][k] = json!(enc);
                }
            }
        }
        ("", "Service") => service(obj, old, alloc),
        ("apps", "Deployment" | "StatefulSet") if obj["spec"].is_object() => {
            set_default(&mut obj["spec"], "replicas", json!(1));
        }
        ("batch", "Job") => {
            if obj["spec"].is_object() {
                set_default(&mut obj["spec"], "backoffLimit", json!(6));
                set_default(&mut obj["spec"], "completions", json!(1));
                set_default(&mut obj["spec"], "parallelism", json!(1));
            }
            if old.is_none() && obj["spec"]["manualSelector"] != json!(true) {
                let uid = obj["metadata"]["uid"].clone();
                let name = obj["metadata"]["name"].clone();
                if obj["spec"]["selector"].is_null() {
                    obj["spec"]["selector"] =
                        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
                }
                let labels = &mut obj["spec"]["template"]["metadata"]["labels"];
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", &uid),
                    ("controller-uid", &uid),
                    ("batch.kubernetes.io/job-name", &name),
                    ("job-name", &name),
                ] {
                    labels[k] = v.clone();
                }
            }
        }
        _ => {}
    }
}

fn service(obj: &mut Value, old: Option<&Value>, alloc: &mut Allocator) {
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let kind = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    if kind != "ExternalName" {
        let old_ip = old
            .and_then(|o| o["spec"]["clusterIP"].as_str())
            .filter(|s| !s.is_empty());
        let ip = match spec["clusterIP"].as_str() {
            Some(s) if !s.is_empty() => Some(s.to_string()),
            _ => old_ip.map(str::to_string).or_else(|| alloc.cluster_ip()),
        };
        if let Some(ip) = ip {
            spec["clusterIPs"] = json!([ip]);
            spec["clusterIP"] = json!(ip);
        }
    }
    let old_ports: Vec<Value> = old
        .and_then(|o| o["spec"]["ports"].as_array().cloned())
        .unwrap_or_default();
    let needs_node_port = kind == "NodePort" || kind == "LoadBalancer";
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports.iter_mut() {
            set_default(p, "protocol", json!("TCP"));
            let port = p["port"].clone();
            set_default(p, "targetPort", port);
            if needs_node_port && p["nodePort"].is_null() {
                let kept = old_ports
                    .iter()
                    .find(|o| o["port"] == p["port"] && o["name"] == p["name"])
                    .and_then(|o| o["nodePort"].as_u64());
                if let Some(np) = kept.map(|n| n as u16).or_else(|| alloc.node_port()) {
                    p["nodePort"] = json!(np);
                }
            }
        }
    }
}

/// Apply a CRD version's structural-schema `default`s to `value`, as the apiextensions-apiserver
/// does on create, update and read (its `structuraldefaulting.Default`): a property's default
/// is set only where the property is missing, or null while the schema does not allow null, and
/// only inside an object that exists (a default never creates its parent); defaults inside
/// `items` and `additionalProperties` apply to every element; a default is itself defaulted
/// below. A null the schema does not allow and that has no default is dropped, as the apiserver
/// prunes it before defaulting. `metadata` at the root is the apiserver's, never defaulted.
pub fn structural_defaults(schema: &Value, value: &mut Value) {
    default_value(schema, value, true);
}

fn default_value(schema: &Value, value: &mut Value, root: bool) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            for (k, prop) in props.into_iter().flatten() {
                if root && k == "metadata" {
                    continue;
                }
                let nullable = prop.get("nullable") == Some(&Value::Bool(true));
                let bad_null = map.get(k).is_some_and(Value::is_null) && !nullable;
                match prop.get("default") {
                    Some(d) if !map.contains_key(k) || bad_null => {
                        map.insert(k.clone(), d.clone());
                    }
                    None if bad_null => {
                        map.remove(k);
                    }
                    _ => {}
                }
            }
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, v) in map.iter_mut() {
                if root && k == "metadata" {
                    continue;
                }
                if let Some(child) = props.and_then(|p| p.get(k)).or(additional) {
                    default_value(child, v, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for v in items.iter_mut() {
                    // A null element the schema does not allow stays (the apiserver refuses it).
                    default_value(item_schema, v, false);
                }
            }
        }
        _ => {}
    }
}

/// Every `default` in a CRD version's schema, as (field path in the apiserver's CRD-error
/// style, the default, the schema it must satisfy). The apiserver refuses a CRD whose default
/// has fields the schema would prune or that fails the schema.
pub fn schema_defaults<'a>(
    schema: &'a Value,
    path: &str,
    out: &mut Vec<(String, &'a Value, &'a Value)>,
) {
    if let Some(d) = schema.get("default") {
        out.push((format!("{path}.default"), d, schema));
    }
    for (k, prop) in schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        schema_defaults(prop, &format!("{path}.properties[{k}]"), out);
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        schema_defaults(items, &format!("{path}.items"), out);
    }
    if let Some(a) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        schema_defaults(a, &format!("{path}.additionalProperties"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn structural_defaults_follow_the_apiserver_rules() {
        let schema = json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "default": "no"}}},
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "default": 1},
                "mode": {"type": "string", "default": "fast"},
                "note": {"type": "string"},
                "maybe": {"type": "string", "nullable": true, "default": "d"},
                "nested": {"type": "object", "properties": {"deep": {"type": "integer", "default": 7}}},
                "withDefault": {"type": "object", "default": {}, "properties": {"deep": {"type": "integer", "default": 3}}},
                "ports": {"type": "array", "items": {"type": "object", "properties": {
                    "protocol": {"type": "string", "default": "TCP"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                    "weight": {"type": "integer", "default": 10}}}}
            }}
        }});
        let mut obj = json!({"metadata": {}, "spec": {
            "mode": null, "note": null, "maybe": null, "replicas": 4,
            "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}],
            "labels": {"a": {}, "b": {"weight": 1}}
        }});
        structural_defaults(&schema, &mut obj);
        assert_eq!(
            obj,
            json!({"metadata": {}, "spec": {
                "replicas": 4, "mode": "fast", "maybe": null,
                "withDefault": {"deep": 3},
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                "labels": {"a": {"weight": 10}, "b": {"weight": 1}}
            }}),
            "set where missing or a non-nullable null; a nullable null stays; a null without a \
             default goes; `nested` is not created for its child's default; metadata untouched"
        );
        // No spec at all: nothing is created, the root has no default for it.
        let mut bare = json!({"metadata": {"name": "x"}});
        structural_defaults(&schema, &mut bare);
        assert_eq!(bare, json!({"metadata": {"name": "x"}}));
    }

    #[test]
    fn pool_parses_a_range_and_rejects_garbage() {
        assert_eq!(parse_pool("10.64.140.43-10.64.140.49").unwrap().len(), 7);
        assert!(parse_pool("10.0.0.9-10.0.0.1").is_err());
        assert!(parse_pool("nope").unwrap_err().contains("FIRST-LAST"));
    }

    #[test]
    fn service_defaults_are_stable_across_reapplies() {
        let rt = Catalog::default().find("", "v1", "services").unwrap();
        let mut alloc = Allocator::new(vec![]);
        let manifest = json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let mut first = manifest.clone();
        apply_defaults(&rt, &mut first, None, &mut alloc);
        assert_eq!(first["spec"]["clusterIP"], json!("10.152.183.2"));
        assert_eq!(first["spec"]["ports"][0]["targetPort"], json!(80));
        let mut again = first.clone();
        again["spec"]["ports"] = manifest["spec"]["ports"].clone();
        again["spec"].as_object_mut().unwrap().remove("clusterIP");
        apply_defaults(&rt, &mut again, Some(&first), &mut alloc);
        assert_eq!(again, first);
    }

    #[test]
    fn secret_string_data_becomes_base64_data() {
        let rt = Catalog::default().find("", "v1", "secrets").unwrap();
        let mut s = json!({"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "hi"}});
        apply_defaults(&rt, &mut s, None, &mut Allocator::default());
        assert_eq!(s["data"]["k"], json!("aGk="));
        assert_eq!(s.get("stringData"), None);
        assert_eq!(s["type"], json!("Opaque"));
    }
}
