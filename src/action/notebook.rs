//! `wharf notebook create|list|delete`: Jupyter servers in a profile's namespace. A notebook
//! (Kubeflow's `kubeflow.org/v1` Notebook, served by the workspaces charm) becomes a StatefulSet,
//! a Service and a workspace volume, reached at `/notebook/<namespace>/<name>/` by the profile's
//! owner; the workspaces operator does that work, these verbs only write and read Notebooks.
//!
//! `delete` removes the server but never the workspace volume (the user's files): it says so and
//! names the claim to delete by hand.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Global, Outcome, OutputFormat, Session};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub enum Options {
    Create(CreateOptions),
    List { namespace: Option<String> },
    Delete { name: String, namespace: String },
}

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub name: String,
    /// The profile's namespace.
    pub namespace: String,
    /// `minimal`, `scipy` (the charm's pinned choices) or an image reference.
    pub image: String,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    /// What the server runs as (the profile's `default-editor` by default, as Kubeflow's
    /// notebook web app does).
    pub service_account: String,
    /// How long to wait for the server to run (zero: do not wait).
    pub timeout: Duration,
}

/// The Notebook resource (served by the workspaces charm's CRD; namespaced).
pub(crate) fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubeflow.org", "v1", "Notebook"),
        "notebooks",
    )
}

pub fn run(global: &Global, options: &Options) -> Outcome {
    super::runtime()?.block_on(async {
        let session = Session::open(global).await?;
        let client = session.client().clone();
        match options {
            Options::Create(create) => {
                let api = Api::namespaced_with(client, &create.namespace, &resource());
                self::create(&session, &api, create).await
            }
            Options::List { namespace } => {
                let api = match namespace {
                    Some(ns) => Api::namespaced_with(client, ns, &resource()),
                    None => Api::all_with(client, &resource()),
                };
                list(&session, &api).await
            }
            Options::Delete { name, namespace } => {
                let api = Api::namespaced_with(client, namespace, &resource());
                delete(&session, &api, name, namespace).await
            }
        }
    })
}

/// A notebook name names its Service and StatefulSet (the operator's rule, said here first).
pub(crate) fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 52
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "notebook name `{name}`: use at most 52 lowercase letters, digits and '-', starting \
             with a letter and ending with a letter or digit (it names the server's Service)"
        );
    }
    Ok(())
}

/// The Notebook's body: one container, the image by choice name or reference, the requests, and
/// the ServiceAccount it runs as.
pub(crate) fn body(options: &CreateOptions) -> Value {
    let mut requests = serde_json::Map::new();
    if let Some(cpu) = &options.cpu {
        requests.insert("cpu".into(), json!(cpu));
    }
    if let Some(memory) = &options.memory {
        requests.insert("memory".into(), json!(memory));
    }
    let mut container = json!({"name": "notebook", "image": options.image});
    if !requests.is_empty() {
        container["resources"] = json!({"requests": requests});
    }
    json!({"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
        "metadata": {"name": options.name, "namespace": options.namespace},
        "spec": {"template": {"spec": {"serviceAccountName": options.service_account,
            "containers": [container]}}}})
}

fn not_served() -> anyhow::Error {
    anyhow::anyhow!(
        "this cluster does not serve Notebooks (kubeflow.org/v1) in that namespace: deploy the \
         workspaces charm first (`wharf deploy full`), and create the profile \
         (`wharf profile create NAME --owner EMAIL`)"
    )
}

/// (status, reason, message) of the Ready condition.
pub(crate) fn ready(data: &Value) -> Option<(String, String, String)> {
    let c = data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    let text = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    Some((text("status"), text("reason"), text("message")))
}

