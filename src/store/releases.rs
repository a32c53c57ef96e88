//! The release records of a model and their lifecycle: listing them (one LIST; a record that
//! cannot be read is reported, never fatal), saving one (one server-side apply), moving older
//! records on (the previous `deployed` becomes `superseded`, a `pending` left by a killed run
//! becomes `failed`), and trimming the history to its cap without ever deleting the last
//! deployed revision, which is what a rollback goes back to.

use std::collections::BTreeMap;

use anyhow::anyhow;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;

use super::lock::Guard;
use super::record::{
    Release, ReleaseStatus, SECRET_TYPE, SECRET_TYPE_V1, SecretValues, secret_name,
};
use crate::kube::{FIELD_MANAGER, errors};

/// How many revisions of an application are kept unless told otherwise.
pub const DEFAULT_HISTORY: usize = 10;

/// A record Secret that could not be read: shown by `history`, skipped by everything else.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    pub name: String,
    pub app: String,
    pub revision: u32,
    pub why: String,
}

/// Every application's records, oldest revision first, and the records that could not be read.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub apps: BTreeMap<String, Vec<Release>>,
    pub unreadable: Vec<Unreadable>,
}

impl History {
    pub fn of(&self, app: &str) -> &[Release] {
        self.apps.get(app).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn last(&self, app: &str) -> Option<&Release> {
        self.of(app).last()
    }

    /// The newest `deployed` record of an application.
    pub fn deployed(&self, app: &str) -> Option<&Release> {
        self.of(app)
            .iter()
            .rev()
            .find(|r| r.status == ReleaseStatus::Deployed)
    }

    /// The revision number the next record of `app` gets: after every record, readable or not.
    pub fn next_revision(&self, app: &str) -> u32 {
        let readable = self.of(app).iter().map(|r| r.revision);
        let unreadable = self
            .unreadable
            .iter()
            .filter(|u| u.app == app)
            .map(|u| u.revision);
        readable.chain(unreadable).max().unwrap_or(0) + 1
    }
}

#[derive(Clone)]
pub struct Releases {
    api: Api<DynamicObject>,
    server: String,
    guard: Option<Guard>,
}

impl Releases {
    pub fn new(client: &Client, namespace: &str, server: &str) -> Self {
        let ar = ApiResource::erase::<Secret>(&());
        Self {
            api: Api::namespaced_with(client.clone(), namespace, &ar),
            server: server.to_owned(),
            guard: None,
        }
    }

    /// Every write first checks that the run still holds the model lock.
    pub fn guarded(mut self, guard: Guard) -> Self {
        self.guard = Some(guard);
        self
    }

    fn check_lock(&self) -> anyhow::Result<()> {
        self.guard.as_ref().map_or(Ok(()), Guard::check)
    }

    fn describe(&self, what: String) -> impl Fn(kube::Error) -> anyhow::Error + '_ {
        move |e| anyhow!(errors::describe(&e, &what, &self.server))
    }

    /// Every application's records. A missing namespace means none.
    pub async fn list(&self) -> anyhow::Result<History> {
        let lp = ListParams::default().labels(&format!("{}={}", super::OWNER_LABEL, super::OWNER));
        let list = match self.api.list(&lp).await {
            Ok(l) => l,
            Err(e) if errors::is_not_found(&e) => return Ok(History::default()),
            Err(e) => return Err(self.describe("list release records".into())(e)),
        };
        let mut history = History::default();
        for obj in list.items {
            let v = serde_json::to_value(&obj)?;
            let kind = v.get("type").and_then(Value::as_str);
            if kind != Some(SECRET_TYPE) && kind != Some(SECRET_TYPE_V1) {
                continue; // wharf-generated, wharf-inputs and other owner=wharf Secrets
            }
            match Release::from_secret(&v) {
                Ok(r) => history.apps.entry(r.app.clone()).or_default().push(r),
                Err(e) => {
                    let label = |k: &str| {
                        v.pointer(&format!("/metadata/labels/{k}"))
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let name = obj.metadata.name.clone().unwrap_or_default();
                    tracing::warn!("skipping release record {name}: {e:#}");
                    history.unreadable.push(Unreadable {
                        name,
                        app: label("app"),
                        revision: label("revision").parse().unwrap_or(0),
                        why: format!("{e:#}"),
                    });
                }
            }
        }
        for records in history.apps.values_mut() {
            records.sort_by_key(|r| r.revision);
        }
        Ok(history)
    }

    /// The secret values of one record (read only to re-apply it).
    pub async fn values(&self, app: &str, revision: u32) -> anyhow::Result<SecretValues> {
        let name = secret_name(app, revision);
        let obj = self
            .api
            .get(&name)
            .await
            .map_err(self.describe(format!("read release record {name}")))?;
        Release::values_from_secret(&serde_json::to_value(obj)?)
    }

    /// Create a record or finish this run's own (server-side apply, one write).
    pub async fn save(&self, release: &Release, values: &SecretValues) -> anyhow::Result<()> {
        self.check_lock()?;
        let ns = self.api.namespace().unwrap_or("default").to_owned();
        let secret: DynamicObject = serde_json::from_value(release.to_secret(&ns, values)?)?;
        let name = secret_name(&release.app, release.revision);
        self.api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await
            .map_err(self.describe(format!("save release record {name}")))?;
        Ok(())
    }

    /// Change an existing record (its status), keeping its secret values as they are.
    pub async fn update(&self, release: &Release) -> anyhow::Result<()> {
        self.check_lock()?;
        let name = secret_name(&release.app, release.revision);
        self.api
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(release.to_status_patch()?),
            )
            .await
            .map_err(self.describe(format!("update release record {name}")))?;
        Ok(())
    }

