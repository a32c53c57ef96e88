//! `wharf remove APP|--all`: delete what the release records say an application applied, in
//! reverse order (custom resources before their CRDs, workloads before what they use), keeping
//! CRDs unless `--destroy-crds` and PVCs with `--keep-data`; the records go last, so a removal
//! that fails half-way can simply be run again.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams};

use super::{Global, Outcome};
use crate::kube::progress::Progress;
use crate::kube::{Catalog, ObjectRef, connect, errors, prune};
use crate::store::{Lock, OWNER, OWNER_LABEL, Releases, generated, platform};

/// What to remove, and what destruction the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub app: Option<String>,
    pub all: bool,
    pub destroy_data: bool,
    pub destroy_crds: bool,
    pub yes: bool,
    pub force_unlock: bool,
}

pub fn run(global: &Global, args: &Options) -> Outcome {
    super::runtime()?.block_on(remove(global, args))
}

async fn remove(global: &Global, args: &Options) -> Outcome {
    let model = global.model.as_str();
    let cluster = connect(global.kubeconfig.as_deref(), global.context.as_deref()).await?;
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let describe = |what: &str| {
        let server = cluster.server.clone();
        let what = what.to_owned();
        move |e: kube::Error| anyhow!(errors::describe(&e, &what, &server))
    };
    let Some(namespace) = namespaces
        .get_opt(model)
        .await
        .map_err(describe("read the model namespace"))?
    else {
        eprintln!("model `{model}` does not exist (no namespace {model}): nothing to remove");
        return Ok(ExitCode::SUCCESS);
    };
    let catalog = Catalog::load(&cluster.client, &cluster.server).await?;
    let lock = Lock::acquire(&cluster.client, model, &cluster.server, args.force_unlock).await?;
    let result = remove_apps(args, model, &cluster, &catalog).await;
    lock.release().await;
    result?;

    if args.all && args.destroy_data {
        // wharf made the namespace (it carries owner=wharf) and it now holds nothing of ours.
        let ours = namespace
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(OWNER_LABEL))
            .is_some_and(|o| o == OWNER);
        if ours {
            match namespaces.delete(model, &DeleteParams::background()).await {
                Ok(_) => eprintln!("deleted namespace {model}"),
                Err(e) if errors::is_not_found(&e) => {}
                Err(e) => return Err(describe("delete the model namespace")(e)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove_apps(
    args: &Options,
    model: &str,
    cluster: &crate::kube::Cluster,
    catalog: &Catalog,
) -> anyhow::Result<()> {
    let releases = Releases::new(&cluster.client, model, &cluster.server);
    let history = releases.list().await?.apps;
    let apps: Vec<String> = match (&args.app, args.all) {
        (_, true) => history.keys().cloned().collect(),
        (Some(app), false) => {
            if !history.contains_key(app) {
                let known: Vec<_> = history.keys().map(String::as_str).collect();
                bail!(
                    "model `{model}` has no application `{app}`; it has: {}",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                );
            }
            vec![app.clone()]
        }
        (None, false) => bail!("name an application to remove, or pass --all"),
    };

    let allow = prune::Allow {
        crds: args.destroy_crds,
        data: args.destroy_data,
    };
    let progress = Progress::new();
    let mut refs: BTreeSet<ObjectRef> = BTreeSet::new();
    for app in &apps {
        for record in &history[app] {
            refs.extend(record.inventory.iter().map(|e| e.id.clone()));
        }
    }
    let mut kept: Vec<ObjectRef> = refs.iter().filter(|r| !allow.permits(r)).cloned().collect();
    let mut order: Vec<ObjectRef> = refs.into_iter().filter(|r| allow.permits(r)).collect();
    prune::removal_order(&mut order);
    let mut deleted = 0;
    for r in &order {
        if prune::delete(&cluster.client, &cluster.server, catalog, r).await? {
            deleted += 1;
            progress.line(&format!("deleted {r}"));
        }
    }
    for app in &apps {
        for record in &history[app] {
            releases.delete(app, record.revision).await?;
        }
    }
    if args.all && args.destroy_data {
        platform::delete(&cluster.client, model, &cluster.server).await?;
        let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), model);
        match secrets
            .delete(generated::SECRET_NAME, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(e) if errors::is_not_found(&e) => {}
            Err(e) => {
                return Err(anyhow!(errors::describe(
                    &e,
                    "delete the generated secrets",
                    &cluster.server
                )));
            }
        }
    }
    kept.sort();
    progress.line(&format!(
        "removed {}: {deleted} object(s) deleted, {} kept{}",
        apps.join(", "),
        kept.len(),
        if kept.is_empty() {
            String::new()
        } else {
            format!(
                " ({}; pass --destroy-crds / drop --keep-data to delete them)",
                kept.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ));
    Ok(())
}
