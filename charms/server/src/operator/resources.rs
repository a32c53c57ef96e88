//! The objects one InferenceService becomes, as server-side-apply bodies: a wharf-server
//! Deployment with the model mounted read-only, a Service named like the InferenceService on the
//! gateway's model port (that Service *is* the route: the gateway proxies `/models/<name>/` to
//! it), and a HorizontalPodAutoscaler when `maxReplicas > minReplicas`.
//!
//! Every object carries a controller ownerReference, so deleting the InferenceService removes
//! them by garbage collection; the operator never deletes anything but a no-longer-wanted HPA.

use std::collections::BTreeMap;

use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::config::OperatorConfig;
use super::storage::ModelSource;
use crate::crd::InferenceService;

/// The port wharf-server listens on inside the pod.
pub const CONTAINER_PORT: u16 = 8080;
/// The V2 gRPC port, in the pod and on the Service (KServe's).
pub const GRPC_PORT: u16 = 8081;
/// Where the model repository is mounted; the model is at `<MODEL_ROOT>/<model>`.
pub const MODEL_ROOT: &str = "/models";
/// The label naming the InferenceService an object belongs to.
pub const ISVC_LABEL: &str = "wharf.dev/inferenceservice";
/// The `managed-by` value of every object the operator creates (and what it watches).
pub const MANAGED_BY: &str = "wharf-server-operator";
/// CPU utilisation the HPA aims for.
pub const TARGET_CPU_PERCENT: i32 = 80;

/// Selects the model server pods of one InferenceService.
pub fn selector(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "wharf-server".into()),
        (ISVC_LABEL.into(), name.into()),
    ])
}

/// The labels of every object (and pod) of one InferenceService.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    let mut labels = selector(name);
    labels.extend([
        ("app.kubernetes.io/instance".into(), name.into()),
        ("app.kubernetes.io/component".into(), "predictor".into()),
        ("app.kubernetes.io/part-of".into(), "wharf".into()),
        ("app.kubernetes.io/managed-by".into(), MANAGED_BY.into()),
    ]);
    labels
}

/// The label selector the operator's watches use for its own objects.
pub fn managed_selector() -> String {
    format!("app.kubernetes.io/managed-by={MANAGED_BY}")
}

fn metadata(isvc: &InferenceService) -> Value {
    let name = isvc.name_any();
    json!({
        "name": name,
        "namespace": isvc.namespace(),
        "labels": labels(&name),
        "ownerReferences": [isvc.controller_owner_ref(&())],
    })
}

/// Whether the replica count is the HPA's to set.
pub fn autoscaled(isvc: &InferenceService) -> bool {
    isvc.spec.max_replicas > isvc.spec.min_replicas
}

/// The field manager that keeps `spec.replicas` while it passes from the operator to the HPA.
pub fn handover_manager(operator_manager: &str) -> String {
    format!("{operator_manager}-handover-to-hpa")
}

