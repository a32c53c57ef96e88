//! TrainJob → batch/v1 Job: where the dataset and the output live inside the pod (volumes for
//! `pvc://` and, when allowed, `file://` host paths), the container — the `wharf-trainer train`
//! command line, or the user's own image with the locations in its environment — and the owner
//! reference that lets garbage collection remove the Job with its TrainJob.
//!
//! Pure functions over the spec and the operator's settings, so every mapping is unit-tested
//! without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, HostPathVolumeSource, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};

use crate::crd::{ContainerTrainer, ModelKind, TrainJob};

/// Label on the Job and its pod naming the TrainJob they belong to.
pub const TRAINJOB_LABEL: &str = "wharf.dev/trainjob";
/// Annotation on the Job: the TrainJob generation whose spec it runs (a Job's pod template is
/// immutable, so later spec changes are reported, not applied).
pub const GENERATION_ANNOTATION: &str = "wharf.dev/trainjob-generation";
/// Where `pvc://` claims are mounted: `/mnt/claims/<claim>`.
const CLAIMS_ROOT: &str = "/mnt/claims";
/// The non-root user of the trainer image (distroless `nonroot`); user images run as it too.
const TRAINER_UID: i64 = 65532;
/// Where the pod's termination message is read from; a user's container writes its final
/// metrics line there (`WHARF_METRICS_FILE`).
const TERMINATION_LOG: &str = "/dev/termination-log";

/// The environment a user's training container is given (documented in the README's "Train with
/// your own container"): the locations as written in the TrainJob, the directories they are
/// mounted at (pvc:// and file:// only), and where to write final metrics.
pub const ENV_DATASET_URI: &str = "WHARF_DATASET_URI";
pub const ENV_OUTPUT_URI: &str = "WHARF_OUTPUT_URI";
pub const ENV_DATASET_DIR: &str = "WHARF_DATASET_DIR";
pub const ENV_OUTPUT_DIR: &str = "WHARF_OUTPUT_DIR";
pub const ENV_METRICS_FILE: &str = "WHARF_METRICS_FILE";

/// What the operator was told by the charm's config.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// The trainer image (the same image as the operator's, pinned in metadata.yaml).
    pub image: String,
    /// Where the image carries Fashion-MNIST: `file://` datasets under it need no volume.
    pub dataset_path: String,
    /// Whether `file://` locations outside the image may become hostPath volumes.
    pub allow_host_path: bool,
    /// For `s3://` locations: the Secret (in the TrainJob's namespace) holding `access-key` and
    /// `secret-key`, the endpoint and the region the pod is given.
    pub s3: S3Settings,
}

/// How training pods reach `s3://` locations (the trainer charm's s3-* options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub secret: String,
    pub endpoint: String,
    pub region: String,
}

/// Why a spec cannot become a Job; shown as the Failed condition's message, reason InvalidSpec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSpec(pub String);

/// A storage location resolved for the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resolved {
    /// A path inside the image: nothing to mount.
    Image(String),
    /// `pvc://claim/sub`: mount the claim, use `<mount>/sub`.
    Claim { claim: String, sub: String },
    /// `file:///path` on the node.
    Host(String),
    /// `s3://bucket/prefix`: the trainer reads or writes it itself; nothing to mount.
    S3(String),
}

