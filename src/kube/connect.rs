//! Connecting to the cluster named by `--kubeconfig`/`--context`: every way this fails before
//! anything is written (no kubeconfig, an invalid one, a wrong context, a cluster that does not
//! answer) becomes one line with the cause and the fix.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::errors;

/// A short connect timeout: a cluster that is down should fail fast, not after the OS default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// No single API call wharf makes should take this long; waits are loops of short calls.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A connected cluster: the client and what the status header shows about it.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// The same connection without the read timeout, for pods/exec streams: they may be silent
    /// for long (a restore sends nothing back), and `kube::pod_exec` bounds their waits instead.
    pub streams: Client,
    /// The API server URL from the kubeconfig.
    pub server: String,
    /// The context in use.
    pub context: String,
    /// `gitVersion` from `/version`, e.g. `v1.33.1`.
    pub kube_version: String,
}

/// Where the kubeconfig comes from: the flag (or $KUBECONFIG, which clap folds into it), else
/// `~/.kube/config`. $KUBECONFIG may hold several files separated by `:`; they are merged.
pub fn kubeconfig_paths(flag: Option<&Path>) -> Vec<PathBuf> {
    match flag {
        Some(p) => std::env::split_paths(p)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            vec![home.join(".kube").join("config")]
        }
    }
}

/// Read and check the kubeconfig, pick the context, and ask the server for its version.
pub async fn connect(flag: Option<&Path>, context: Option<&str>) -> anyhow::Result<Cluster> {
    let paths = kubeconfig_paths(flag);
    let shown = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let kubeconfig = read_kubeconfig(&paths)?;

    let context_name = match context {
        Some(c) => c.to_owned(),
        None => kubeconfig
            .current_context
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "kubeconfig {shown} has no current-context; pass --context NAME (contexts: {})",
                    context_names(&kubeconfig)
                )
            })?,
    };
    if !kubeconfig.contexts.iter().any(|c| c.name == context_name) {
        return Err(anyhow!(
            "context `{context_name}` is not in kubeconfig {shown}; pass --context with one of: {}",
            context_names(&kubeconfig)
        ));
    }

    let options = KubeConfigOptions {
        context: Some(context_name.clone()),
        cluster: None,
        user: None,
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| {
            anyhow!(
                "kubeconfig {shown}, context `{context_name}`: {}; fix the file or regenerate it \
                 (on MicroK8s: `microk8s config > ~/.kube/config`)",
                errors::root_cause(&e)
            )
        })?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    // A refused connection should be reported, not retried for a minute.
    config.default_retry = false;
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_owned();
    let build = |config: kube::Config| {
        Client::try_from(config).map_err(|e| {
            anyhow!(
                "cannot build a client for {server} from kubeconfig {shown}: {}",
                errors::root_cause(&e)
            )
        })
    };
    let mut streaming = config.clone();
    streaming.read_timeout = None;
    let streams = build(streaming)?;
    let client = build(config)?;
    let info = client
        .apiserver_version()
        .await
        .map_err(|e| anyhow!(errors::describe(&e, "connect", &server)))?;
    Ok(Cluster {
        client,
        streams,
        server,
        context: context_name,
        kube_version: info.git_version,
    })
}

fn read_kubeconfig(paths: &[PathBuf]) -> anyhow::Result<Kubeconfig> {
    let mut merged: Option<Kubeconfig> = None;
    for path in paths {
        if !path.exists() {
            if paths.len() > 1 {
                continue; // kubectl also skips missing entries of a list
            }
            return Err(anyhow!(
                "no kubeconfig at {}; pass --kubeconfig FILE or set KUBECONFIG \
                 (on MicroK8s: `microk8s config > ~/.kube/config`)",
                path.display()
            ));
        }
        let one = Kubeconfig::read_from(path).map_err(|e| {
            anyhow!(
                "kubeconfig {} is not valid: {}; fix it or regenerate it (on MicroK8s: `microk8s config`)",
                path.display(),
                errors::root_cause(&e)
            )
        })?;
        merged = Some(match merged {
            None => one,
            Some(m) => m
                .merge(one)
                .with_context(|| format!("merging kubeconfig {}", path.display()))?,
        });
    }
    merged.ok_or_else(|| {
        anyhow!("none of the kubeconfig files in KUBECONFIG exist; pass --kubeconfig FILE")
    })
}

fn context_names(k: &Kubeconfig) -> String {
    if k.contexts.is_empty() {
        return "none defined".into();
    }
    k.contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("config");
        std::fs::write(&p, text).unwrap();
        p
    }

    const GOOD: &str = "apiVersion: v1\nkind: Config\ncurrent-context: sim\nclusters:\n- name: sim\n  cluster: {server: 'http://127.0.0.1:9'}\ncontexts:\n- name: sim\n  context: {cluster: sim, user: u}\nusers:\n- name: u\n  user: {token: t}\n";

    async fn err_of(flag: Option<&Path>, context: Option<&str>) -> String {
        match connect(flag, context).await {
            Ok(_) => panic!("connect should fail"),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn missing_invalid_wrong_context_and_unreachable_are_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = err_of(Some(&missing), None).await;
        assert!(
            e.starts_with("no kubeconfig at") && e.contains("--kubeconfig"),
            "{e}"
        );

        let bad = write(dir.path(), "clusters: [[[");
        let e = err_of(Some(&bad), None).await;
        assert!(e.contains("is not valid") && !e.contains('\n'), "{e}");

        let good = write(dir.path(), GOOD);
        let e = err_of(Some(&good), Some("prod")).await;
        assert!(
            e.contains("context `prod` is not in") && e.contains("sim"),
            "{e}"
        );

        // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
        let e = err_of(Some(&good), None).await;
        assert!(e.contains("does not answer") && !e.contains('\n'), "{e}");
    }
}
