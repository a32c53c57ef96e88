//! `/version` and API discovery (`/api`, `/api/v1`, `/apis`, `/apis/{group}`,
//! `/apis/{group}/{version}`) in the legacy (non-aggregated) JSON form kube-rs `Discovery::run` reads.

use serde_json::{Value, json};

use crate::catalog::{self, Catalog};

pub fn version(kube_version: &str) -> Value {
    let v = kube_version.trim_start_matches('v');
    let mut parts = v.split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("33");
    json!({
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "gitVersion": format!("v{v}"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn api_versions(server_addr: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_addr}]
    })
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// The groups of aggregated API versions (`group/version`) whose APIService does not answer.
fn unavailable_groups(unavailable: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for gv in unavailable {
        let Some((g, v)) = gv.split_once('/') else {
            continue;
        };
        match out.iter_mut().find(|(name, _)| name == g) {
            Some((_, vs)) => vs.push(v.to_string()),
            None => out.push((g.to_string(), vec![v.to_string()])),
        }
    }
    out
}

/// Every group: the catalog's, then the registered but unavailable aggregated ones (the
/// aggregator lists an APIService's group whether or not its backend answers).
fn all_groups(c: &Catalog, unavailable: &[String]) -> Vec<(String, Vec<String>)> {
    let mut groups = c.groups();
    for (g, vs) in unavailable_groups(unavailable) {
        if !groups.iter().any(|(name, _)| *name == g) {
            groups.push((g, vs));
        }
    }
    groups
}

pub fn api_group_list(c: &Catalog, unavailable: &[String]) -> Value {
    let groups: Vec<Value> = all_groups(c, unavailable)
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(c: &Catalog, unavailable: &[String], group: &str) -> Option<Value> {
    let (_, vs) = all_groups(c, unavailable)
        .into_iter()
        .find(|(g, _)| g == group)?;
    let mut g = group_entry(group, &vs);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

pub fn resource_list(c: &Catalog, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for t in c.in_group_version(group, version) {
        resources.push(json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": catalog::verbs(),
            "shortNames": t.short_names,
        }));
        // `/scale` is not served, so it is not advertised either.
        let mut subs = Vec::new();
        if t.status {
            subs.push(("status", t.kind.clone(), json!(["get", "patch", "update"])));
        }
        if t.group.is_empty() && t.plural == "pods" {
            subs.push(("log", t.kind.clone(), json!(["get"])));
        }
        for (sub, kind, verbs) in subs {
            resources.push(json!({"name": format!("{}/{sub}", t.plural), "singularName": "", "namespaced": t.namespaced, "kind": kind, "verbs": verbs}));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// The content type of aggregated discovery (what clients ask for in `Accept`).
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Aggregated discovery v2 (`/api` or `/apis` with the aggregated `Accept`): every group, version
/// and resource in one document. An unavailable aggregated version is listed `Stale`, without
/// resources (the aggregator never got them).
pub fn aggregated(c: &Catalog, core: bool, unavailable: &[String]) -> Value {
    let groups: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        all_groups(c, unavailable)
    };
    let items: Vec<Value> = groups
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = c
                        .in_group_version(group, v)
                        .map(|t| {
                            let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
                            let subs: Vec<Value> = if t.status {
                                vec![json!({"subresource": "status", "responseKind": gvk, "verbs": ["get", "patch", "update"]})]
                            } else {
                                vec![]
                            };
                            json!({
                                "resource": t.plural, "responseKind": gvk,
                                "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": t.singular, "verbs": catalog::verbs(),
                                "shortNames": t.short_names, "subresources": subs,
                            })
                        })
                        .collect();
                    let gv = format!("{group}/{v}");
                    let freshness = if unavailable.contains(&gv) { "Stale" } else { "Current" };
                    json!({"version": v, "resources": resources, "freshness": freshness})
                })
                .collect();
            json!({"metadata": {"name": group}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}
