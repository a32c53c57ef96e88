//! The objects one Notebook becomes, as server-side-apply bodies, and the check before them.
//! Pure: the reconcile ([`super::reconcile`]) does the API calls.
//!
//! - the workspace PersistentVolumeClaim `<name>-workspace` (Kubeflow's name), mounted at
//!   /home/jovyan. It is the user's data: it has NO ownerReference, so deleting the Notebook
//!   keeps it (a Notebook created again with the same name finds its files); it is created once
//!   and never changed or deleted by the operator;
//! - the StatefulSet `<name>` (one replica, none while the `kubeflow-resource-stopped`
//!   annotation is set) running the user's PodSpec with the workspace mounted, `NB_PREFIX`, the
//!   Jupyter port, and for the platform's own images the arguments that serve Jupyter under the
//!   gateway's path without a token (the gateway's login and owner check guard it);
//! - the Service `<name>` (port 80 to the pod's 8888), which the gateway routes
//!   `/notebook/<namespace>/<name>/` to.
//!
//! The StatefulSet and the Service are owned by the Notebook (controller ownerReference):
//! deleting the Notebook deletes them by garbage collection.

use k8s_openapi::api::core::v1::PodSpec;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::crd::{Notebook, STOPPED_ANNOTATION, prefix};
use crate::config::NotebookConfig;
use crate::profile::resources::{MANAGED_BY, Refusal};

/// The pods' label naming their Notebook (Kubeflow's), and the StatefulSet's selector.
pub const NOTEBOOK_LABEL: &str = "notebook-name";
/// Where the workspace is mounted: the jupyter/docker-stacks user's home.
pub const HOME: &str = "/home/jovyan";
/// The workspace volume's name in the pod.
pub const WORKSPACE_VOLUME: &str = "workspace";
/// Jupyter's port in the pod; the Service maps port 80 to it.
pub const JUPYTER_PORT: i32 = 8888;
/// A StatefulSet's pods carry `controller-revision-hash: <name>-<hash>` (a 63-character label
/// value): longer names than this make the StatefulSet unable to create its pod.
pub const MAX_NAME: usize = 52;

/// The workspace claim's name.
pub fn workspace_name(notebook: &Notebook) -> String {
    format!("{}-workspace", notebook.name_any())
}

fn labels(notebook: &Notebook) -> Value {
    json!({
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": "kubeflow-notebook",
        NOTEBOOK_LABEL: notebook.name_any(),
    })
}

fn metadata(notebook: &Notebook) -> Value {
    json!({
        "name": notebook.name_any(),
        "namespace": notebook.namespace().unwrap_or_default(),
        "labels": labels(notebook),
        "ownerReferences": [{
            "apiVersion": Notebook::api_version(&()),
            "kind": Notebook::kind(&()),
            "name": notebook.name_any(),
            "uid": notebook.uid().unwrap_or_default(),
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    })
}

/// The Notebook's name must make a Service (a DNS-1035 label) and a StatefulSet whose pod can be
/// created; its template must be a PodSpec with at least one container.
pub fn check(notebook: &Notebook) -> Result<PodSpec, Refusal> {
    let name = notebook.name_any();
    let name_ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        return Err(Refusal {
            reason: "InvalidName",
            message: format!(
                "the notebook name `{name}` cannot name its Service and StatefulSet: use at most \
                 {MAX_NAME} lowercase letters, digits and '-', starting with a letter and ending \
                 with a letter or digit (delete this notebook and create one with such a name)"
            ),
        });
    }
    let spec: PodSpec =
        serde_json::from_value(notebook.spec.template.spec.clone()).map_err(|e| Refusal {
            reason: "InvalidSpec",
            message: format!(
                "spec.template.spec is not a PodSpec: {e}; fix the field it names (the notebook \
                 is started once it is valid)"
            ),
        })?;
    if spec.containers.is_empty() {
        return Err(Refusal {
            reason: "InvalidSpec",
            message: "spec.template.spec.containers is empty: the first container is the \
                      Jupyter server (`- name: notebook` with `image: minimal`, `scipy` or an \
                      image of your own)"
                .into(),
        });
    }
    Ok(spec)
}

/// Whether the user's first container already mounts something at /home/jovyan (a volume of
/// their own, as Kubeflow's web app writes it): then there is no workspace claim of ours.
pub fn brings_own_home(spec: &PodSpec) -> bool {
    spec.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path.trim_end_matches('/') == HOME)
}

/// The workspace claim: created once, never owned by the Notebook (the user's data outlives it).
pub fn workspace(notebook: &Notebook, config: &NotebookConfig) -> Value {
    let mut spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": config.workspace_size}},
    });
    if let Some(class) = &config.storage_class {
        spec["storageClassName"] = json!(class);
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": workspace_name(notebook),
            "namespace": notebook.namespace().unwrap_or_default(),
            "labels": labels(notebook),
            "annotations": {
                "wharf.dev/kept": "the workspace of notebook {name}: kept when the notebook is \
                                   deleted; delete it yourself when its files are no longer needed"
                    .replace("{name}", &notebook.name_any()),
            },
        },
        "spec": spec,
    })
}

