//! The data volumes charms declare (`data:` in metadata.yaml: a claim, and how to quiesce the
//! application while it is read), in and out of a backup. wharf runs no port-forward and mounts
//! nothing itself: a short-lived pod on wharf's own image mounts the claim, and wharf runs
//! `wharf backup agent stream /data` (or `restore /data`) in it through `pods/exec`, reading the
//! tar stream from its stdout (or writing it to its stdin). The stream is encrypted and
//! checksummed here, outside the cluster, like every other item; it is never held whole in memory.
//!
//! Always undone, also on an error or a signal: the workloads scaled to zero get their replicas
//! back and the agent pod is deleted ([`Cleanup`]).
//!
//! RBAC the user running wharf needs beyond the rest of the backup: `pods` create, get and delete,
//! and `pods/exec` create, in the model namespace; with `quiesce: scale-down`, `deployments` and
//! `statefulsets` get, patch and list `pods`. `--no-data` needs none of it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, ApiResource, AttachParams, DeleteParams, DynamicObject, ListParams, Patch, PatchParams,
    PostParams,
};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::action::Session;
use crate::charm::metadata::Quiesce;
use crate::charm::{Charm, Source};
use crate::kube::pod_exec::Exec;
use crate::store::releases::History;

/// Where the agent pod mounts the claim.
pub const MOUNT: &str = "/data";
/// wharf's binary in its image.
const BINARY: &str = "/usr/local/bin/wharf";
/// The field manager of the scale-down (the scale-up re-applies wharf's own manifest).
const SCALE_MANAGER: &str = "wharf-backup";
/// How long the agent pod may take to start, and the workloads to stop.
const WAIT: Duration = Duration::from_secs(120);
/// The agent pod ends by itself after this long, should wharf die without deleting it.
const AGENT_LIFETIME_SECONDS: u64 = 6 * 3600;
/// Bytes buffered between the websocket and the stream (kube-rs's default is 1 KiB).
const BUFFER: usize = 256 * 1024;
/// How long the agent may take to exit once its stream has ended (all sent or all read).
const STATUS_WAIT: Duration = Duration::from_secs(120);

/// One data volume of a deployed application.
#[derive(Debug, Clone, PartialEq)]
pub struct DataClaim {
    pub app: String,
    pub claim: String,
    pub quiesce: Quiesce,
    /// The workloads of the application's deployed record that mount the claim (to scale down),
    /// as the record applied them.
    pub workloads: Vec<Value>,
}

/// The data volumes of the deployed applications in `history`: each charm's `data:` claims
/// rendered for the application (their templates see `app.name`, `app.namespace`,
/// `app.version`, `app.charm` and `config`).
pub fn claims(history: &History, model: &str, source: &Source) -> anyhow::Result<Vec<DataClaim>> {
    let mut out = Vec::new();
    for app in history.apps.keys() {
        let Some(record) = history.deployed(app) else {
            continue;
        };
        let charm = Charm::load(source, &record.charm).with_context(|| {
            format!(
                "application `{app}` runs charm `{}`, whose metadata says which volumes hold data",
                record.charm
            )
        })?;
        let mut context = tera::Context::new();
        context.insert(
            "app",
            &json!({"name": app, "namespace": model, "version": record.charm_version,
                    "charm": record.charm}),
        );
        context.insert("config", &record.config);
        for (index, volume) in charm.meta.data.iter().enumerate() {
            let field = format!("charms/{}/metadata.yaml: data[{index}].claim", record.charm);
            let claim = charm
                .engine
                .render(&field, &context)
                .map_err(|e| anyhow!("{field}: {}", crate::charm::tera_error(&e)))?
                .trim()
                .to_owned();
            let workloads = record
                .manifests
                .iter()
                .filter(|m| mounts(m, &claim))
                .cloned()
                .collect();
            out.push(DataClaim {
                app: app.clone(),
                claim,
                quiesce: volume.quiesce,
                workloads,
            });
        }
    }
    Ok(out)
}

/// Whether `obj` is a Deployment or StatefulSet whose pods mount `claim`.
fn mounts(obj: &Value, claim: &str) -> bool {
    matches!(obj["kind"].as_str(), Some("Deployment" | "StatefulSet"))
        && obj["apiVersion"] == "apps/v1"
        && obj
            .pointer("/spec/template/spec/volumes")
            .and_then(Value::as_array)
            .is_some_and(|vs| {
                vs.iter()
                    .any(|v| v["persistentVolumeClaim"]["claimName"] == claim)
            })
}

