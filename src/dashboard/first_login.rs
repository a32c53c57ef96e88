//! A first login gets a workspace (`--create-profiles`, the dashboard charm's `create-profiles`
//! option): when someone the gateway has signed in owns no Profile yet, the dashboard creates one
//! for them — named after their email's local part, owned by that email — and the workspaces
//! operator turns it into their namespace, as Kubeflow's registration flow does. It acts with the
//! dashboard's own ServiceAccount (`create` on Profiles, nothing more): a user cannot create a
//! cluster-scoped Profile, and the owner is always the identity the gateway vouched for.
//!
//! Where Profiles are not served (the lite bundle) it does nothing, asking again every few
//! minutes; a failure is logged and never stands between the user and the page.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::json;

/// How long to believe that Profiles are not served before asking again.
const RECHECK: Duration = Duration::from_secs(300);
/// Namespaces a profile must never be named after (the workspaces operator would refuse them as
/// someone else's, or worse, they are the cluster's own).
const RESERVED: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The Profile a user's email names: the local part, lowercased, every run of other characters
/// than letters and digits turned into one '-', at most 60 characters (room for a `-N` suffix);
/// names of the cluster's own namespaces and `kube-*` get `-ws`.
pub fn profile_name(email: &str, model: &str) -> String {
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    let mut name = String::new();
    for c in local.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    name.truncate(60);
    let mut name = name.trim_end_matches('-').to_owned();
    if name.is_empty() {
        name = "user".into();
    }
    if RESERVED.contains(&name.as_str()) || name.starts_with("kube-") || name == model {
        name.push_str("-ws");
    }
    name
}

/// The n-th choice of name (`alice`, `alice-2`, `alice-3` …) when another user holds the first.
fn candidate(base: &str, n: usize) -> String {
    if n == 1 {
        base.to_owned()
    } else {
        format!("{base}-{n}")
    }
}

pub struct Registrar {
    profiles: Api<DynamicObject>,
    model: String,
    /// user → their profile, once known (found or made).
    known: Mutex<HashMap<String, String>>,
    /// Set when Profiles were not served: not asked again before then.
    unserved_until: Mutex<Option<Instant>>,
}

impl Registrar {
    pub fn new(client: &kube::Client, model: &str) -> Registrar {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kubeflow.org", "v1", "Profile"),
            "profiles",
        );
        Registrar {
            profiles: Api::all_with(client.clone(), &resource),
            model: model.to_owned(),
            known: Mutex::new(HashMap::new()),
            unserved_until: Mutex::new(None),
        }
    }

    /// The name of `user`'s profile, made if they have none; `None` where Profiles are not served
    /// or the cluster refused (logged).
    pub async fn ensure(&self, user: &str) -> Option<String> {
        if let Some(name) = self.known.lock().unwrap().get(user) {
            return Some(name.clone());
        }
        if self
            .unserved_until
            .lock()
            .unwrap()
            .is_some_and(|t| Instant::now() < t)
        {
            return None;
        }
        match self.find_or_create(user).await {
            Ok(Some(name)) => {
                self.known
                    .lock()
                    .unwrap()
                    .insert(user.to_owned(), name.clone());
                Some(name)
            }
            Ok(None) => {
                *self.unserved_until.lock().unwrap() = Some(Instant::now() + RECHECK);
                None
            }
            Err(e) => {
                tracing::warn!(%user, error = %e, "could not make the user's profile");
                None
            }
        }
    }

    /// `Ok(None)`: Profiles are not served here.
    async fn find_or_create(&self, user: &str) -> Result<Option<String>, kube::Error> {
        let all = match self.profiles.list(&ListParams::default()).await {
            Ok(all) => all,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        };
        let owner = |p: &DynamicObject| p.data["spec"]["owner"]["name"].as_str() == Some(user);
        if let Some(mine) = all.items.iter().find(|p| owner(p)) {
            return Ok(mine.metadata.name.clone());
        }
        let base = profile_name(user, &self.model);
        for n in 1..=20 {
            let name = candidate(&base, n);
            if all
                .items
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(&name))
            {
                continue;
            }
            let profile: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "kubeflow.org/v1", "kind": "Profile",
                "metadata": {"name": name, "labels": {"wharf.dev/created-by": "dashboard"}},
                "spec": {"owner": {"kind": "User", "name": user}},
            }))
            .expect("a Profile body");
            match self.profiles.create(&PostParams::default(), &profile).await {
                Ok(_) => {
                    tracing::info!(%user, profile = %name, "first login: created the user's profile");
                    return Ok(Some(name));
                }
                // Another replica (or user) took the name meanwhile: theirs if it is this user's.
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    let taken = self.profiles.get(&name).await?;
                    if owner(&taken) {
                        return Ok(Some(name));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        tracing::warn!(%user, "no free profile name after 20 tries");
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_local_part_and_avoid_the_clusters_own() {
        for (email, want) in [
            ("alice@example.com", "alice"),
            ("Bob.Smith+ml@example.com", "bob-smith-ml"),
            ("__x__@example.com", "x"),
            ("@example.com", "user"),
            ("default@example.com", "default-ws"),
            ("kube-admin@example.com", "kube-admin-ws"),
            ("wharf@example.com", "wharf-ws"),
            ("1st@example.com", "1st"),
        ] {
            assert_eq!(profile_name(email, "wharf"), want, "{email}");
        }
        let long = format!("{}@example.com", "a".repeat(80));
        assert_eq!(profile_name(&long, "wharf").len(), 60);
        assert_eq!(candidate("alice", 1), "alice");
        assert_eq!(candidate("alice", 3), "alice-3");
    }
}