/// The image the first container runs: empty means the default choice, a choice's name means
/// its pinned reference, anything else is the user's own image. The bool: one of the platform's
/// (jupyter/docker-stacks) images, whose start-up arguments the operator supplies.
pub fn resolve_image(image: Option<&str>, config: &NotebookConfig) -> (String, bool) {
    let image = image.unwrap_or("").trim();
    let chosen = if image.is_empty() {
        config.images.first()
    } else {
        config
            .images
            .iter()
            .find(|(name, reference)| name == image || reference == image)
    };
    match chosen {
        Some((_, reference)) => (reference.clone(), true),
        None => (image.to_owned(), false),
    }
}

/// The pod: the user's PodSpec, with the workspace, NB_PREFIX, the Jupyter port and (for the
/// platform's images when the user gave no command) the arguments serving Jupyter under
/// `/notebook/<namespace>/<name>` without a token.
pub fn pod_spec(notebook: &Notebook, spec: &PodSpec, config: &NotebookConfig) -> Value {
    let mut spec = spec.clone();
    let base = prefix(
        &notebook.namespace().unwrap_or_default(),
        &notebook.name_any(),
    );
    let own_home = brings_own_home(&spec);
    let c = &mut spec.containers[0];
    let (image, ours) = resolve_image(c.image.as_deref(), config);
    c.image = Some(image);
    if ours && c.command.is_none() && c.args.is_none() {
        // docker-stacks' start-notebook.py passes these to Jupyter: its base URL is the
        // gateway's path (the gateway proxies the path unchanged), and no token, because the
        // gateway has checked the login and that the user owns the namespace.
        c.args = Some(vec![
            "start-notebook.py".into(),
            format!("--ServerApp.base_url={base}"),
            "--IdentityProvider.token=".into(),
        ]);
    }
    let env = c.env.get_or_insert_with(Vec::new);
    env.retain(|e| e.name != "NB_PREFIX");
    env.push(serde_json::from_value(json!({"name": "NB_PREFIX", "value": base})).expect("EnvVar"));
    let ports = c.ports.get_or_insert_with(Vec::new);
    if !ports.iter().any(|p| p.container_port == JUPYTER_PORT) {
        ports.push(
            serde_json::from_value(
                json!({"name": "notebook-port", "containerPort": JUPYTER_PORT, "protocol": "TCP"}),
            )
            .expect("ContainerPort"),
        );
    }
    if !own_home {
        c.volume_mounts.get_or_insert_with(Vec::new).push(
            serde_json::from_value(json!({"name": WORKSPACE_VOLUME, "mountPath": HOME}))
                .expect("VolumeMount"),
        );
        spec.volumes.get_or_insert_with(Vec::new).push(
            serde_json::from_value(json!({"name": WORKSPACE_VOLUME,
                "persistentVolumeClaim": {"claimName": workspace_name(notebook)}}))
            .expect("Volume"),
        );
    }
    if spec.security_context.is_none() {
        // The docker-stacks user (uid 1000) is in group 100: a fresh volume must be writable by it.
        spec.security_context =
            Some(serde_json::from_value(json!({"fsGroup": 100})).expect("PodSecurityContext"));
    }
    serde_json::to_value(spec).expect("a PodSpec serializes")
}

/// Whether the Notebook is stopped (Kubeflow's annotation is present, whatever its value).
pub fn stopped(notebook: &Notebook) -> bool {
    notebook.annotations().contains_key(STOPPED_ANNOTATION)
}

/// The server's StatefulSet: one replica, none while stopped.
pub fn statefulset(notebook: &Notebook, spec: &PodSpec, config: &NotebookConfig) -> Value {
    let name = notebook.name_any();
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(notebook),
        "spec": {
            "replicas": if stopped(notebook) { 0 } else { 1 },
            // Required before Kubernetes 1.31; the Notebook's own Service (not headless: no
            // per-pod DNS names, which a single Jupyter pod does not need).
            "serviceName": name,
            "selector": {"matchLabels": {NOTEBOOK_LABEL: name}},
            "template": {
                "metadata": {"labels": labels(notebook)},
                "spec": pod_spec(notebook, spec, config),
            },
        },
    })
}