/// The model server Deployment.
pub fn deployment(isvc: &InferenceService, source: &ModelSource, config: &OperatorConfig) -> Value {
    let name = isvc.name_any();
    let model = &isvc.spec.model;
    let policy = match model.version {
        Some(v) => format!("specific:{v}"),
        None => "latest".into(),
    };
    let mount_path = format!("{MODEL_ROOT}/{}", model.name);
    let model_path = source.model_path(&model.name);
    let mut args = vec![
        "serve".to_string(),
        format!("--model-repository={MODEL_ROOT}"),
        format!("--port={CONTAINER_PORT}"),
        format!("--grpc-port={GRPC_PORT}"),
        format!("--version-policy={policy}"),
    ];
    let mut env = None;
    let (volume, mount) = match source {
        ModelSource::Pvc { claim, .. } => (
            json!({"name": "model", "persistentVolumeClaim": {"claimName": claim, "readOnly": true}}),
            json!({"name": "model", "mountPath": mount_path, "subPath": model_path, "readOnly": true}),
        ),
        ModelSource::Host { .. } => (
            json!({"name": "model", "hostPath": {"path": model_path, "type": "Directory"}}),
            json!({"name": "model", "mountPath": mount_path, "readOnly": true}),
        ),
        // The server downloads the model into a scratch volume (the root filesystem is
        // read-only) and polls the bucket for new versions; credentials by secretKeyRef.
        ModelSource::S3 { uri } => {
            args[1] = format!("--model-repository={uri}");
            args.push(format!("--only-model={}", model.name));
            args.push(format!("--cache-dir={MODEL_ROOT}"));
            env = Some(wharf_model::location::pod_env(
                &config.s3_secret,
                &config.s3_endpoint,
                &config.s3_region,
            ));
            (
                json!({"name": "model", "emptyDir": {}}),
                json!({"name": "model", "mountPath": MODEL_ROOT}),
            )
        }
    };
    let resources = match &isvc.spec.resources {
        Some(r) => serde_json::to_value(r).unwrap_or_else(|_| json!({})),
        // The HPA measures CPU against the request, so there must be one.
        None => json!({
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "1Gi"},
        }),
    };
    let mut spec = json!({
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": selector(&name)},
        "template": {
            "metadata": {"labels": labels(&name)},
            "spec": {
                // wharf-server never talks to the Kubernetes API.
                "automountServiceAccountToken": false,
                "enableServiceLinks": false,
                "securityContext": {
                    "runAsNonRoot": true,
                    "runAsUser": 65532,
                    "runAsGroup": 65532,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [{
                    "name": "server",
                    "image": config.server_image,
                    "imagePullPolicy": "IfNotPresent",
                    "args": args,
                    "ports": [
                        {"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"},
                        {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
                    ],
                    "readinessProbe": {
                        "httpGet": {"path": "/v2/health/ready", "port": "http"},
                        "periodSeconds": 5,
                    },
                    "livenessProbe": {
                        "httpGet": {"path": "/v2/health/live", "port": "http"},
                        "initialDelaySeconds": 10,
                        "periodSeconds": 20,
                    },
                    "resources": resources,
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "readOnlyRootFilesystem": true,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [mount],
                }],
                "volumes": [volume],
            },
        },
    });
    if let Some(env) = env {
        spec["template"]["spec"]["containers"][0]["env"] = env;
    }
    // With an HPA the replica count is its field: applying one here would fight it.
    if !autoscaled(isvc) {
        spec["replicas"] = json!(isvc.spec.min_replicas);
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(isvc), "spec": spec})
}

/// The Service the gateway routes `/models/<name>/` to.
pub fn service(isvc: &InferenceService, config: &OperatorConfig) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(isvc),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(&isvc.name_any()),
            // The gateway routes HTTP only; gRPC clients in the cluster use the grpc port
            // (status.grpcAddress). appProtocol tells meshes and proxies it is HTTP/2 cleartext.
            "ports": [
                {"name": "http", "port": config.model_port, "targetPort": "http", "protocol": "TCP"},
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"},
            ],
        },
    })
}