/// What to undo: the workloads scaled down (with their manifest and replicas before) and the
/// agent pod. Shared with the work it guards, so a signal that drops the work leaves it here.
#[derive(Clone, Default)]
pub struct Cleanup(Arc<Mutex<Undo>>);

#[derive(Default)]
struct Undo {
    scaled: Vec<(Value, i64)>,
    pod: Option<String>,
}

impl Cleanup {
    fn lock(&self) -> std::sync::MutexGuard<'_, Undo> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delete the agent pod and give the scaled workloads their replicas back, reporting each
    /// failure (all are tried).
    pub async fn undo(&self, session: &Session) -> anyhow::Result<()> {
        let (pod, scaled) = {
            let mut u = self.lock();
            (u.pod.take(), std::mem::take(&mut u.scaled))
        };
        let mut problems = Vec::new();
        if let Some(name) = pod {
            let pods: Api<Pod> = Api::namespaced(session.client().clone(), &session.model);
            match pods.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if crate::kube::errors::is_not_found(&e) => {}
                Err(e) => problems.push(format!(
                    "delete the backup agent pod {name} (`kubectl -n {} delete pod {name}`): {}",
                    session.model,
                    session.describe("delete pod")(e)
                )),
            }
        }
        for (manifest, replicas) in scaled.into_iter().rev() {
            if let Err(e) = scale_back(session, &manifest, replicas).await {
                problems.push(format!("{e:#}"));
            }
        }
        if !problems.is_empty() {
            bail!(
                "cleaning up after the data volumes: {}",
                problems.join("; ")
            );
        }
        Ok(())
    }
}

/// Run `work` with `cleanup` undone afterwards, whether it succeeded, failed or a signal came.
pub async fn guarded<T>(
    session: &Session,
    cleanup: &Cleanup,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let result = tokio::select! {
        r = work => r,
        signal = crate::engine::perform::interruption() => {
            Err(anyhow!("interrupted by {signal}"))
        }
    };
    let undone = cleanup.undo(session).await;
    match (result, undone) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(u)) => Err(e.context(format!("{u:#}"))),
    }
}

fn workload_resource(kind: &str) -> anyhow::Result<ApiResource> {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    match kind {
        "Deployment" => Ok(ApiResource::erase::<Deployment>(&())),
        "StatefulSet" => Ok(ApiResource::erase::<StatefulSet>(&())),
        other => bail!("cannot scale a {other}"),
    }
}

fn workload_api(
    session: &Session,
    manifest: &Value,
) -> anyhow::Result<(Api<DynamicObject>, String)> {
    let kind = manifest["kind"].as_str().unwrap_or_default();
    let name = manifest["metadata"]["name"]
        .as_str()
        .ok_or_else(|| anyhow!("a {kind} without a name in the record"))?;
    let ar = workload_resource(kind)?;
    Ok((
        Api::namespaced_with(session.client().clone(), &session.model, &ar),
        format!("{kind}/{name}"),
    ))
}

