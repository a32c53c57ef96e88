//! The resource types the simulator serves: the built-in kinds wharf and its operators use, plus
//! the kinds that created CustomResourceDefinitions add. Discovery, routing and RBAC all read this.

use std::sync::Arc;

use serde_json::Value;

/// One served resource (group, version, plural) and what the apiserver says about it.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Has a `/status` subresource: main writes ignore `.status`, status writes ignore the rest.
    pub status: bool,
    /// Has a `/scale` subresource (listed in discovery only).
    pub scale: bool,
    /// Only stored: no verbs beyond the usual CRUD (used for webhook configurations).
    pub crd: Option<CrdInfo>,
}

/// What a CRD-backed type carries besides its names.
#[derive(Debug, Clone)]
pub struct CrdInfo {
    /// The CRD's `metadata.name` (`<plural>.<group>`).
    pub crd_name: String,
    /// The version's `openAPIV3Schema`, already converted for validation.
    pub validator: Option<Arc<crate::schema::CrSchema>>,
    /// The version's structural `openAPIV3Schema` as written, for its `default`s.
    pub structural: Option<Arc<Value>>,
}

impl ResourceType {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub fn verbs() -> Vec<&'static str> {
    ALL_VERBS.to_vec()
}

/// (group, version, kind, plural, namespaced, shortNames, status, scale)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
    bool,
);

const BUILTINS: &[Row] = &[
    (
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        true,
        false,
    ),
    (
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        false,
        false,
    ),
    ("", "v1", "Secret", "secrets", true, &[], false, false),
    ("", "v1", "Service", "services", true, &["svc"], true, false),
    (
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        false,
        false,
    ),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
        true,
        false,
    ),
    ("", "v1", "Pod", "pods", true, &["po"], true, false),
    ("", "v1", "Node", "nodes", false, &["no"], true, false),
    ("", "v1", "Event", "events", true, &["ev"], false, false),
    (
        "",
        "v1",
        "Endpoints",
        "endpoints",
        true,
        &["ep"],
        false,
        false,
    ),
    // Stored only (no quota accounting, no admission defaults): what the workspaces operator writes.
    (
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        true,
        &["quota"],
        true,
        false,
    ),
    (
        "",
        "v1",
        "LimitRange",
        "limitranges",
        true,
        &["limits"],
        false,
        false,
    ),
    (
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        true,
        true,
    ),
    (
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        &["sts"],
        true,
        true,
    ),
    (
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        true,
        &["ds"],
        true,
        false,
    ),
    ("batch", "v1", "Job", "jobs", true, &[], true, false),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        false,
        false,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        true,
        false,
    ),
    (
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        &[],
        false,
        false,
    ),
    (
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
        true,
        false,
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &["netpol"],
        false,
        false,
    ),
    (
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
        &["sc"],
        false,
        false,
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
        true,
        false,
    ),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["hpa"],
        true,
        false,
    ),
    (
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        false,
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
        &[],
        false,
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
        &[],
        false,
        false,
    ),
];

/// All served types: built-ins first (in discovery order), then CRD kinds.
#[derive(Debug, Clone)]
pub struct Catalog {
    types: Vec<Arc<ResourceType>>,
}

impl Default for Catalog {
    fn default() -> Self {
        let types = BUILTINS
            .iter()
            .map(
                |&(group, version, kind, plural, namespaced, short, status, scale)| {
                    Arc::new(ResourceType {
                        group: group.into(),
                        version: version.into(),
                        kind: kind.into(),
                        plural: plural.into(),
                        singular: kind.to_lowercase(),
                        namespaced,
                        short_names: short.iter().map(|s| s.to_string()).collect(),
                        status,
                        scale,
                        crd: None,
                    })
                },
            )
            .collect();
        Catalog { types }
    }
}

