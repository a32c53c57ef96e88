//! What a backup reads from the cluster and from MinIO: wharf's state in the model namespace, the
//! custom resources of wharf's kinds in every namespace (not those an operator made, not those a
//! release record applies), Dex's definitions and objects, and the MinIO application's buckets.
//! Reads only: a backup writes nothing to the cluster.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, anyhow, bail};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::{Value, json};

use super::objects::{self, CrdKind, DEX_GROUP};
use super::s3::S3Access;
use crate::action::Session;
use crate::kube::errors;
use crate::store::releases::History;

fn resource(k: &CrdKind) -> ApiResource {
    ApiResource {
        group: k.group.clone(),
        version: k.version.clone(),
        api_version: k.api_version(),
        kind: k.kind.clone(),
        plural: k.plural.clone(),
    }
}

fn crd_resource() -> ApiResource {
    ApiResource {
        group: "apiextensions.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiextensions.k8s.io/v1".into(),
        kind: "CustomResourceDefinition".into(),
        plural: "customresourcedefinitions".into(),
    }
}

/// List objects (a missing namespace or kind is none), each with its apiVersion and kind set.
async fn list(
    session: &Session,
    ar: &ApiResource,
    namespace: Option<&str>,
    labels: Option<&str>,
) -> anyhow::Result<Vec<Value>> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(session.client().clone(), ns, ar),
        None => Api::all_with(session.client().clone(), ar),
    };
    let mut lp = ListParams::default();
    if let Some(l) = labels {
        lp = lp.labels(l);
    }
    let items = match api.list(&lp).await {
        Ok(l) => l.items,
        Err(e) if errors::is_not_found(&e) => return Ok(vec![]),
        Err(e) => return Err(session.describe(&format!("list {}", ar.plural))(e)),
    };
    items
        .into_iter()
        .map(|o| {
            let mut v = serde_json::to_value(o)?;
            v["apiVersion"] = json!(ar.api_version);
            v["kind"] = json!(ar.kind);
            Ok(v)
        })
        .collect()
}

/// wharf's state and the release history read from it, as of one moment when no run held the
/// model lock.
pub struct Snapshot {
    pub history: History,
    /// The state objects, cleaned of server fields.
    pub state: Vec<Value>,
}

/// How often a capture that raced a deploy is tried again before giving up.
const ATTEMPTS: u32 = 3;

/// wharf's state, consistent without taking the model lock (a backup writes nothing to the
/// cluster, and the scheduled backup's ServiceAccount may only read): refused while a run holds
/// the lock, and checked after the capture — the lock still free and every state object at the
/// resourceVersion it had before the history was read. A run that changed anything in between is
/// seen, and the capture is made again.
pub async fn snapshot(session: &Session) -> anyhow::Result<Snapshot> {
    for attempt in 1..=ATTEMPTS {
        refuse_if_locked(session).await?;
        let before = versions(&state_raw(session).await?);
        let history = session.releases.list().await?;
        let raw = state_raw(session).await?;
        refuse_if_locked(session).await?;
        if versions(&raw) == before {
            return Ok(Snapshot {
                history,
                state: raw.iter().map(objects::clean).collect(),
            });
        }
        tracing::info!("wharf's state changed during capture {attempt}; capturing again");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    bail!(
        "wharf's state of model `{}` changed during each of {ATTEMPTS} captures (another run is          changing it): make the backup again when it is done",
        session.model
    )
}

/// `Kind/name → resourceVersion` of state objects: equal maps mean nothing was written between
/// the two reads.
pub fn versions(objs: &[Value]) -> BTreeMap<String, String> {
    objs.iter()
        .map(|o| {
            let version = o
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            (objects::describe(o), version.to_owned())
        })
        .collect()
}

/// Refuse while another run holds the model lock (it may be half-way through writing records).
async fn refuse_if_locked(session: &Session) -> anyhow::Result<()> {
    use crate::store::lock::{LEASE_NAME, expiry};
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(session.client().clone(), &session.model);
    let lease = api
        .get_opt(LEASE_NAME)
        .await
        .map_err(session.describe(&format!("read Lease {LEASE_NAME}")))?;
    let Some(lease) = lease else { return Ok(()) };
    let holder = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty());
    let live = expiry(&lease).is_some_and(|t| t > jiff::Timestamp::now());
    match holder {
        Some(holder) if live => bail!(
            "model `{}` is locked by {holder} (a deploy, upgrade or restore is changing it): a              backup now could catch it half-way; make the backup again when that run is done",
            session.model
        ),
        _ => Ok(()),
    }
}