/// Scale the claim's workloads to zero and wait until none of their pods is left.
pub async fn quiesce(
    session: &Session,
    claim: &DataClaim,
    cleanup: &Cleanup,
) -> anyhow::Result<()> {
    if claim.quiesce != Quiesce::ScaleDown {
        return Ok(());
    }
    for manifest in &claim.workloads {
        let (api, what) = workload_api(session, manifest)?;
        let name = what.split('/').nth(1).unwrap_or_default().to_owned();
        let live = api
            .get(&name)
            .await
            .map_err(session.describe(&format!("read {what}")))?;
        let replicas = live.data["spec"]["replicas"].as_i64().unwrap_or(1);
        let patch = json!({"spec": {"replicas": 0}});
        api.patch(
            &name,
            &PatchParams {
                field_manager: Some(SCALE_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(&patch),
        )
        .await
        .map_err(session.describe(&format!("scale {what} to 0")))?;
        cleanup.lock().scaled.push((manifest.clone(), replicas));
        wait_stopped(session, &api, &name, &what, manifest).await?;
    }
    Ok(())
}

async fn wait_stopped(
    session: &Session,
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
    manifest: &Value,
) -> anyhow::Result<()> {
    let selector: Vec<String> = manifest
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    let pods: Api<Pod> = Api::namespaced(session.client().clone(), &session.model);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let live = api
            .get(name)
            .await
            .map_err(session.describe(&format!("read {what}")))?;
        let running = live.data["status"]["replicas"].as_i64().unwrap_or(0);
        let left = if selector.is_empty() {
            0
        } else {
            pods.list(&ListParams::default().labels(&selector.join(",")))
                .await
                .map_err(session.describe("list pods"))?
                .items
                .len()
        };
        if running == 0 && left == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "{what} still has {} pod(s) {}s after it was scaled to 0 for the backup of its \
                 data; its replicas are being put back",
                running.max(left as i64),
                WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Give a workload its replicas back by re-applying wharf's own manifest of it (forced, as
/// wharf): `spec.replicas` is then wharf's again, as before the backup, so a later deploy that
/// changes it does not conflict with the scale-down's field manager.
async fn scale_back(session: &Session, manifest: &Value, replicas: i64) -> anyhow::Result<()> {
    let (api, what) = workload_api(session, manifest)?;
    let name = what.split('/').nth(1).unwrap_or_default().to_owned();
    if manifest.pointer("/spec/replicas").is_some() {
        let mut applied = manifest.clone();
        applied["spec"]["replicas"] = json!(replicas);
        let obj: DynamicObject = serde_json::from_value(applied)?;
        api.patch(
            &name,
            &PatchParams::apply(crate::kube::FIELD_MANAGER).force(),
            &Patch::Apply(&obj),
        )
        .await
        .map_err(session.describe(&format!("scale {what} back to {replicas}")))?;
    } else {
        // wharf does not own the replicas (an autoscaler does): set them back as they were.
        api.patch(
            &name,
            &PatchParams {
                field_manager: Some(SCALE_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
        )
        .await
        .map_err(session.describe(&format!("scale {what} back to {replicas}")))?;
    }
    Ok(())
}

/// The agent pod: wharf's image, the claim at [`MOUNT`] (read-only for a backup), waiting for
/// exec. It runs as root so it can read every file and put owners back, with only the
/// capabilities that needs.
pub fn agent_pod(name: &str, model: &str, claim: &DataClaim, image: &str, writable: bool) -> Value {
    let capabilities: &[&str] = if writable {
        &["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"]
    } else {
        &["DAC_READ_SEARCH"]
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": model, "labels": {
            "app.kubernetes.io/managed-by": "wharf",
            "app.kubernetes.io/component": "backup-agent",
            // Not the application's own labels: its workloads' selectors (a ReplicaSet adopts
            // matching orphans) and Services must never pick the agent up.
            "wharf.dev/backup-of": claim.app,
        }},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": AGENT_LIFETIME_SECONDS,
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "agent",
                "image": image,
                "command": [BINARY, "backup", "agent", "wait", "--seconds",
                            AGENT_LIFETIME_SECONDS.to_string()],
                "volumeMounts": [{"name": "data", "mountPath": MOUNT, "readOnly": !writable}],
                "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"], "add": capabilities}},
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim":
                {"claimName": claim.claim, "readOnly": !writable}}],
        }
    })
}

/// wharf's image as this cluster's nodes pull it (the model's image registry, if set).
pub async fn agent_image(session: &Session) -> anyhow::Result<String> {
    let settings =
        crate::store::platform::load(session.client(), &session.model, session.server()).await?;
    Ok(crate::render::from_registry(
        &crate::images::Workload::Wharf.reference(),
        &settings.image_registry,
    ))
}