/// `builtin`: the built-in trainer runs, whose image carries Fashion-MNIST under
/// `settings.dataset_path` (a user's image does not: there, that path is a host path like any).
fn resolve(
    role: &str,
    uri: &str,
    settings: &JobSettings,
    builtin: bool,
) -> Result<Resolved, InvalidSpec> {
    let bad = |why: String| InvalidSpec(format!("{role}.uri {uri:?}: {why}"));
    if let Some(rest) = uri.strip_prefix("pvc://") {
        let (claim, sub) = rest.split_once('/').unwrap_or((rest, ""));
        if claim.is_empty()
            || claim.len() > 253
            || !claim
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Err(bad(format!(
                "{claim:?} is not a PersistentVolumeClaim name"
            )));
        }
        let sub = sub.trim_matches('/');
        if sub.split('/').any(|part| part == "..") {
            return Err(bad("`..` is not allowed in the path".into()));
        }
        return Ok(Resolved::Claim {
            claim: claim.to_owned(),
            sub: sub.to_owned(),
        });
    }
    if let Some(path) = uri.strip_prefix("file://") {
        if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
            return Err(bad("file:// needs an absolute path without `..`".into()));
        }
        let path = path.trim_end_matches('/');
        let path = if path.is_empty() { "/" } else { path };
        let baked = settings.dataset_path.trim_end_matches('/');
        if builtin && role == "dataset" && (path == baked || path.starts_with(&format!("{baked}/")))
        {
            return Ok(Resolved::Image(path.to_owned()));
        }
        if !settings.allow_host_path {
            let outside = if builtin {
                format!("a file:// location outside the image's dataset ({baked})")
            } else {
                "with spec.trainer, a file:// location".to_owned()
            };
            return Err(bad(format!(
                "{outside} is a hostPath volume; use pvc://CLAIM/PATH, or set the trainer \
                 charm's allow-host-path to true"
            )));
        }
        return Ok(Resolved::Host(path.to_owned()));
    }
    if let Some(rest) = uri.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !bucket_ok {
            return Err(bad(format!(
                "{bucket:?} is not an S3 bucket name; write s3://BUCKET/PREFIX"
            )));
        }
        if prefix.split('/').any(|part| part == ".." || part == ".") {
            return Err(bad("`.` and `..` are not allowed in the prefix".into()));
        }
        return Ok(Resolved::S3(uri.trim_end_matches('/').to_owned()));
    }
    Err(bad("expected pvc://, file:// or s3://".into()))
}

/// Pod-side layout: volumes, mounts and the two paths the trainer is given.
#[derive(Default)]
struct Layout {
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
}

impl Layout {
    /// Mounts `loc` (once per claim or host path) and returns the path inside the pod.
    fn place(&mut self, loc: &Resolved, read_only: bool) -> String {
        match loc {
            Resolved::Image(path) | Resolved::S3(path) => path.clone(),
            Resolved::Claim { claim, sub } => {
                let mount_path = format!("{CLAIMS_ROOT}/{claim}");
                self.mount(&mount_path, read_only, |name| Volume {
                    name,
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: claim.clone(),
                        read_only: None,
                    }),
                    ..Volume::default()
                });
                if sub.is_empty() {
                    mount_path
                } else {
                    format!("{mount_path}/{sub}")
                }
            }
            Resolved::Host(path) => {
                let ty = if read_only {
                    "Directory"
                } else {
                    "DirectoryOrCreate"
                };
                self.mount(path, read_only, |name| Volume {
                    name,
                    host_path: Some(HostPathVolumeSource {
                        path: path.clone(),
                        type_: Some(ty.into()),
                    }),
                    ..Volume::default()
                });
                path.clone()
            }
        }
    }

    fn mount(&mut self, mount_path: &str, read_only: bool, volume: impl FnOnce(String) -> Volume) {
        if let Some(existing) = self.mounts.iter_mut().find(|m| m.mount_path == mount_path) {
            // The same claim for dataset and output: one mount, writable if either writes.
            if !read_only {
                existing.read_only = None;
            }
            return;
        }
        let name = format!("location-{}", self.volumes.len());
        self.volumes.push(volume(name.clone()));
        self.mounts.push(VolumeMount {
            name,
            mount_path: mount_path.to_owned(),
            read_only: read_only.then_some(true),
            ..VolumeMount::default()
        });
    }
}

/// Names a user's `trainer.env` may not set: wharf sets them (or may, for s3:// locations), and a
/// second value would silently win or lose.
fn reserved_env(name: &str) -> bool {
    name.starts_with("WHARF_") || name.starts_with("AWS_")
}