    pub async fn delete(&self, app: &str, revision: u32) -> anyhow::Result<()> {
        self.check_lock()?;
        let name = secret_name(app, revision);
        match self.api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if errors::is_not_found(&e) => Ok(()),
            Err(e) => Err(self.describe(format!("delete release record {name}"))(e)),
        }
    }

    /// After `new` was finished: move the older records on, then trim to `keep`.
    pub async fn settle(
        &self,
        older: &[Release],
        new: &Release,
        keep: usize,
    ) -> anyhow::Result<()> {
        for old in successors(older, new.status) {
            self.update(&old).await?;
        }
        let mut all: Vec<Release> = older.to_vec();
        all.push(new.clone());
        for revision in to_trim(&all, keep) {
            self.delete(&new.app, revision).await?;
        }
        Ok(())
    }
}

/// What happens to older records when a new one ends as `new_status`: the previous `deployed`
/// becomes `superseded` (only if the new one deployed), and a `pending` left by a killed run
/// becomes `failed`.
pub fn successors(older: &[Release], new_status: ReleaseStatus) -> Vec<Release> {
    older
        .iter()
        .filter_map(|old| {
            let mut old = old.clone();
            match old.status {
                ReleaseStatus::Deployed if new_status == ReleaseStatus::Deployed => {
                    old.status = ReleaseStatus::Superseded;
                }
                s if s.is_pending() => {
                    old.status = ReleaseStatus::Failed;
                    old.reason = Some("interrupted before it recorded a result".into());
                }
                _ => return None,
            }
            Some(old)
        })
        .collect()
}

/// The revisions to delete so that the newest `keep` remain (records oldest first), and the
/// newest `deployed` one however old: it is what the application runs and what a rollback
/// returns to.
pub fn to_trim(records: &[Release], keep: usize) -> Vec<u32> {
    let protected = records
        .iter()
        .rev()
        .find(|r| r.status == ReleaseStatus::Deployed)
        .map(|r| r.revision);
    let excess = records.len().saturating_sub(keep.max(1));
    records[..excess]
        .iter()
        .filter(|r| Some(r.revision) != protected)
        .map(|r| r.revision)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReleaseStatus::*;

    fn records(statuses: &[ReleaseStatus]) -> Vec<Release> {
        statuses
            .iter()
            .enumerate()
            .map(|(i, s)| Release::fixture("a", i as u32 + 1).with_status(*s))
            .collect()
    }

    #[test]
    fn trimming_never_deletes_the_last_deployed() {
        // One deployed, then failures: the deployed one survives any cap.
        let r = records(&[Superseded, Deployed, Failed, Failed, Failed]);
        assert_eq!(to_trim(&r, 2), [1, 3]);
        assert_eq!(to_trim(&r, 1), [1, 3, 4]);
        assert_eq!(to_trim(&r, 10), Vec::<u32>::new());
        let r = records(&[Superseded, Superseded, Deployed]);
        assert_eq!(to_trim(&r, 2), [1]);
    }

    #[test]
    fn a_deployed_record_supersedes_and_finishes_killed_runs() {
        let r = records(&[Superseded, Deployed, PendingUpgrade]);
        let changed = successors(&r, Deployed);
        let got: Vec<_> = changed.iter().map(|r| (r.revision, r.status)).collect();
        assert_eq!(got, [(2, Superseded), (3, Failed)]);
        // A failed run leaves the deployed one as it is.
        let changed = successors(&r, Failed);
        let got: Vec<_> = changed.iter().map(|r| (r.revision, r.status)).collect();
        assert_eq!(got, [(3, Failed)]);
    }

    #[test]
    fn next_revision_counts_unreadable_records() {
        let mut h = History::default();
        h.apps.insert("a".into(), records(&[Deployed]));
        h.unreadable.push(Unreadable {
            name: "wharf.release.a.v7".into(),
            app: "a".into(),
            revision: 7,
            why: "garbage".into(),
        });
        assert_eq!(h.next_revision("a"), 8);
        assert_eq!(h.next_revision("b"), 1);
    }
}
