//! `wharf profile create|list|delete`: people's workspaces. A profile (Kubeflow's
//! `kubeflow.org/v1` Profile, served by the workspaces charm) becomes a namespace of the same name
//! that its owner — the email they log in with — may edit, with a quota, the platform's S3
//! credentials and network policies; the workspaces operator does that work, these verbs only
//! write and read Profiles.
//!
//! `delete` is destructive: the profile's namespace goes with it, with everything in it. It says
//! so, asks on a terminal and needs `--yes` otherwise.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
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
    List,
    Delete { name: String, yes: bool },
}

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub name: String,
    /// The owner's login identity (the email the gateway passes).
    pub owner: String,
    /// Quota on the namespace's CPU and memory requests (`2`, `500m`; `4Gi`).
    pub cpu: Option<String>,
    pub memory: Option<String>,
    /// How long to wait for the operator to report the profile ready (zero: do not wait).
    pub timeout: Duration,
}

/// The Profile resource (served by the workspaces charm's CRD; cluster-scoped).
pub(crate) fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubeflow.org", "v1", "Profile"),
        "profiles",
    )
}

pub fn run(global: &Global, options: &Options) -> Outcome {
    super::runtime()?.block_on(async {
        let session = Session::open(global).await?;
        let profiles: Api<DynamicObject> = Api::all_with(session.client().clone(), &resource());
        match options {
            Options::Create(create) => self::create(&session, &profiles, create).await,
            Options::List => list(&session, &profiles).await,
            Options::Delete { name, yes } => delete(&session, &profiles, name, *yes).await,
        }
    })
}

/// A profile name becomes a namespace name: a DNS label.
pub(crate) fn check_name(name: &str) -> anyhow::Result<()> {
    crate::render::names::check_dns_label(name).map_err(|why| {
        anyhow::anyhow!("profile name `{name}`: it names the user's namespace, and the name {why}")
    })
}

/// The owner is the login identity, which Kubernetes gets as the user name: no spaces.
pub(crate) fn check_owner(flag: &str, owner: &str) -> anyhow::Result<()> {
    if owner.trim().is_empty() || owner.contains(char::is_whitespace) {
        bail!(
            "{flag} `{owner}`: give the email the owner logs in with (the platform's login passes \
             it to Kubernetes as their user name)"
        );
    }
    Ok(())
}