/// The autoscaler, when there is a range to scale in. Without the HPAScaleToZero feature gate an
/// HPA cannot go below one replica, so `minReplicas: 0` autoscales from 1.
pub fn hpa(isvc: &InferenceService) -> Option<Value> {
    autoscaled(isvc).then(|| {
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(isvc),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": isvc.name_any()},
                "minReplicas": isvc.spec.min_replicas.max(1),
                "maxReplicas": isvc.spec.max_replicas,
                "metrics": [{
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": TARGET_CPU_PERCENT}},
                }],
            },
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::storage;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::Service;

    fn isvc(min: i32, max: i32, uri: &str, version: Option<i64>) -> InferenceService {
        let mut isvc: InferenceService = serde_json::from_value(json!({
            "apiVersion": "wharf.dev/v1alpha1", "kind": "InferenceService",
            "metadata": {"name": "fashion", "namespace": "kubeflow", "uid": "u-1"},
            "spec": {"model": {"name": "fashion-mnist", "storageUri": uri}, "minReplicas": min, "maxReplicas": max},
        }))
        .unwrap();
        isvc.spec.model.version = version;
        isvc
    }

    #[test]
    fn the_deployment_mounts_the_models_directory_of_the_claim_read_only() {
        let isvc = isvc(2, 2, "pvc://models/repo", Some(3));
        let source = storage::parse(&isvc.spec.model.storage_uri).unwrap();
        let config = OperatorConfig::new("kubeflow", "wharf.local/wharf-server:0.1.0");
        let value = deployment(&isvc, &source, &config);
        let d: Deployment = serde_json::from_value(value.clone()).unwrap();
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("wharf.local/wharf-server:0.1.0"));
        assert_eq!(
            c.args.as_ref().unwrap(),
            &[
                "serve",
                "--model-repository=/models",
                "--port=8080",
                "--grpc-port=8081",
                "--version-policy=specific:3"
            ]
        );
        let mount = &c.volume_mounts.as_ref().unwrap()[0];
        assert_eq!(mount.mount_path, "/models/fashion-mnist");
        assert_eq!(mount.sub_path.as_deref(), Some("repo/fashion-mnist"));
        assert_eq!(mount.read_only, Some(true));
        let claim = pod.volumes.unwrap()[0]
            .persistent_volume_claim
            .clone()
            .unwrap();
        assert_eq!(claim.claim_name, "models");
        let owner = &d.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("InferenceService", "u-1", Some(true))
        );
        assert_eq!(
            spec.selector.match_labels.unwrap(),
            selector("fashion"),
            "the selector is the stable subset of the labels"
        );
    }

    #[test]
    fn a_host_directory_is_mounted_without_a_sub_path() {
        let isvc = isvc(1, 1, "file:///srv/models", None);
        let source = storage::parse(&isvc.spec.model.storage_uri).unwrap();
        let value = deployment(&isvc, &source, &OperatorConfig::new("kubeflow", "img"));
        let pod = &value["spec"]["template"]["spec"];
        assert_eq!(
            pod["volumes"][0]["hostPath"],
            json!({"path": "/srv/models/fashion-mnist", "type": "Directory"})
        );
        assert!(pod["containers"][0]["volumeMounts"][0]["subPath"].is_null());
        assert_eq!(
            pod["containers"][0]["args"][4],
            json!("--version-policy=latest")
        );
    }

    #[test]
    fn an_s3_model_is_downloaded_by_the_pod_with_credentials_from_the_secret() {
        let isvc = isvc(1, 1, "s3://wharf/models/", Some(2));
        let source = storage::parse(&isvc.spec.model.storage_uri).unwrap();
        let value = deployment(&isvc, &source, &OperatorConfig::new("kubeflow", "img"));
        let d: Deployment = serde_json::from_value(value).unwrap();
        let pod = d.spec.unwrap().template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(
            c.args.as_ref().unwrap(),
            &[
                "serve",
                "--model-repository=s3://wharf/models",
                "--port=8080",
                "--grpc-port=8081",
                "--version-policy=specific:2",
                "--only-model=fashion-mnist",
                "--cache-dir=/models",
            ]
        );
        let env = c.env.as_ref().unwrap();
        let secret_ref = |name: &str| {
            let var = env.iter().find(|e| e.name == name).unwrap();
            let r = var
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .clone()
                .unwrap();
            (r.name, r.key)
        };
        assert_eq!(
            secret_ref("AWS_ACCESS_KEY_ID"),
            ("minio-credentials".into(), "access-key".into())
        );
        assert_eq!(
            secret_ref("AWS_SECRET_ACCESS_KEY"),
            ("minio-credentials".into(), "secret-key".into())
        );
        let endpoint = env.iter().find(|e| e.name == "AWS_ENDPOINT_URL").unwrap();
        assert_eq!(
            endpoint.value.as_deref(),
            Some("http://minio.kubeflow.svc:9000")
        );
        let volume = &pod.volumes.unwrap()[0];
        assert!(
            volume.empty_dir.is_some(),
            "a writable cache, not the bucket"
        );
        let mount = &c.volume_mounts.as_ref().unwrap()[0];
        assert_eq!(
            (mount.mount_path.as_str(), mount.read_only),
            ("/models", None)
        );
    }

    #[test]
    fn the_service_is_named_like_the_inference_service_on_the_model_port() {
        let mut config = OperatorConfig::new("kubeflow", "img");
        config.model_port = 9000;
        let s: Service =
            serde_json::from_value(service(&isvc(1, 1, "pvc://m", None), &config)).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("fashion"));
        let port = &s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(port.port, 9000);
        let grpc = &s.spec.as_ref().unwrap().ports.as_ref().unwrap()[1];
        assert_eq!(
            (
                grpc.name.as_deref(),
                grpc.port,
                grpc.app_protocol.as_deref()
            ),
            (Some("grpc"), 8081, Some("kubernetes.io/h2c")),
            "gRPC clients in the cluster reach the model on KServe's port"
        );
        assert_eq!(s.spec.unwrap().selector.unwrap(), selector("fashion"));
    }

    #[test]
    fn an_hpa_exists_only_for_a_range_and_then_owns_the_replica_count() {
        assert!(hpa(&isvc(2, 2, "pvc://m", None)).is_none());
        let ranged = isvc(0, 4, "pvc://m", None);
        let h: HorizontalPodAutoscaler = serde_json::from_value(hpa(&ranged).unwrap()).unwrap();
        let spec = h.spec.unwrap();
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(1), 4));
        assert_eq!(spec.scale_target_ref.name, "fashion");
        let source = storage::parse("pvc://m").unwrap();
        let d = deployment(&ranged, &source, &OperatorConfig::new("kubeflow", "img"));
        assert!(d["spec"]["replicas"].is_null(), "{d}");
        assert!(
            !d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
                .is_null()
        );
    }
}