/// Which trainer runs: exactly one of `spec.model` and `spec.trainer` (the CRD's CEL rule says
/// the same; this check is what a cluster without it, or an older CRD, relies on), and with a
/// user's container none of the built-in trainer's fields.
fn trainer_of(tj: &TrainJob) -> Result<Option<&ContainerTrainer>, InvalidSpec> {
    let spec = &tj.spec;
    let trainer = match (&spec.model, &spec.trainer) {
        (Some(_), None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(InvalidSpec(
                "spec.model and spec.trainer are both set; keep spec.model (mlp or cnn) for \
                 wharf's built-in trainer, or spec.trainer.image for your own container"
                    .into(),
            ));
        }
        (None, None) => {
            return Err(InvalidSpec(
                "neither spec.model nor spec.trainer is set; set spec.model (mlp or cnn) for \
                 wharf's built-in trainer, or spec.trainer.image for your own container"
                    .into(),
            ));
        }
        (None, Some(trainer)) => trainer,
    };
    if trainer.image.trim().is_empty() {
        return Err(InvalidSpec(
            "spec.trainer.image is empty; name the image to run, e.g. ghcr.io/me/train:1.0".into(),
        ));
    }
    let builtin_only = [
        ("epochs", spec.epochs.is_some()),
        ("batchSize", spec.batch_size.is_some()),
        ("learningRate", spec.learning_rate.is_some()),
        ("seed", spec.seed != 0),
    ];
    if let Some((field, _)) = builtin_only.iter().find(|(_, set)| *set) {
        return Err(InvalidSpec(format!(
            "spec.{field} is for wharf's built-in trainer and does nothing for spec.trainer; \
             remove it and pass it to your container in spec.trainer.args or spec.trainer.env"
        )));
    }
    if spec.resources.is_some() && trainer.resources.is_some() {
        return Err(InvalidSpec(
            "spec.resources and spec.trainer.resources are both set; keep one \
             (spec.trainer.resources)"
                .into(),
        ));
    }
    for (i, var) in trainer.env.iter().flatten().enumerate() {
        if reserved_env(&var.name) {
            return Err(InvalidSpec(format!(
                "spec.trainer.env[{i}].name {:?}: WHARF_* and AWS_* are set by wharf from \
                 spec.dataset and spec.output (and the trainer charm's s3-* options); remove it",
                var.name
            )));
        }
    }
    Ok(Some(trainer))
}

/// Checks what the CRD schema cannot: which trainer runs, the locations and the name's length
/// (Jobs label their pods with their name, and a label value has at most 63 characters).
pub fn validate(tj: &TrainJob, settings: &JobSettings) -> Result<(), InvalidSpec> {
    let name = tj.name_any();
    if name.len() > 63 {
        return Err(InvalidSpec(format!(
            "metadata.name {name:?} is longer than 63 characters, the limit for the Job it becomes"
        )));
    }
    let builtin = trainer_of(tj)?.is_none();
    resolve("dataset", &tj.spec.dataset.uri, settings, builtin)?;
    match resolve("output", &tj.spec.output.uri, settings, builtin)? {
        Resolved::Image(_) => unreachable!("only datasets resolve into the image"),
        Resolved::Claim { .. } | Resolved::Host(_) | Resolved::S3(_) => {}
    }
    Ok(())
}

/// The TrainJob generation a Job was built from, if it says.
pub fn built_from(job: &Job) -> Option<i64> {
    job.metadata
        .annotations
        .as_ref()?
        .get(GENERATION_ANNOTATION)?
        .parse()
        .ok()
}

/// The model URI of an artifact the trainer reported at `pod_path`: the TrainJob's output URI
/// with the version directory appended (`pvc://models/fashion` + `/3`).
pub fn model_uri(output_uri: &str, pod_path: &str) -> String {
    match pod_path.rsplit_once('/') {
        Some((_, version)) if !version.is_empty() => {
            format!("{}/{version}", output_uri.trim_end_matches('/'))
        }
        _ => output_uri.to_owned(),
    }
}