/// A Kubernetes quantity (`2`, `500m`, `4Gi`), checked here so that the error names the flag.
pub(crate) fn check_quantity(flag: &str, value: &str) -> anyhow::Result<()> {
    let re =
        regex::Regex::new(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$").expect("valid regex");
    if !re.is_match(value) {
        bail!(
            "{flag} `{value}` is not a quantity: write e.g. `--cpu 2`, `--cpu 500m`, `--memory 4Gi`"
        );
    }
    Ok(())
}

/// The Profile's body, as the operator (and Kubeflow) reads it.
pub(crate) fn body(options: &CreateOptions) -> Value {
    let mut spec = json!({"owner": {"kind": "User", "name": options.owner}});
    let mut hard = serde_json::Map::new();
    if let Some(cpu) = &options.cpu {
        hard.insert("requests.cpu".into(), json!(cpu));
    }
    if let Some(memory) = &options.memory {
        hard.insert("requests.memory".into(), json!(memory));
    }
    if !hard.is_empty() {
        spec["resourceQuotaSpec"] = json!({"hard": hard});
    }
    json!({"apiVersion": "kubeflow.org/v1", "kind": "Profile",
        "metadata": {"name": options.name}, "spec": spec})
}

fn not_served() -> anyhow::Error {
    anyhow::anyhow!(
        "this cluster does not serve Profiles (kubeflow.org/v1): deploy the workspaces charm \
         first (`wharf deploy full`, or add `workspaces` to your bundle)"
    )
}

/// Every check `create` makes before writing.
fn check(options: &CreateOptions) -> anyhow::Result<()> {
    check_name(&options.name)?;
    check_owner("--owner", &options.owner)?;
    for (flag, value) in [("--cpu", &options.cpu), ("--memory", &options.memory)] {
        if let Some(value) = value {
            check_quantity(flag, value)?;
        }
    }
    Ok(())
}

async fn create(
    session: &Session,
    profiles: &Api<DynamicObject>,
    options: &CreateOptions,
) -> Outcome {
    check(options)?;
    let profile: DynamicObject = serde_json::from_value(body(options)).expect("a Profile body");
    let name = &options.name;
    match profiles.create(&PostParams::default(), &profile).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => bail!(
            "profile {name} already exists; see `wharf profile list`, or delete it first with \
             `wharf profile delete {name}`"
        ),
        Err(kube::Error::Api(e)) if e.code == 404 => return Err(not_served()),
        Err(e) => return Err(session.describe(&format!("creating profile {name}"))(e)),
    }
    if options.timeout.is_zero() {
        return report_created(session, name, &options.owner, "created; not waiting for it");
    }
    let deadline = tokio::time::Instant::now() + options.timeout;
    loop {
        let current = profiles
            .get(name)
            .await
            .map_err(session.describe(&format!("reading profile {name}")))?;
        let ready = condition(&current.data, "Ready");
        match &ready {
            Some((status, _, _)) if status == "True" => {
                return report_created(session, name, &options.owner, "ready");
            }
            Some((_, reason, message))
                if matches!(
                    reason.as_str(),
                    "NamespaceConflict" | "InvalidName" | "InvalidSpec"
                ) =>
            {
                bail!(
                    "profile {name} was created but refused ({reason}): {message}\nremove it with \
                     `wharf profile delete {name}`"
                );
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let why = ready
                .map(|(_, reason, message)| format!("{reason}: {message}"))
                .unwrap_or_else(|| {
                    "the workspaces operator has not reported on it (is the workspaces \
                     application running? see `wharf status`)"
                        .into()
                });
            bail!(
                "profile {name} was created but is not ready after {}: {why}",
                humantime::format_duration(options.timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn report_created(session: &Session, name: &str, owner: &str, state: &str) -> Outcome {
    if session.output.is_text() {
        super::print_stdout(&format!(
            "profile {name} {state}: namespace {name}, owned by {owner} (edit rights there)\n"
        ))?;
    } else {
        session
            .output
            .document(&json!({"name": name, "owner": owner, "namespace": name, "state": state}))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// (status, reason, message) of one condition in a Profile's status.
pub(crate) fn condition(data: &Value, type_: &str) -> Option<(String, String, String)> {
    let c = data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    let text = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    Some((text("status"), text("reason"), text("message")))
}

#[derive(Debug, Serialize)]
struct Row {
    name: String,
    owner: String,
    ready: String,
    reason: String,
    message: String,
}

async fn list(session: &Session, profiles: &Api<DynamicObject>) -> Outcome {
    let items = match profiles.list(&Default::default()).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(e)) if e.code == 404 => return Err(not_served()),
        Err(e) => return Err(session.describe("listing profiles")(e)),
    };
    let mut rows: Vec<Row> = items
        .iter()
        .map(|p| {
            let (ready, reason, message) = condition(&p.data, "Ready").unwrap_or_else(|| {
                (
                    "Unknown".into(),
                    "Pending".into(),
                    "not reconciled yet".into(),
                )
            });
            Row {
                name: p.metadata.name.clone().unwrap_or_default(),
                owner: p.data["spec"]["owner"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                ready,
                reason,
                message,
            }
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    if session.output != OutputFormat::Text {
        session.output.document(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        super::print_stdout(
            "no profiles; create one with `wharf profile create NAME --owner EMAIL`\n",
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
    let (wn, wo, wr) = (
        width(|r| r.name.as_str(), "NAME"),
        width(|r| r.owner.as_str(), "OWNER"),
        width(|r| r.ready.as_str(), "READY"),
    );
    let mut out = format!("{:wn$}  {:wo$}  {:wr$}  REASON\n", "NAME", "OWNER", "READY");
    for r in &rows {
        out.push_str(&format!(
            "{:wn$}  {:wo$}  {:wr$}  {}\n",
            r.name, r.owner, r.ready, r.reason
        ));
    }
    super::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// What deleting the profile deletes: its namespace only when the namespace is the profile's
/// (a refused profile never had one).
async fn delete(
    session: &Session,
    profiles: &Api<DynamicObject>,
    name: &str,
    yes: bool,
) -> Outcome {
    let profile = match profiles.get_opt(name).await {
        Ok(Some(p)) => p,
        Ok(None) => bail!("no profile {name}; see `wharf profile list`"),
        Err(kube::Error::Api(e)) if e.code == 404 => return Err(not_served()),
        Err(e) => return Err(session.describe(&format!("reading profile {name}"))(e)),
    };
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(session.client().clone());
    let namespace = namespaces
        .get_opt(name)
        .await
        .map_err(session.describe(&format!("reading namespace {name}")))?;
    let uid = profile.metadata.uid.clone().unwrap_or_default();
    let owned = namespace.as_ref().is_some_and(|ns| {
        ns.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == uid)
    });
    let what = if owned {
        format!(
            "profile {name} and its namespace {name}, with everything in it (notebooks, \
             TrainJobs, volumes and their data, secrets)"
        )
    } else {
        format!("profile {name} (namespace {name} is not the profile's and stays)")
    };
    confirm(
        &what,
        yes,
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
    )?;
    match profiles.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(session.describe(&format!("deleting profile {name}"))(e)),
    }
    if session.output.is_text() {
        super::print_stdout(&format!("deleted {what}\n"))?;
    } else {
        session
            .output
            .document(&json!({"deleted": name, "namespace_deleted": owned}))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Goes ahead with `--yes` or a yes on a terminal (default no); without a terminal and without
/// `--yes`, refuses before anything is deleted.
fn confirm(what: &str, yes: bool, terminal: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !terminal {
        bail!(
            "this deletes, for good: {what}\nwithout a terminal wharf cannot ask: pass --yes to \
             confirm. Nothing was deleted"
        );
    }
    let confirmed = dialoguer::Confirm::new()
        .with_prompt(format!("This deletes, for good: {what}. Delete?"))
        .default(false)
        .interact()
        .context("could not ask for confirmation; pass --yes instead")?;
    if !confirmed {
        bail!("not confirmed: nothing was deleted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(cpu: Option<&str>, memory: Option<&str>) -> CreateOptions {
        CreateOptions {
            name: "alice".into(),
            owner: "alice@example.com".into(),
            cpu: cpu.map(Into::into),
            memory: memory.map(Into::into),
            timeout: Duration::ZERO,
        }
    }

    #[test]
    fn the_quota_flags_become_request_limits_and_none_means_no_quota() {
        let with = body(&options(Some("2"), Some("4Gi")));
        assert_eq!(
            with["spec"]["resourceQuotaSpec"]["hard"],
            json!({"requests.cpu": "2", "requests.memory": "4Gi"})
        );
        assert_eq!(
            with["spec"]["owner"],
            json!({"kind": "User", "name": "alice@example.com"})
        );
        let without = body(&options(None, None));
        assert!(without["spec"].get("resourceQuotaSpec").is_none());
    }

    #[test]
    fn bad_names_and_quantities_are_refused_naming_the_flag() {
        assert!(check_name("alice").is_ok());
        let err = check_name("Alice.Smith").unwrap_err().to_string();
        assert!(err.contains("profile name `Alice.Smith`"), "{err}");
        for good in ["2", "500m", "1.5", "4Gi", "512Mi"] {
            assert!(check_quantity("--cpu", good).is_ok(), "{good}");
        }
        let err = check_quantity("--memory", "4 GB").unwrap_err().to_string();
        assert!(err.contains("--memory `4 GB` is not a quantity"), "{err}");
    }

    #[test]
    fn deleting_without_a_terminal_needs_yes() {
        let err = confirm("profile a", false, false).unwrap_err().to_string();
        assert!(
            err.contains("pass --yes") && err.contains("Nothing was deleted"),
            "{err}"
        );
        assert!(confirm("profile a", true, false).is_ok());
    }
}