/// Create the agent pod and wait until it runs; it is in `cleanup` from the moment it exists.
pub async fn start_agent(
    session: &Session,
    claim: &DataClaim,
    writable: bool,
    cleanup: &Cleanup,
) -> anyhow::Result<String> {
    let image = agent_image(session).await?;
    let name = format!("wharf-agent-{}", hex::encode(rand::random::<[u8; 4]>()));
    let pod: Pod =
        serde_json::from_value(agent_pod(&name, &session.model, claim, &image, writable))?;
    let pods: Api<Pod> = Api::namespaced(session.client().clone(), &session.model);
    cleanup.lock().pod = Some(name.clone());
    if let Err(e) = pods.create(&PostParams::default(), &pod).await {
        cleanup.lock().pod = None;
        return Err(session.describe(&format!(
            "create the backup agent pod for claim {} (wharf needs pods create, get and delete \
             and pods/exec create in namespace {}; or pass --no-data)",
            claim.claim, session.model
        ))(e));
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let p = pods
            .get(&name)
            .await
            .map_err(session.describe(&format!("read pod {name}")))?;
        let status = p.status.unwrap_or_default();
        match status.phase.as_deref() {
            Some("Running") => return Ok(name),
            Some(phase @ ("Failed" | "Succeeded")) => bail!(
                "the backup agent pod {name} ended ({phase}) before it was used: {}",
                status.message.unwrap_or_default()
            ),
            _ => {}
        }
        let waiting = status
            .container_statuses
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.state?.waiting)
            .find(|w| {
                matches!(
                    w.reason.as_deref(),
                    Some("ImagePullBackOff" | "ErrImagePull")
                )
            });
        if let Some(w) = waiting {
            bail!(
                "the backup agent pod {name} cannot pull wharf's image {image} ({}): import it \
                 into the nodes (`wharf images import`, as `wharf up` does) or push it to the \
                 model's image registry, or pass --no-data",
                w.reason.unwrap_or_default()
            );
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the backup agent pod {name} for claim {} is not running after {}s (is the claim \
                 bound? `kubectl -n {} describe pod {name}`)",
                claim.claim,
                WAIT.as_secs(),
                session.model
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `wharf backup agent VERB /data` in the agent pod, through pods/exec (on the client without a
/// read timeout: `kube::pod_exec` bounds every wait of the exec instead).
async fn exec(session: &Session, pod: &str, verb: &str, stdin: bool) -> anyhow::Result<Exec> {
    let pods: Api<Pod> = Api::namespaced(session.cluster.streams.clone(), &session.model);
    let params = AttachParams::default()
        .container("agent")
        .stdin(stdin)
        .stdout(true)
        .stderr(true)
        .max_stdin_buf_size(BUFFER)
        .max_stdout_buf_size(BUFFER);
    let command = [BINARY, "backup", "agent", verb, MOUNT];
    // Bounded: the request and its upgrade are one short exchange.
    let proc = tokio::time::timeout(WAIT, pods.exec(pod, command, &params))
        .await
        .map_err(|_| {
            anyhow!(
                "exec in pod {pod} did not start within {}s (pods/exec through {})",
                WAIT.as_secs(),
                session.server()
            )
        })?
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 403 => anyhow!(
                "{}: wharf streams data volumes through pods/exec; grant `create` on \
                 `pods/exec` in namespace {} (see README, Backups), or pass --no-data",
                s.message,
                session.model
            ),
            e => session.describe(&format!("exec in pod {pod}"))(e),
        })?;
    Ok(Exec::new(
        proc,
        format!("`wharf backup agent {verb}` in pod {pod}"),
    ))
}

/// The claim's files as a tar stream from the agent pod: the item's bytes. The stream ends with
/// an error, not quietly, when the agent did not succeed.
pub async fn stream(
    session: &Session,
    pod: &str,
    claim: &DataClaim,
) -> anyhow::Result<impl Stream<Item = Result<Bytes, object_store::Error>> + use<>> {
    let mut exec = exec(session, pod, "stream", false).await?;
    let stdout = exec
        .stdout()
        .ok_or_else(|| anyhow!("pods/exec gave no stdout"))?;
    let what = format!("claim {} of application `{}`", claim.claim, claim.app);
    let failed = |e: anyhow::Error| object_store::Error::Generic {
        store: "pods/exec",
        source: e.into(),
    };
    let body = tokio_util::io::ReaderStream::with_capacity(stdout, BUFFER)
        .map(move |r| r.map_err(|e| failed(anyhow!(e))));
    let end = futures::stream::once(async move {
        // The exec (its process and websocket) lives until here.
        match exec.finish(STATUS_WAIT, "its output ended").await {
            Ok(()) => Ok(Bytes::new()),
            Err(why) => Err(failed(anyhow!(
                "the backup agent failed reading {what}: {why}"
            ))),
        }
    });
    Ok(body.chain(end))
}

/// Feed the claim's tar stream to the agent pod's `restore`, chunk by chunk from `source` (the
/// decrypted, checked item), then wait for it to succeed.
pub async fn restore<F>(
    session: &Session,
    pod: &str,
    claim: &DataClaim,
    feed: F,
) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&mut (dyn tokio::io::AsyncWrite + Unpin + Send)) -> anyhow::Result<()>,
{
    let what = format!("claim {} of application `{}`", claim.claim, claim.app);
    let mut exec = exec(session, pod, "restore", true).await?;
    let mut stdin = exec
        .stdin()
        .ok_or_else(|| anyhow!("pods/exec gave no stdin"))?;
    // stdout is unused, but must be read or the exec's buffer could fill; it ends with the exec.
    let sink = exec.stdout().map(|mut r| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut r, &mut tokio::io::sink()).await;
        })
    });
    let feeding = async {
        let writer: &mut (dyn tokio::io::AsyncWrite + Unpin + Send) = &mut stdin;
        let fed = feed(writer).await;
        (fed, stdin.shutdown().await)
    };
    tokio::pin!(feeding);
    let finished = exec.outcome();
    tokio::pin!(finished);
    // The agent may end before it has read everything (it refuses a claim that is not empty);
    // whichever ends first decides. Its own failure explains more than a failed write does.
    let result = tokio::select! {
        (fed, closed) = &mut feeding => {
            match tokio::time::timeout(STATUS_WAIT, &mut finished).await {
                Ok(Err(why)) => Err(anyhow!("the backup agent failed restoring {what}: {why}")),
                Err(_) => Err(anyhow!(
                    "the backup agent restoring {what} gave no exit status {}s after the whole \
                     stream was sent",
                    STATUS_WAIT.as_secs()
                )),
                Ok(Ok(())) => fed.and_then(|()| {
                    closed.map_err(|e| anyhow!("restoring {what}: {e}"))
                }),
            }
        }
        done = &mut finished => match done {
            Err(why) => Err(anyhow!("the backup agent failed restoring {what}: {why}")),
            // Success may come a moment before our end of the stream is closed (tar stops at
            // its end-of-archive blocks); anything more than a moment is a stream cut short.
            Ok(()) => match tokio::time::timeout(Duration::from_secs(30), &mut feeding).await {
                Ok((fed, closed)) => fed.and_then(|()| {
                    closed.map_err(|e| anyhow!("restoring {what}: {e}"))
                }),
                Err(_) => Err(anyhow!(
                    "the backup agent ended before it had read the whole stream restoring {what}"
                )),
            },
        },
    };
    if let Some(sink) = sink {
        sink.abort();
    }
    result
}