/// The Job for a TrainJob: same name and namespace, controlled by it.
pub fn build(tj: &TrainJob, settings: &JobSettings) -> Result<Job, InvalidSpec> {
    validate(tj, settings)?;
    let name = tj.name_any();
    let spec = &tj.spec;
    let mut layout = Layout::default();
    // The root filesystem is read-only; anything that wants a scratch directory gets /tmp.
    layout.mount("/tmp", false, |name| Volume {
        name,
        empty_dir: Some(Default::default()),
        ..Volume::default()
    });
    let trainer = trainer_of(tj)?;
    let builtin = trainer.is_none();
    let dataset = resolve("dataset", &spec.dataset.uri, settings, builtin)?;
    let output = resolve("output", &spec.output.uri, settings, builtin)?;
    let data = layout.place(&dataset, true);
    let out = layout.place(&output, false);
    // Credentials by secretKeyRef: they never appear in the Job, and the operator never reads
    // them (its RBAC has no access to Secrets).
    let env = [&dataset, &output]
        .iter()
        .any(|r| matches!(r, Resolved::S3(_)))
        .then(|| {
            let s3 = &settings.s3;
            serde_json::from_value::<Vec<EnvVar>>(wharf_model::location::pod_env(
                &s3.secret,
                &s3.endpoint,
                &s3.region,
            ))
            .expect("pod_env builds valid EnvVars")
        });
    let labels = BTreeMap::from([
        (TRAINJOB_LABEL.to_owned(), name.clone()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "wharf-trainer".to_owned(),
        ),
    ]);
    let owner = tj
        .controller_owner_ref(&())
        .expect("a TrainJob read from the API has a name and uid");
    let container = match trainer {
        Some(trainer) => {
            let locations = UserLocations {
                dataset: (&spec.dataset.uri, &dataset, &data),
                output: (&spec.output.uri, &output, &out),
            };
            let resources = trainer.resources.clone().or(spec.resources.clone());
            user_container(
                trainer,
                &locations,
                env.unwrap_or_default(),
                resources,
                layout.mounts,
            )
        }
        None => builtin_container(tj, settings, &data, &out, env, layout.mounts),
    };
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: tj.namespace(),
            labels: Some(labels.clone()),
            annotations: tj
                .metadata
                .generation
                .map(|g| BTreeMap::from([(GENERATION_ANNOTATION.to_owned(), g.to_string())])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(spec.backoff_limit.unwrap_or(0)),
            active_deadline_seconds: spec.active_deadline_seconds,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    // Training never talks to the Kubernetes API.
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(TRAINER_UID),
                        run_as_group: Some(TRAINER_UID),
                        fs_group: Some(TRAINER_UID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(layout.volumes).filter(|v| !v.is_empty()),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

/// The container's hardening, the same for the built-in trainer and a user's image: no
/// privilege escalation, no capabilities, a read-only root filesystem (/tmp is writable).
fn hardened() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

/// `wharf-trainer train` with the spec's flags.
fn builtin_container(
    tj: &TrainJob,
    settings: &JobSettings,
    data: &str,
    out: &str,
    env: Option<Vec<EnvVar>>,
    mounts: Vec<VolumeMount>,
) -> Container {
    let spec = &tj.spec;
    let model = match spec.model {
        Some(ModelKind::Mlp) => "mlp",
        Some(ModelKind::Cnn) => "cnn",
        None => unreachable!("trainer_of: no spec.trainer means spec.model is set"),
    };
    // Unset batch size and learning rate stay unset: the trainer picks its per-model defaults
    // (the CNN's come with a cosine schedule), so a TrainJob trains like the CLI does.
    let optional = [
        spec.batch_size.map(|b| format!("--batch-size={b}")),
        spec.learning_rate.map(|lr| format!("--lr={lr}")),
    ];
    let args: Vec<String> = [
        Some("train".to_owned()),
        Some(format!("--model={model}")),
        spec.epochs.map(|e| format!("--epochs={e}")),
    ]
    .into_iter()
    .chain(optional)
    .chain([
        Some(format!("--seed={}", spec.seed)),
        Some(format!("--data={data}")),
        Some(format!("--out={out}")),
    ])
    .flatten()
    .collect();
    Container {
        name: "trainer".into(),
        image: Some(settings.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args),
        env,
        resources: spec.resources.clone(),
        // The trainer writes {"model_uri", "metrics"} (or "error: ...") here; the operator reads
        // it from the pod's terminated state.
        termination_message_path: Some(TERMINATION_LOG.into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts).filter(|m| !m.is_empty()),
        security_context: Some(hardened()),
        ..Container::default()
    }
}

/// Each location of a user's TrainJob: the URI as written, how it resolved, its path in the pod.
struct UserLocations<'a> {
    dataset: (&'a str, &'a Resolved, &'a str),
    output: (&'a str, &'a Resolved, &'a str),
}

/// The user's image, command, args and resources, with the locations in its environment (wharf's
/// variables first, then the S3 ones, then the user's own), and HOME on the writable /tmp.
fn user_container(
    trainer: &ContainerTrainer,
    locations: &UserLocations,
    s3_env: Vec<EnvVar>,
    resources: Option<ResourceRequirements>,
    mounts: Vec<VolumeMount>,
) -> Container {
    let var = |name: &str, value: &str| EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    };
    let mut env = Vec::new();
    for ((uri, resolved, path), uri_var, dir_var) in [
        (locations.dataset, ENV_DATASET_URI, ENV_DATASET_DIR),
        (locations.output, ENV_OUTPUT_URI, ENV_OUTPUT_DIR),
    ] {
        env.push(var(uri_var, uri.trim_end_matches('/')));
        if !matches!(resolved, Resolved::S3(_)) {
            env.push(var(dir_var, path));
        }
    }
    env.push(var(ENV_METRICS_FILE, TERMINATION_LOG));
    env.extend(s3_env);
    let user_env = trainer.env.clone().unwrap_or_default();
    // Many tools write under ~ (caches, configs); the root filesystem is read-only.
    if !user_env.iter().any(|v| v.name == "HOME") {
        env.push(var("HOME", "/tmp"));
    }
    env.extend(user_env);
    Container {
        name: "trainer".into(),
        image: Some(trainer.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: trainer.command.clone(),
        args: trainer.args.clone(),
        env: Some(env),
        resources,
        termination_message_path: Some(TERMINATION_LOG.into()),
        // A container that writes no metrics file and fails leaves its last log lines instead.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts).filter(|m| !m.is_empty()),
        security_context: Some(hardened()),
        ..Container::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(allow_host_path: bool) -> JobSettings {
        JobSettings {
            image: "wharf.local/wharf-trainer:0.1.0".into(),
            dataset_path: "/usr/share/datasets/fashion-mnist".into(),
            allow_host_path,
            s3: S3Settings {
                secret: "minio-credentials".into(),
                endpoint: "http://minio.wharf.svc:9000".into(),
                region: "us-east-1".into(),
            },
        }
    }

    fn trainjob(dataset: &str, output: &str) -> TrainJob {
        serde_json::from_value(json!({
            "apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": "fashion", "namespace": "ml", "uid": "u-1", "generation": 4},
            "spec": {"model": "cnn", "epochs": 2, "seed": 7,
                     "dataset": {"uri": dataset}, "output": {"uri": output}}
        }))
        .unwrap()
    }

    fn args(job: &Job) -> Vec<String> {
        job.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .args
            .clone()
            .unwrap()
    }

    #[test]
    fn a_batch_size_and_learning_rate_given_in_the_spec_reach_the_trainer() {
        let mut tj = trainjob("pvc://data/fashion", "pvc://models/fashion");
        tj.spec.batch_size = Some(128);
        tj.spec.learning_rate = Some(0.003);
        let args = args(&build(&tj, &settings(false)).unwrap());
        let at = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .unwrap_or_else(|| panic!("no {flag} in {args:?}"))
        };
        assert!(at("--epochs=2") < at("--batch-size=128"));
        assert!(at("--batch-size=128") < at("--lr=0.003"));
        assert!(at("--lr=0.003") < at("--seed=7"));
    }

    #[test]
    fn the_job_runs_the_trainer_with_the_spec_and_is_owned_by_the_trainjob() {
        let tj = trainjob(
            "file:///usr/share/datasets/fashion-mnist",
            "pvc://models/fashion",
        );
        let job = build(&tj, &settings(false)).unwrap();
        assert_eq!(
            args(&job),
            [
                "train",
                "--model=cnn",
                "--epochs=2",
                "--seed=7",
                "--data=/usr/share/datasets/fashion-mnist",
                "--out=/mnt/claims/models/fashion",
            ]
        );
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("TrainJob", "fashion", "u-1")
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(built_from(&job), Some(4));
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let volumes = pod.volumes.as_ref().unwrap();
        assert_eq!(
            volumes.len(),
            2,
            "/tmp and the output: the baked-in dataset needs no volume"
        );
        assert_eq!(
            volumes[1]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            "models"
        );
        assert_eq!(job.spec.as_ref().unwrap().backoff_limit, Some(0));
    }

    #[test]
    fn s3_locations_are_passed_as_is_with_credentials_from_the_secret() {
        let job = build(
            &trainjob("s3://wharf/datasets/fashion", "s3://wharf/models/fashion/"),
            &settings(false),
        )
        .unwrap();
        let args = args(&job);
        assert!(args.contains(&"--data=s3://wharf/datasets/fashion".to_string()));
        assert!(args.contains(&"--out=s3://wharf/models/fashion".to_string()));
        let pod = job.spec.unwrap().template.spec.unwrap();
        assert_eq!(
            pod.volumes.unwrap().len(),
            1,
            "only /tmp: S3 needs no volume"
        );
        let env = pod.containers[0].env.clone().unwrap();
        let secret_ref = |name: &str| {
            let var = env.iter().find(|e| e.name == name).unwrap();
            let r = var.value_from.clone().unwrap().secret_key_ref.unwrap();
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
        let value = |name: &str| env.iter().find(|e| e.name == name).unwrap().value.clone();
        assert_eq!(
            value("AWS_ENDPOINT_URL").as_deref(),
            Some("http://minio.wharf.svc:9000")
        );
        assert_eq!(value("AWS_REGION").as_deref(), Some("us-east-1"));
        assert_eq!(
            model_uri("s3://wharf/models/fashion", "s3://wharf/models/fashion/3"),
            "s3://wharf/models/fashion/3"
        );
        let local = build(&trainjob("pvc://d", "pvc://m"), &settings(false)).unwrap();
        let pod = local.spec.unwrap().template.spec.unwrap();
        assert!(pod.containers[0].env.is_none(), "no S3, no credentials");
    }

    #[test]
    fn one_claim_for_dataset_and_output_is_mounted_once_and_writable() {
        let job = build(
            &trainjob("pvc://data/fashion", "pvc://data/models"),
            &settings(false),
        )
        .unwrap();
        let pod = job.spec.unwrap().template.spec.unwrap();
        let mounts = pod.containers[0].volume_mounts.clone().unwrap();
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[1].read_only, None);
        assert_eq!(pod.volumes.unwrap().len(), 2);
    }

    #[test]
    fn a_dataset_claim_alone_is_mounted_read_only() {
        let job = build(
            &trainjob("pvc://data/fashion", "pvc://models"),
            &settings(false),
        )
        .unwrap();
        let mounts = job.spec.unwrap().template.spec.unwrap().containers[0]
            .volume_mounts
            .clone()
            .unwrap();
        assert_eq!(mounts[1].mount_path, "/mnt/claims/data");
        assert_eq!(mounts[1].read_only, Some(true));
        assert_eq!(mounts[2].mount_path, "/mnt/claims/models");
    }

    #[test]
    fn host_paths_need_the_charm_to_allow_them() {
        let tj = trainjob("file:///srv/fashion", "file:///srv/models");
        let err = build(&tj, &settings(false)).unwrap_err();
        assert!(err.0.contains("allow-host-path"), "{err}");
        let job = build(&tj, &settings(true)).unwrap();
        let volumes = job.spec.unwrap().template.spec.unwrap().volumes.unwrap();
        let types: Vec<_> = volumes
            .iter()
            .filter_map(|v| v.host_path.as_ref()?.type_.clone())
            .collect();
        assert_eq!(types, ["Directory", "DirectoryOrCreate"]);
    }

    #[test]
    fn invalid_locations_are_refused_with_the_field() {
        let cases = [
            (
                "s3://Bucket_1/fashion",
                "pvc://m",
                "dataset.uri \"s3://Bucket_1/fashion\": \"Bucket_1\" is not an S3 bucket name",
            ),
            (
                "pvc://data",
                "s3://models/../x",
                "output.uri \"s3://models/../x\": `.` and `..` are not allowed",
            ),
            (
                "pvc://Bad_Claim/x",
                "pvc://m",
                "is not a PersistentVolumeClaim name",
            ),
            ("pvc://data/../etc", "pvc://m", "`..` is not allowed"),
            ("pvc://data", "file://relative", "absolute path"),
            (
                "pvc://data",
                "file:///usr/share/datasets/fashion-mnist",
                "allow-host-path",
            ),
        ];
        for (dataset, output, want) in cases {
            let err = build(&trainjob(dataset, output), &settings(false)).unwrap_err();
            assert!(err.0.contains(want), "{dataset} {output}: {err}");
        }
    }

    fn custom(dataset: &str, output: &str, trainer: serde_json::Value) -> TrainJob {
        serde_json::from_value(json!({
            "apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": "mine", "namespace": "ml", "uid": "u-2", "generation": 1},
            "spec": {"trainer": trainer, "dataset": {"uri": dataset}, "output": {"uri": output}}
        }))
        .unwrap()
    }

    fn env_of(job: &Job) -> Vec<(String, Option<String>)> {
        job.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect()
    }

    #[test]
    fn a_custom_trainer_runs_its_image_with_the_locations_in_its_environment() {
        let tj = custom(
            "pvc://data/fashion",
            "pvc://models/mine/",
            json!({"image": "ghcr.io/me/train:1.0", "command": ["python", "train.py"],
                   "args": ["--epochs", "3"], "env": [{"name": "LR", "value": "0.01"}],
                   "resources": {"limits": {"memory": "2Gi"}}}),
        );
        let job = build(&tj, &settings(false)).unwrap();
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.name, "trainer", "the operator reads this container's log");
        assert_eq!(c.image.as_deref(), Some("ghcr.io/me/train:1.0"));
        assert_eq!(c.command.clone().unwrap(), ["python", "train.py"]);
        assert_eq!(c.args.clone().unwrap(), ["--epochs", "3"]);
        assert_eq!(
            c.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"].0,
            "2Gi"
        );
        let some = |v: &str| Some(v.to_owned());
        assert_eq!(
            env_of(&job),
            [
                ("WHARF_DATASET_URI".to_owned(), some("pvc://data/fashion")),
                (
                    "WHARF_DATASET_DIR".to_owned(),
                    some("/mnt/claims/data/fashion")
                ),
                ("WHARF_OUTPUT_URI".to_owned(), some("pvc://models/mine")),
                (
                    "WHARF_OUTPUT_DIR".to_owned(),
                    some("/mnt/claims/models/mine")
                ),
                (
                    "WHARF_METRICS_FILE".to_owned(),
                    some("/dev/termination-log")
                ),
                ("HOME".to_owned(), some("/tmp")),
                ("LR".to_owned(), some("0.01")),
            ]
        );
        let mounts: Vec<_> = c
            .volume_mounts
            .clone()
            .unwrap()
            .into_iter()
            .map(|m| (m.mount_path, m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("/tmp".to_owned(), None),
                ("/mnt/claims/data".to_owned(), Some(true)),
                ("/mnt/claims/models".to_owned(), None)
            ]
        );
        let hardened = c.security_context.as_ref().unwrap();
        assert_eq!(hardened.read_only_root_filesystem, Some(true));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(job.metadata.owner_references.unwrap()[0].uid, "u-2");
    }

    #[test]
    fn a_custom_trainer_on_s3_gets_the_credentials_by_reference_and_no_directory() {
        let tj = custom(
            "s3://wharf/datasets/fashion",
            "s3://wharf/models/mine",
            json!({"image": "ghcr.io/me/train:1.0"}),
        );
        let job = build(&tj, &settings(false)).unwrap();
        let env = env_of(&job);
        let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        assert!(!names.contains(&"WHARF_DATASET_DIR") && !names.contains(&"WHARF_OUTPUT_DIR"));
        assert!(names.contains(&"WHARF_DATASET_URI") && names.contains(&"AWS_ENDPOINT_URL"));
        let c = &job.spec.unwrap().template.spec.unwrap().containers[0];
        let secret = c
            .env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == "AWS_SECRET_ACCESS_KEY")
            .unwrap();
        assert_eq!(secret.value, None, "never a secret value in the Job");
        assert_eq!(
            secret
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap()
                .name,
            "minio-credentials"
        );
        assert_eq!(
            (c.command.clone(), c.args.clone()),
            (None, None),
            "the image's own entrypoint"
        );
    }

    #[test]
    fn the_built_in_images_dataset_is_not_in_a_custom_image() {
        let tj = custom(
            "file:///usr/share/datasets/fashion-mnist",
            "pvc://models",
            json!({"image": "ghcr.io/me/train:1.0"}),
        );
        let err = build(&tj, &settings(false)).unwrap_err();
        assert!(
            err.0
                .contains("with spec.trainer, a file:// location is a hostPath volume"),
            "{err}"
        );
    }

    #[test]
    fn which_trainer_runs_must_be_clear() {
        let both = |extra: serde_json::Value| {
            let mut v = json!({
                "apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob",
                "metadata": {"name": "x", "namespace": "ml", "uid": "u"},
                "spec": {"dataset": {"uri": "pvc://d"}, "output": {"uri": "pvc://m"}}
            });
            for (k, val) in extra.as_object().unwrap() {
                v["spec"][k] = val.clone();
            }
            serde_json::from_value::<TrainJob>(v).unwrap()
        };
        let image = json!({"image": "ghcr.io/me/train:1.0"});
        let cases = [
            (
                json!({"model": "mlp", "trainer": image}),
                "spec.model and spec.trainer are both set",
            ),
            (json!({}), "neither spec.model nor spec.trainer is set"),
            (
                json!({"trainer": {"image": " "}}),
                "spec.trainer.image is empty",
            ),
            (
                json!({"trainer": image, "epochs": 3}),
                "spec.epochs is for wharf's built-in trainer",
            ),
            (
                json!({"trainer": image, "learningRate": 0.1}),
                "spec.learningRate is for",
            ),
            (json!({"trainer": image, "seed": 4}), "spec.seed is for"),
            (
                json!({"trainer": {"image": "i", "resources": {}}, "resources": {}}),
                "spec.resources and spec.trainer.resources are both set",
            ),
            (
                json!({"trainer": {"image": "i", "env": [{"name": "A", "value": "1"}, {"name": "WHARF_OUTPUT_URI", "value": "x"}]}}),
                "spec.trainer.env[1].name \"WHARF_OUTPUT_URI\"",
            ),
            (
                json!({"trainer": {"image": "i", "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}]}}),
                "AWS_* are set by wharf",
            ),
        ];
        for (extra, want) in cases {
            let err = validate(&both(extra.clone()), &settings(true)).unwrap_err();
            assert!(err.0.contains(want), "{extra}: {err}");
        }
        let fine =
            both(json!({"trainer": {"image": "i", "env": [{"name": "HOME", "value": "/work"}]}}));
        let job = build(&fine, &settings(false)).unwrap();
        let homes: Vec<_> = env_of(&job)
            .into_iter()
            .filter(|(n, _)| n == "HOME")
            .collect();
        assert_eq!(
            homes,
            [("HOME".to_owned(), Some("/work".to_owned()))],
            "the user's HOME wins alone"
        );
    }

    #[test]
    fn a_built_in_trainjob_without_epochs_leaves_them_to_the_trainer() {
        let mut tj = trainjob("pvc://data/fashion", "pvc://models/fashion");
        tj.spec.epochs = None;
        let args = args(&build(&tj, &settings(false)).unwrap());
        assert!(!args.iter().any(|a| a.starts_with("--epochs")), "{args:?}");
    }

    #[test]
    fn the_model_uri_is_the_output_uri_and_the_version() {
        assert_eq!(
            model_uri("pvc://models/fashion", "/mnt/claims/models/fashion/3"),
            "pvc://models/fashion/3"
        );
        assert_eq!(
            model_uri("pvc://models/", "/mnt/claims/models/1"),
            "pvc://models/1"
        );
    }
}
