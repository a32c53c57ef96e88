//! `wharf cluster add-node|join|status`: grow a MicroK8s cluster node by node (edge clusters of
//! Raspberry Pis), through the same command runner as `wharf up`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::Outcome;
use super::{Global, OutputFormat};
use crate::host::microk8s::{Access, AddNode, MicroK8sCli};
use crate::host::runner::{Cmd, Runner};

/// What `wharf cluster` does.
#[derive(Debug, Clone)]
pub enum Command {
    AddNode,
    Join {
        connection: String,
        worker: bool,
        /// wharf's images, imported into the node's containerd after it joins.
        images: Option<std::path::PathBuf>,
    },
    Status,
}

pub fn run(global: &Global, command: &Command) -> Outcome {
    let runner = Runner::new();
    let access = if nix::unistd::geteuid().is_root() {
        Access::Direct
    } else {
        Access::Sg
    };
    let cli = MicroK8sCli {
        runner: &runner,
        access,
    };
    match command {
        Command::AddNode => add_node(global, &cli),
        Command::Join {
            connection,
            worker,
            images,
        } => join(&cli, connection, *worker, images.as_deref()),
        Command::Status => status(global, &cli),
    }
}

/// `microk8s add-node --format json`, printed as the exact commands to run on the new machine.
fn add_node(global: &Global, cli: &MicroK8sCli) -> Outcome {
    let out = cli
        .runner
        .run(&cli.cmd(&["add-node", "--format", "json"]))?;
    let node = AddNode::parse(&out.stdout)?;
    if global.output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::json!({"token": node.token, "urls": node.urls})
        );
        return Ok(ExitCode::SUCCESS);
    }
    let first = node
        .urls
        .first()
        .context("`microk8s add-node` printed no connection URL; is this node's network up?")?;
    println!("On the machine to add (with wharf installed), run one of:");
    println!("  wharf cluster join {first}            # a control-plane node");
    println!("  wharf cluster join {first} --worker   # a worker only");
    for other in node.urls.iter().skip(1) {
        println!("  (or through another address of this node: wharf cluster join {other})");
    }
    println!("The token is valid for one join, for 24 hours.");
    Ok(ExitCode::SUCCESS)
}

fn join(
    cli: &MicroK8sCli,
    connection: &str,
    worker: bool,
    images: Option<&std::path::Path>,
) -> Outcome {
    // Pods of wharf's images may land on this node: it needs them in its own containerd. Found
    // before joining, so a missing archive stops nothing half-way.
    let archive = super::images::default_archive(images);
    if let Some(path) = &archive
        && !path.is_file()
    {
        anyhow::bail!(
            "--images {}: no such file; copy the archive `wharf up` imported (or `wharf images build -o FILE`)",
            path.display()
        );
    }
    let parts: Vec<&str> = connection.split('/').collect();
    if parts.len() != 3 || !parts[0].contains(':') || parts[1].is_empty() || parts[2].is_empty() {
        anyhow::bail!(
            "CONNECTION `{connection}` is not IP:PORT/TOKEN/CHECK: copy it from `wharf cluster add-node` on a node of the cluster"
        );
    }
    // The token is a credential: it reaches microk8s but never logs or error messages.
    let mut cmd = match cli.access {
        Access::Direct => cli.cmd(&["join"]).secret_arg(connection),
        // Through sg the whole command line is one argument, so that argument is the secret.
        Access::Sg => {
            let mut line = format!("microk8s join {}", shell_words::quote(connection));
            if worker {
                line += " --worker";
            }
            Cmd::new("sg").args(["microk8s", "-c"]).secret_arg(line)
        }
    };
    if worker && cli.access == Access::Direct {
        cmd = cmd.arg("--worker");
    }
    cli.runner
        .run(&cmd.timeout(Duration::from_secs(600)))
        .context("joining failed; the token may be used or expired: run `wharf cluster add-node` on the cluster for a new one")?;
    match &archive {
        Some(path) => eprintln!("images: {}", super::images::import_into(cli, path)?),
        None => eprintln!(
            "note: no image archive (--images FILE, or wharf-images.tar next to wharf): pods of wharf's trainer \
             and server scheduled here need `wharf images import FILE` on this node, or a registry mirror for wharf.local"
        ),
    }
    println!(
        "joined as a {}; `wharf cluster status` on any control-plane node lists it",
        if worker {
            "worker"
        } else {
            "control-plane node"
        }
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct NodeRow {
    name: String,
    ready: bool,
    roles: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ClusterStatus {
    high_availability: bool,
    datastore: Vec<(String, String)>,
    nodes: Vec<NodeRow>,
}

fn status(global: &Global, cli: &MicroK8sCli) -> Outcome {
    let st = cli.status()?;
    let out = cli.runner.run(
        &cli.cmd(&["kubectl", "get", "nodes", "-o", "json"])
            .read_only(),
    )?;
    let nodes = parse_nodes(&out.stdout)?;
    let ha = st
        .high_availability
        .unwrap_or(crate::host::microk8s::HighAvailability {
            enabled: false,
            nodes: Vec::new(),
        });
    let report = ClusterStatus {
        high_availability: ha.enabled,
        datastore: ha.nodes.into_iter().map(|n| (n.address, n.role)).collect(),
        nodes,
    };
    match global.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Yaml => print!("{}", serde_saphyr::to_string(&report)?),
        OutputFormat::Text => {
            println!("{:<24} {:<8} ROLES", "NODE", "READY");
            for n in &report.nodes {
                println!("{:<24} {:<8} {}", n.name, n.ready, n.roles.join(","));
            }
            println!(
                "\nhigh availability: {} (datastore: {})",
                if report.high_availability {
                    "yes"
                } else {
                    "no — 3 control-plane nodes make it highly available"
                },
                report
                    .datastore
                    .iter()
                    .map(|(a, r)| format!("{a} {r}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Names, readiness and roles from `kubectl get nodes -o json`. MicroK8s labels its nodes
/// `node.kubernetes.io/microk8s-controlplane` or `node.kubernetes.io/microk8s-worker`.
fn parse_nodes(text: &str) -> anyhow::Result<Vec<NodeRow>> {
    let list: serde_json::Value =
        serde_json::from_str(text).context("cannot read `kubectl get nodes -o json`")?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    Ok(items
        .iter()
        .map(|n| {
            let labels = n["metadata"]["labels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let roles = labels
                .keys()
                .filter_map(|k| {
                    k.strip_prefix("node.kubernetes.io/microk8s-")
                        .or_else(|| k.strip_prefix("node-role.kubernetes.io/"))
                })
                .map(String::from)
                .collect();
            let ready = n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            NodeRow {
                name: n["metadata"]["name"].as_str().unwrap_or("?").to_string(),
                ready,
                roles,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nodes_and_roles() {
        let text = r#"{"items":[
          {"metadata":{"name":"pi-1","labels":{"node.kubernetes.io/microk8s-controlplane":"microk8s-controlplane"}},
           "status":{"conditions":[{"type":"Ready","status":"True"}]}},
          {"metadata":{"name":"pi-2","labels":{"node.kubernetes.io/microk8s-worker":"microk8s-worker"}},
           "status":{"conditions":[{"type":"Ready","status":"False"}]}}]}"#;
        let nodes = parse_nodes(text).unwrap();
        assert_eq!(nodes[0].name, "pi-1");
        assert!(nodes[0].ready);
        assert_eq!(nodes[0].roles, vec!["controlplane"]);
        assert!(!nodes[1].ready);
        assert_eq!(nodes[1].roles, vec!["worker"]);
    }
}
