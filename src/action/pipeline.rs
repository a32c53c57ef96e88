//! `wharf pipeline compile FILE` prints (or writes) the Argo Workflow a KFP pipeline compiles to;
//! `wharf pipeline run FILE` compiles it, gives it the `--param` values, submits it to the
//! namespace and, with `--watch`, follows its steps until it ends. Everything that can be wrong
//! with the file is found before the cluster is asked anything.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde::Serialize;

use super::{Global, Outcome, print_stdout};
use crate::kube::{connect, errors};
use crate::pipeline::{self, argo, progress::Snapshot};

#[derive(Debug, Clone)]
pub enum Command {
    Compile(CompileOptions),
    Run(RunOptions),
}

#[derive(Debug, Clone)]
pub struct CompileOptions {
    pub file: PathBuf,
    /// Write the Workflow here instead of stdout.
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub file: PathBuf,
    /// `NAME=VALUE` for the pipeline's parameters.
    pub params: Vec<String>,
    /// Default: the kubeconfig context's namespace.
    pub namespace: Option<String>,
    pub watch: bool,
    /// Between two looks at a watched Workflow.
    pub interval: Duration,
}

pub fn run(global: &Global, command: &Command) -> Outcome {
    match command {
        Command::Compile(o) => compile(o),
        Command::Run(o) => {
            let pipeline = pipeline::load(&o.file)?;
            let mut workflow = pipeline::compile(&pipeline)?;
            pipeline::set_parameters(&pipeline, &mut workflow, &o.params)?;
            super::runtime()?.block_on(submit(global, o, &workflow))
        }
    }
}

fn compile(o: &CompileOptions) -> Outcome {
    let pipeline = pipeline::load(&o.file)?;
    let workflow = pipeline::compile(&pipeline)?;
    let yaml = pipeline::to_yaml(&workflow)?;
    match &o.out {
        Some(path) => {
            std::fs::write(path, yaml).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote the Argo Workflow to {}", path.display());
        }
        None => print_stdout(&yaml)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// What `--output json|yaml` prints.
#[derive(Serialize)]
struct Submitted {
    name: String,
    namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Snapshot>,
}

async fn submit(global: &Global, o: &RunOptions, workflow: &argo::Workflow) -> Outcome {
    let cluster = connect(global.kubeconfig.as_deref(), global.context.as_deref()).await?;
    let namespace = o
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.client.default_namespace().to_string());
    let resource = workflow_resource(&cluster.client, &cluster.server).await?;
    if let Some(warning) = missing_step_account(&cluster.client, &namespace).await {
        eprintln!("warning: {warning}");
    }
    let api: Api<DynamicObject> =
        Api::namespaced_with(cluster.client.clone(), &namespace, &resource);
    let object: DynamicObject = serde_json::from_value(serde_json::to_value(workflow)?)?;
    let what = format!(
        "submit the Workflow {}… to namespace {namespace}",
        workflow.metadata.generate_name
    );
    let created = api
        .create(&PostParams::default(), &object)
        .await
        .map_err(|e| anyhow!(errors::describe(&e, &what, &cluster.server)))?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let text = global.output.is_text();
    if text {
        println!("workflow {name} submitted to namespace {namespace}");
    }
    let status = if o.watch {
        Some(follow(&api, &name, o.interval, text, &cluster.server).await?)
    } else {
        if text {
            println!(
                "follow it with: wharf pipeline run … --watch, or kubectl get workflow {name} -n {namespace} -w"
            );
        }
        None
    };
    let failed = status.as_ref().is_some_and(|s| !s.succeeded());
    let summary = Submitted {
        name: name.clone(),
        namespace,
        status,
    };
    global.output.document(&summary)?;
    if failed {
        let s = summary.status.as_ref().expect("watched");
        let why = if s.message.is_empty() {
            String::new()
        } else {
            format!(": {}", s.message)
        };
        return Err(anyhow!("workflow {name} ended {}{why}", s.phase));
    }
    Ok(ExitCode::SUCCESS)
}

/// The Workflow kind as this cluster serves it, or the error saying pipelines need Argo.
async fn workflow_resource(client: &kube::Client, server: &str) -> anyhow::Result<ApiResource> {
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow");
    match kube::discovery::pinned_kind(client, &gvk).await {
        Ok((resource, _)) => Ok(resource),
        Err(e) if errors::is_not_found(&e) || matches!(e, kube::Error::Discovery(_)) => {
            Err(anyhow!(
                "this cluster serves no Argo Workflows (workflows.argoproj.io/v1alpha1): pipelines \
             need the full bundle, which installs Argo Workflows (`wharf deploy full`); \
             `wharf pipeline compile` works without a cluster"
            ))
        }
        Err(e) => Err(anyhow!(errors::describe(
            &e,
            "discover argoproj.io/v1alpha1",
            server
        ))),
    }
}

/// The ServiceAccount the full bundle's Argo runs pipeline steps as when a Workflow names none
/// (the argo charm's `workflow-service-account`, whose default this is).
const STEP_ACCOUNT: &str = "workflow";

/// Why the steps would not start in `namespace`, when it lacks the account they run as (a
/// namespace that is neither a profile nor the model namespace). Only a warning: the account may
/// have been renamed, and a user who may not read ServiceAccounts is not told anything.
async fn missing_step_account(client: &kube::Client, namespace: &str) -> Option<String> {
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), namespace);
    match accounts.get_opt(STEP_ACCOUNT).await {
        Ok(None) => Some(format!(
            "namespace {namespace} has no ServiceAccount `{STEP_ACCOUNT}`, which Argo runs the \
             pipeline's steps as: its pods will not start. Run pipelines in a profile namespace \
             (`wharf profile create NAME --owner EMAIL`, then `-n NAME`), where the workspaces \
             operator creates it"
        )),
        _ => None,
    }
}

/// Print each change of the Workflow's state until it ends; the last state.
async fn follow(
    api: &Api<DynamicObject>,
    name: &str,
    interval: Duration,
    text: bool,
    server: &str,
) -> anyhow::Result<Snapshot> {
    let mut last = Snapshot::default();
    loop {
        let object = api.get(name).await.map_err(|e| {
            anyhow!(errors::describe(
                &e,
                &format!("read workflow {name}"),
                server
            ))
        })?;
        let now = Snapshot::of(&serde_json::to_value(&object)?);
        for line in now.changes(&last, name) {
            if text {
                println!("{line}");
            } else {
                eprintln!("{line}");
            }
        }
        if now.is_done() {
            return Ok(now);
        }
        last = now;
        tokio::time::sleep(interval).await;
    }
}