/// wharf's state in the model namespace: every Secret wharf owns (release records with their
/// values, `wharf-inputs`, `wharf-generated`) and the `wharf-platform` ConfigMap, as stored
/// (server fields still in: [`snapshot`] compares their resourceVersions).
async fn state_raw(session: &Session) -> anyhow::Result<Vec<Value>> {
    let owner = format!("{}={}", crate::store::OWNER_LABEL, crate::store::OWNER);
    let secret = ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&());
    let mut out = list(session, &secret, Some(&session.model), Some(&owner)).await?;
    // By name: the scheduled backup's Role may read this ConfigMap and no other.
    let cm: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(session.client().clone(), &session.model);
    let name = crate::store::platform::CONFIG_MAP;
    if let Some(platform) = cm
        .get_opt(name)
        .await
        .map_err(session.describe(&format!("read ConfigMap {name}")))?
    {
        let mut v = serde_json::to_value(platform)?;
        v["apiVersion"] = json!("v1");
        v["kind"] = json!("ConfigMap");
        out.push(v);
    }
    Ok(out)
}

/// The objects every application's latest record applies ("Kind/namespace/name"): the engine
/// restores those, so the custom-resource step leaves them out.
pub fn recorded(history: &History) -> BTreeSet<String> {
    history
        .apps
        .values()
        .filter_map(|r| r.last())
        .flat_map(|r| r.manifests.iter())
        .map(objects::describe)
        .collect()
}

/// The user's custom resources of one of wharf's kinds, in every namespace.
pub async fn custom_resources(
    session: &Session,
    kind: &CrdKind,
    recorded: &BTreeSet<String>,
) -> anyhow::Result<Vec<Value>> {
    let all = list(session, &resource(kind), None, None).await?;
    Ok(all
        .iter()
        .filter(|o| !objects::operator_owned(o))
        .filter(|o| !recorded.contains(&objects::describe(o)))
        .map(objects::clean)
        .collect())
}

/// Dex's kinds (its CRDs, which Dex creates itself) with their definitions and the objects in the
/// model namespace: passwords, connectors, refresh tokens, clients…
pub async fn dex(session: &Session) -> anyhow::Result<Vec<(CrdKind, Value, Vec<Value>)>> {
    let crds = list(session, &crd_resource(), None, None).await?;
    let mut out = Vec::new();
    for crd in crds {
        let Some(kind) = CrdKind::from_crd(&crd) else {
            continue;
        };
        if kind.group != DEX_GROUP {
            continue;
        }
        let objs = list(session, &resource(&kind), Some(&session.model), None).await?;
        out.push((
            kind,
            objects::clean(&crd),
            objs.iter().map(objects::clean).collect(),
        ));
    }
    Ok(out)
}

/// The MinIO application's data: which store, which buckets.
#[derive(Debug, Clone)]
pub struct MinioSource {
    pub app: String,
    pub access: S3Access,
    pub buckets: Vec<String>,
}

/// The model's MinIO application (charm `minio`), if any: its credentials from its latest deployed
/// record (the access key from its config, the secret key from the record's secret values), the
/// endpoint from `--s3-endpoint` (wharf runs outside the cluster: a port-forward or an ingress),
/// its configured bucket and any `--s3-bucket`.
pub async fn minio(
    session: &Session,
    history: &History,
    endpoint: Option<&str>,
    extra_buckets: &[String],
) -> anyhow::Result<Option<MinioSource>> {
    let Some((app, record)) = history.apps.iter().find_map(|(app, _)| {
        history
            .deployed(app)
            .filter(|r| r.charm == "minio")
            .map(|r| (app, r))
    }) else {
        return Ok(None);
    };
    let Some(endpoint) = endpoint else {
        bail!(
            "model `{}` keeps data in MinIO (application `{app}`), which wharf reads through its S3 \
             API: pass --s3-endpoint URL (e.g. after `kubectl -n {} port-forward svc/{app} \
             9000:9000`, --s3-endpoint http://127.0.0.1:9000), or --no-data to back up \
             everything but the data",
            session.model,
            session.model
        );
    };
    let values = session.releases.values(app, record.revision).await?;
    let config = |k: &str| {
        record
            .config
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let secret_key = values.config.get("secret-key").cloned().ok_or_else(|| {
        anyhow!(
            "application `{app}` revision {} holds no secret-key value; it cannot be read",
            record.revision
        )
    })?;
    let mut buckets: Vec<String> = config("bucket").into_iter().collect();
    buckets.extend(extra_buckets.iter().cloned());
    buckets.sort();
    buckets.dedup();
    Ok(Some(MinioSource {
        app: app.clone(),
        access: S3Access {
            access_key_id: config("access-key").context("the MinIO record has no access-key")?,
            secret_access_key: secret_key,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: config("region").unwrap_or_else(|| "us-east-1".into()),
        },
        buckets,
    }))
}

/// The latest deployed revision of each application.
pub fn applications(history: &History) -> BTreeMap<String, u32> {
    history
        .apps
        .keys()
        .filter_map(|a| history.deployed(a).map(|r| (a.clone(), r.revision)))
        .collect()
}