async fn create(session: &Session, api: &Api<DynamicObject>, options: &CreateOptions) -> Outcome {
    check_name(&options.name)?;
    for (flag, value) in [("--cpu", &options.cpu), ("--memory", &options.memory)] {
        if let Some(value) = value {
            super::profile::check_quantity(flag, value)?;
        }
    }
    let (name, ns) = (&options.name, &options.namespace);
    let notebook: DynamicObject = serde_json::from_value(body(options)).expect("a Notebook body");
    match api.create(&PostParams::default(), &notebook).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            bail!("notebook {name} already exists in {ns}; see `wharf notebook list -n {ns}`")
        }
        Err(kube::Error::Api(e)) if e.code == 404 => return Err(not_served()),
        Err(e) => {
            return Err(session.describe(&format!("creating notebook {ns}/{name}"))(
                e,
            ));
        }
    }
    let path = format!("/notebook/{ns}/{name}/");
    let mut state = "created; not waiting for it".to_owned();
    if !options.timeout.is_zero() {
        let deadline = tokio::time::Instant::now() + options.timeout;
        loop {
            let current = api
                .get(name)
                .await
                .map_err(session.describe(&format!("reading notebook {ns}/{name}")))?;
            match ready(&current.data) {
                Some((status, _, _)) if status == "True" => {
                    state = "running".into();
                    break;
                }
                Some((_, reason, message)) if reason.starts_with("Invalid") => bail!(
                    "notebook {ns}/{name} was created but refused ({reason}): {message}\nremove \
                     it with `wharf notebook delete {name} -n {ns}`"
                ),
                why if tokio::time::Instant::now() >= deadline => {
                    let why = why
                        .map(|(_, reason, message)| format!("{reason}: {message}"))
                        .unwrap_or_else(|| {
                            "the workspaces operator has not reported on it (see `wharf status`)"
                                .into()
                        });
                    bail!(
                        "notebook {ns}/{name} was created but is not running after {}: {why}",
                        humantime::format_duration(options.timeout)
                    );
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
    if session.output.is_text() {
        super::print_stdout(&format!(
            "notebook {ns}/{name} {state}: open {path} on the platform (its profile's owner only)\n"
        ))?;
    } else {
        session
            .output
            .document(&json!({"name": name, "namespace": ns, "path": path, "state": state}))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct Row {
    namespace: String,
    name: String,
    ready: String,
    reason: String,
    path: String,
}

async fn list(session: &Session, api: &Api<DynamicObject>) -> Outcome {
    let items = match api.list(&Default::default()).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(e)) if e.code == 404 => return Err(not_served()),
        Err(e) => return Err(session.describe("listing notebooks")(e)),
    };
    let mut rows: Vec<Row> = items
        .iter()
        .map(|n| {
            let (ready, reason, _) = ready(&n.data)
                .unwrap_or_else(|| ("Unknown".into(), "Pending".into(), String::new()));
            let namespace = n.metadata.namespace.clone().unwrap_or_default();
            let name = n.metadata.name.clone().unwrap_or_default();
            Row {
                path: format!("/notebook/{namespace}/{name}/"),
                namespace,
                name,
                ready,
                reason,
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    if session.output != OutputFormat::Text {
        session.output.document(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        super::print_stdout(
            "no notebooks; create one with `wharf notebook create NAME -n PROFILE`\n",
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let width = |f: fn(&Row) -> &str, title: &str| {
        rows.iter()
            .map(|r| f(r).len())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let (wns, wn, wr, wre) = (
        width(|r| r.namespace.as_str(), "NAMESPACE"),
        width(|r| r.name.as_str(), "NAME"),
        width(|r| r.ready.as_str(), "READY"),
        width(|r| r.reason.as_str(), "REASON"),
    );
    let mut out = format!(
        "{:wns$}  {:wn$}  {:wr$}  {:wre$}  PATH\n",
        "NAMESPACE", "NAME", "READY", "REASON"
    );
    for r in &rows {
        out.push_str(&format!(
            "{:wns$}  {:wn$}  {:wr$}  {:wre$}  {}\n",
            r.namespace, r.name, r.ready, r.reason, r.path
        ));
    }
    super::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Deletes the server (StatefulSet and Service go with it); the workspace volume stays.
async fn delete(session: &Session, api: &Api<DynamicObject>, name: &str, ns: &str) -> Outcome {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {
            if api.list(&Default::default()).await.is_err() {
                return Err(not_served());
            }
            bail!("no notebook {name} in {ns}; see `wharf notebook list -n {ns}`")
        }
        Err(e) => {
            return Err(session.describe(&format!("deleting notebook {ns}/{name}"))(
                e,
            ));
        }
    }
    let claim = format!("{name}-workspace");
    if session.output.is_text() {
        super::print_stdout(&format!(
            "deleted notebook {ns}/{name}; its workspace volume {claim} (your files) is kept: a \
             notebook created again as {name} finds it. Delete it yourself when unneeded: \
             kubectl delete pvc {claim} -n {ns}\n"
        ))?;
    } else {
        session
            .output
            .document(&json!({"deleted": name, "namespace": ns, "kept": claim}))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_become_one_container_with_its_image_requests_and_account() {
        let options = CreateOptions {
            name: "nb".into(),
            namespace: "alice".into(),
            image: "scipy".into(),
            cpu: Some("500m".into()),
            memory: None,
            service_account: "default-editor".into(),
            timeout: Duration::ZERO,
        };
        let b = body(&options);
        assert_eq!(b["metadata"]["namespace"], "alice");
        assert_eq!(
            b["spec"]["template"]["spec"]["serviceAccountName"],
            "default-editor"
        );
        assert_eq!(
            b["spec"]["template"]["spec"]["containers"],
            json!([{"name": "notebook", "image": "scipy", "resources": {"requests": {"cpu": "500m"}}}])
        );
    }

    #[test]
    fn names_that_cannot_name_a_service_are_refused() {
        assert!(check_name("nb-1").is_ok());
        for bad in ["1nb", "Nb", "nb-", "n.b"] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("notebook name `{bad}`")), "{err}");
        }
    }
}