/// The claims the backup's volume items name, with what to quiesce from the model's records
/// (after a restore of the state, the records are the backup's).
pub fn claims_of_items(items: &[(String, String, Quiesce)], history: &History) -> Vec<DataClaim> {
    let manifests: BTreeMap<&str, &[Value]> = history
        .apps
        .keys()
        .filter_map(|a| Some((a.as_str(), history.deployed(a)?.manifests.as_slice())))
        .collect();
    items
        .iter()
        .map(|(app, claim, quiesce)| DataClaim {
            app: app.clone(),
            claim: claim.clone(),
            quiesce: *quiesce,
            workloads: manifests
                .get(app.as_str())
                .into_iter()
                .flat_map(|m| m.iter())
                .filter(|m| mounts(m, claim))
                .cloned()
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_pod_mounts_the_claim_read_only_for_a_backup() {
        let claim = DataClaim {
            app: "store".into(),
            claim: "store-data".into(),
            quiesce: Quiesce::ScaleDown,
            workloads: vec![],
        };
        let pod = agent_pod(
            "wharf-agent-x",
            "tiny",
            &claim,
            "wharf.local/wharf:0.1.0",
            false,
        );
        assert_eq!(
            pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "store-data"
        );
        assert_eq!(
            pod["spec"]["volumes"][0]["persistentVolumeClaim"]["readOnly"],
            true
        );
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["volumeMounts"][0]["mountPath"], MOUNT);
        assert_eq!(c["volumeMounts"][0]["readOnly"], true);
        assert_eq!(
            c["securityContext"]["capabilities"]["add"],
            json!(["DAC_READ_SEARCH"])
        );
        assert_eq!(c["command"][0], BINARY);
        assert!(pod["spec"]["activeDeadlineSeconds"].as_u64().is_some());
        let rw = agent_pod("p", "tiny", &claim, "i", true);
        assert_eq!(
            rw["spec"]["containers"][0]["volumeMounts"][0]["readOnly"],
            false
        );
    }

    #[test]
    fn only_workloads_that_mount_the_claim_are_quiesced() {
        let dep = |name: &str, claim: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                "spec": {"template": {"spec": {"volumes": [
                    {"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}}}})
        };
        assert!(mounts(&dep("store", "store-data"), "store-data"));
        assert!(!mounts(&dep("web", "web-cache"), "store-data"));
        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "store-data"}});
        assert!(!mounts(&pvc, "store-data"));
    }
}
