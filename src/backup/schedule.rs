//! `wharf backup schedule`: the objects that back the model up on a schedule from inside the
//! cluster — a CronJob running wharf's image (`wharf backup create --keep N`: the backup, then
//! the retention)
//! under a ServiceAccount that can only read what a backup reads: in the model namespace the
//! Secrets (records, inputs, generated), the `wharf-platform` ConfigMap and Dex's objects; in
//! the cluster the CRDs (to find Dex's kinds) and the objects of wharf's kinds. No write verb
//! anywhere. The key comes from a Secret the user creates (`passphrase`), never from wharf.

use serde_json::{Value, json};

use super::objects::CrdKind;

pub const NAME: &str = "wharf-backup";

#[derive(Debug, Clone)]
pub struct Schedule {
    pub model: String,
    pub cron: String,
    pub keep: usize,
    pub to: String,
    pub image: String,
    /// The Secret holding `passphrase` (the user creates it).
    pub key_secret: String,
    /// The Secret holding AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and optionally
    /// AWS_ENDPOINT_URL, AWS_REGION) for the destination.
    pub s3_secret: String,
    /// MinIO's in-cluster S3 endpoint when the data is backed up too.
    pub s3_endpoint: Option<String>,
    /// wharf's kinds, whose objects the job lists in every namespace.
    pub kinds: Vec<CrdKind>,
}

impl Schedule {
    /// ServiceAccount, Role, RoleBinding, ClusterRole, ClusterRoleBinding, CronJob.
    pub fn render(&self) -> Vec<Value> {
        let ns = &self.model;
        let cluster_name = format!("{NAME}-{ns}");
        let labels =
            json!({"app.kubernetes.io/name": NAME, "app.kubernetes.io/managed-by": "wharf"});
        let mut cluster_rules = vec![json!({
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list"],
        })];
        let mut groups: Vec<&str> = self.kinds.iter().map(|k| k.group.as_str()).collect();
        groups.sort();
        groups.dedup();
        for g in groups {
            let resources: Vec<&str> = self
                .kinds
                .iter()
                .filter(|k| k.group == g)
                .map(|k| k.plural.as_str())
                .collect();
            cluster_rules
                .push(json!({"apiGroups": [g], "resources": resources, "verbs": ["list"]}));
        }
        // wharf's image holds the static binary and nothing else (no shell): one wharf command,
        // which prunes only after its backup succeeded.
        let mut args = vec![
            "/usr/local/bin/wharf".to_owned(),
            "backup".to_owned(),
            "create".into(),
            "-m".into(),
            ns.clone(),
            "--to".into(),
            self.to.clone(),
            "--passphrase-file".into(),
            "/var/run/wharf-backup/passphrase".into(),
            "--reason".into(),
            "scheduled".into(),
            "--keep".into(),
            self.keep.to_string(),
        ];
        match &self.s3_endpoint {
            Some(e) => args.extend(["--s3-endpoint".into(), e.clone()]),
            None => args.push("--no-data".into()),
        }
        vec![
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": NAME, "namespace": ns, "labels": labels}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels},
            "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
                {"apiGroups": [""], "resources": ["configmaps"],
                 "resourceNames": [crate::store::platform::CONFIG_MAP], "verbs": ["get"]},
                // To see that no run holds the model lock (never to take it).
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                 "resourceNames": [crate::store::lock::LEASE_NAME], "verbs": ["get"]},
                {"apiGroups": [super::objects::DEX_GROUP], "resources": ["*"], "verbs": ["list"]},
            ]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": NAME, "namespace": ns, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
                "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": cluster_name, "labels": labels},
                "rules": cluster_rules}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": cluster_name, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": cluster_name},
                "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}]}),
            json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels},
            "spec": {
                "schedule": self.cron,
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {"spec": {"backoffLimit": 1, "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": NAME,
                        "restartPolicy": "Never",
                        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{
                            "name": "backup",
                            "image": self.image,
                            "command": args,
                            "envFrom": [{"secretRef": {"name": self.s3_secret}}],
                            "volumeMounts": [{"name": "key", "mountPath": "/var/run/wharf-backup",
                                              "readOnly": true},
                                             {"name": "tmp", "mountPath": "/tmp"}],
                            "securityContext": {"allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "capabilities": {"drop": ["ALL"]}},
                        }],
                        // HOME is /tmp in wharf's image; the root file system is read-only.
                        "volumes": [{"name": "key", "secret": {"secretName": self.key_secret,
                            "items": [{"key": "passphrase", "path": "passphrase"}]}},
                                    {"name": "tmp", "emptyDir": {}}],
                    }}}},
            }}),
        ]
    }
}