/// The Service the gateway routes to: port 80 to Jupyter's 8888.
pub fn service(notebook: &Notebook) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(notebook),
        "spec": {
            "type": "ClusterIP",
            "selector": {NOTEBOOK_LABEL: notebook.name_any()},
            "ports": [{"name": "http", "port": 80, "targetPort": JUPYTER_PORT, "protocol": "TCP"}],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notebook::crd::{NotebookSpec, NotebookTemplate};

    fn notebook(name: &str, spec: Value) -> Notebook {
        let mut nb = Notebook::new(
            name,
            NotebookSpec {
                template: NotebookTemplate { spec },
            },
        );
        nb.metadata.namespace = Some("alice".into());
        nb.metadata.uid = Some("uid-1".into());
        nb
    }

    fn config() -> NotebookConfig {
        NotebookConfig::default()
    }

    #[test]
    fn bad_names_and_bad_pod_specs_are_refused_with_the_fix() {
        let ok = json!({"containers": [{"name": "notebook"}]});
        let long = "a".repeat(MAX_NAME + 1);
        for bad in ["1nb", "Nb", "nb-", "n_b", "n.b", long.as_str()] {
            let refusal = check(&notebook(bad, ok.clone())).unwrap_err();
            assert_eq!(refusal.reason, "InvalidName", "{bad}");
        }
        let no_containers = check(&notebook("nb", json!({"containers": []}))).unwrap_err();
        assert_eq!(no_containers.reason, "InvalidSpec");
        let not_a_pod = check(&notebook("nb", json!({"containers": "x"}))).unwrap_err();
        assert!(
            not_a_pod.message.contains("not a PodSpec"),
            "{}",
            not_a_pod.message
        );
        assert!(check(&notebook("nb-1", ok)).is_ok());
    }

    #[test]
    fn the_pod_gets_the_workspace_the_prefix_the_port_and_the_default_image() {
        let nb = notebook(
            "nb",
            json!({"containers": [{"name": "notebook", "env": [{"name": "NB_PREFIX", "value": "/x"}]}]}),
        );
        let spec = check(&nb).unwrap();
        let pod = pod_spec(&nb, &spec, &config());
        let c = &pod["containers"][0];
        assert_eq!(c["image"], config().images[0].1.as_str());
        assert_eq!(
            c["args"],
            json!([
                "start-notebook.py",
                "--ServerApp.base_url=/notebook/alice/nb",
                "--IdentityProvider.token="
            ])
        );
        assert_eq!(
            c["env"],
            json!([{"name": "NB_PREFIX", "value": "/notebook/alice/nb"}])
        );
        assert_eq!(c["ports"][0]["containerPort"], 8888);
        assert_eq!(
            c["volumeMounts"],
            json!([{"name": "workspace", "mountPath": "/home/jovyan"}])
        );
        assert_eq!(
            pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "nb-workspace"
        );
        assert_eq!(pod["securityContext"]["fsGroup"], 100);
    }

    #[test]
    fn a_choice_name_is_its_pinned_image_and_an_own_image_is_left_alone() {
        let c = config();
        let (scipy, ours) = resolve_image(Some("scipy"), &c);
        assert!(
            scipy.starts_with("quay.io/jupyter/scipy-notebook:"),
            "{scipy}"
        );
        assert!(ours);
        let (own, ours) = resolve_image(Some("kubeflownotebookswg/jupyter:v1.9.0"), &c);
        assert_eq!(own, "kubeflownotebookswg/jupyter:v1.9.0");
        assert!(!ours);
        // An own image gets no arguments from us; nor does one with a command.
        let nb = notebook(
            "nb",
            json!({"containers": [{"name": "nb", "image": "scipy", "command": ["jupyter", "lab"]}]}),
        );
        let pod = pod_spec(&nb, &check(&nb).unwrap(), &c);
        assert!(pod["containers"][0].get("args").is_none());
        assert_eq!(pod["containers"][0]["command"], json!(["jupyter", "lab"]));
    }

    #[test]
    fn a_home_of_the_users_own_is_kept_and_gets_no_workspace_claim() {
        let nb = notebook(
            "nb",
            json!({"containers": [{"name": "nb", "volumeMounts": [{"name": "mine", "mountPath": "/home/jovyan/"}]}],
                   "volumes": [{"name": "mine", "persistentVolumeClaim": {"claimName": "mine"}}]}),
        );
        let spec = check(&nb).unwrap();
        assert!(brings_own_home(&spec));
        let pod = pod_spec(&nb, &spec, &config());
        assert_eq!(pod["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(pod["containers"][0]["volumeMounts"][0]["name"], "mine");
    }

    #[test]
    fn the_statefulset_and_service_are_owned_but_the_workspace_is_not() {
        let mut nb = notebook("nb", json!({"containers": [{"name": "nb"}]}));
        let spec = check(&nb).unwrap();
        let sts = statefulset(&nb, &spec, &config());
        assert_eq!(sts["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(sts["spec"]["replicas"], 1);
        assert_eq!(sts["spec"]["selector"]["matchLabels"][NOTEBOOK_LABEL], "nb");
        let svc = service(&nb);
        assert_eq!(svc["metadata"]["ownerReferences"][0]["kind"], "Notebook");
        assert_eq!(svc["spec"]["ports"][0]["port"], 80);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8888);
        let pvc = workspace(&nb, &config());
        assert!(pvc["metadata"].get("ownerReferences").is_none());
        assert_eq!(pvc["metadata"]["name"], "nb-workspace");

        nb.metadata.annotations = Some(
            [(
                STOPPED_ANNOTATION.to_owned(),
                "2026-01-01T00:00:00Z".to_owned(),
            )]
            .into(),
        );
        assert_eq!(statefulset(&nb, &spec, &config())["spec"]["replicas"], 0);
    }
}
