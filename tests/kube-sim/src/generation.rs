//! `metadata.generation`: only kinds whose registry strategy sets it have one (1 on create, +1
//! when the spec changes). ConfigMaps, Secrets, Services, ServiceAccounts, Namespaces, claims,
//! RBAC objects, Leases, Events and StorageClasses have none, and a client that waits on
//! `observedGeneration` for them would wait forever on a real cluster. Custom resources always have
//! one: with a `/status` subresource it moves when anything but metadata and status changes,
//! without one when anything but metadata does.

use serde_json::Value;

use crate::catalog::ResourceType;

/// (group, kind) of the served built-ins the real apiserver stores without a generation.
const WITHOUT: &[(&str, &str)] = &[
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "Service"),
    ("", "ServiceAccount"),
    ("", "Namespace"),
    ("", "PersistentVolumeClaim"),
    ("", "PersistentVolume"),
    ("", "Endpoints"),
    ("", "ResourceQuota"),
    ("", "LimitRange"),
    ("", "Event"),
    ("", "Node"),
    ("events.k8s.io", "Event"),
    ("coordination.k8s.io", "Lease"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("apiregistration.k8s.io", "APIService"),
];

/// Whether objects of this type carry `metadata.generation`.
pub fn tracked(rt: &ResourceType) -> bool {
    rt.crd.is_some() || !WITHOUT.iter().any(|(g, k)| *g == rt.group && *k == rt.kind)
}

/// The generation `new` gets when it replaces `old` (None: the type has none).
pub fn next(rt: &ResourceType, old: &Value, new: &Value) -> Option<i64> {
    if !tracked(rt) {
        return None;
    }
    let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
    let spec_part = |v: &Value| {
        let mut c = v.clone();
        if let Some(m) = c.as_object_mut() {
            m.remove("metadata");
            if rt.status || rt.crd.is_none() {
                m.remove("status");
            }
        }
        c
    };
    Some(if spec_part(old) != spec_part(new) {
        g + 1
    } else {
        g
    })
}