impl Catalog {
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// Look a type up by `apiVersion` + `kind` (for the test-side `Simulator::get`).
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = split_api_version(api_version);
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    /// Any version of (group, plural): storage is shared between versions.
    pub fn any_version(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural)
            .cloned()
    }

    pub fn all(&self) -> &[Arc<ResourceType>] {
        &self.types
    }

    /// Groups (non-core) in first-seen order, each with its versions.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, vs)) => {
                    if !vs.contains(&t.version) {
                        vs.push(t.version.clone())
                    }
                }
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        out
    }

    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ResourceType>> {
        self.types
            .iter()
            .filter(move |t| t.group == group && t.version == version)
    }

    /// Replace the kinds a CRD serves (called on CRD create/update/delete).
    pub fn set_crd_types(&mut self, crd_name: &str, types: Vec<ResourceType>) {
        self.types
            .retain(|t| t.crd.as_ref().is_none_or(|c| c.crd_name != crd_name));
        self.types.extend(types.into_iter().map(Arc::new));
    }
}

pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The types a CRD object declares, one per served version. Errors are 422 causes.
pub fn types_from_crd(crd: &Value) -> Result<Vec<ResourceType>, Vec<(String, String)>> {
    let name = crd["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    let mut causes = Vec::new();
    if group.is_empty() {
        causes.push(("spec.group".into(), "Required value".into()));
    }
    if plural.is_empty() {
        causes.push(("spec.names.plural".into(), "Required value".into()));
    }
    if kind.is_empty() {
        causes.push(("spec.names.kind".into(), "Required value".into()));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let scope = spec["scope"].as_str().unwrap_or_default();
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push((
            "spec.scope".into(),
            format!(
                "Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
            ),
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        causes.push((
            "spec.versions".into(),
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
    let mut out = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        if v["served"] == Value::Bool(false) {
            continue;
        }
        let version = v["name"].as_str().unwrap_or_default().to_string();
        let schema_path = format!("spec.versions[{i}].schema.openAPIV3Schema");
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            crate::cel_compile::check_schema(schema, &schema_path, true, &mut causes);
            causes.extend(default_causes(schema, &schema_path));
        }
        let validator = match v.pointer("/schema/openAPIV3Schema") {
            Some(schema) => match crate::schema::CrSchema::new(schema) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    causes.push((
                        format!("spec.versions[{i}].schema.openAPIV3Schema"),
                        format!("Invalid value: {e}"),
                    ));
                    None
                }
            },
            None => None,
        };
        out.push(ResourceType {
            group: group.into(),
            version,
            kind: kind.into(),
            plural: plural.into(),
            singular: names["singular"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| kind.to_lowercase()),
            namespaced: scope == "Namespaced",
            short_names: names["shortNames"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            status: v.pointer("/subresources/status").is_some(),
            scale: v.pointer("/subresources/scale").is_some(),
            crd: Some(CrdInfo {
                crd_name: name.clone(),
                validator,
                structural: v
                    .pointer("/schema/openAPIV3Schema")
                    .map(|s| Arc::new(s.clone())),
            }),
        });
    }
    if causes.is_empty() {
        Ok(out)
    } else {
        Err(causes)
    }
}

/// The apiserver refuses a CRD whose `default`s would be pruned or fail their own schema
/// ("defaults must be pruned and must validate", apiextensions `validation.go`).
fn default_causes(schema: &Value, path: &str) -> Vec<(String, String)> {
    let mut defaults = Vec::new();
    crate::defaults::schema_defaults(schema, path, &mut defaults);
    let mut causes = Vec::new();
    for (field, default, sub) in defaults {
        let Ok(check) = crate::schema::CrSchema::new(sub) else {
            continue; // the schema itself is refused below
        };
        let mut pruned = default.clone();
        check.prune(&mut pruned);
        if &pruned != default {
            causes.push((
                field,
                format!("Invalid value: {default}: must not have unknown fields"),
            ));
            continue;
        }
        // `validate` drops a root `metadata`; a default is never a whole object with one.
        for (f, msg) in check.validate(default) {
            causes.push((field.clone(), format!("{msg} (at {f})")));
        }
    }
    causes
}
