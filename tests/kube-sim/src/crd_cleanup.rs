//! Deleting a CustomResourceDefinition the way the apiextensions-apiserver does: the DELETE
//! adds the `customresourcecleanup.apiextensions.k8s.io` finalizer and a `Terminating`
//! condition; the CRD finalizer controller then deletes every custom resource (each one with
//! finalizers stays, marked, until its own finalizers are removed — by its operator), reports
//! what remains, and only when none is left removes its finalizer, and the CRD goes. Meanwhile
//! creating a custom resource of that kind is refused (405).

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::ops::now;
use crate::store::{ObjKey, State};

pub const FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
const GROUP: &str = "apiextensions.k8s.io";
const PLURAL: &str = "customresourcedefinitions";

pub fn is_crd(key: &ObjKey) -> bool {
    key.group == GROUP && key.plural == PLURAL
}

fn crd_key(name: &str) -> ObjKey {
    ObjKey {
        group: GROUP.into(),
        plural: PLURAL.into(),
        namespace: String::new(),
        name: name.into(),
    }
}

/// Set the `Terminating` condition (replacing an earlier one) on a CRD object.
fn terminating(crd: &mut Value, reason: &str, message: &str) {
    let mut conditions: Vec<Value> = crd["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    conditions.retain(|c| c["type"] != "Terminating");
    conditions.push(
        json!({"type": "Terminating", "status": "True", "reason": reason,
        "message": message, "lastTransitionTime": now()}),
    );
    crd["status"]["conditions"] = json!(conditions);
}

/// The (group, plural) of the custom resources a CRD serves.
fn served(crd: &Value) -> (String, String) {
    let s = |p: &str| {
        crd.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (s("/spec/group"), s("/spec/names/plural"))
}

impl State {
    /// The DELETE of a CRD: mark it (finalizer, deletionTimestamp, `InstanceDeletionPending`).
    pub fn mark_crd_deleted(&mut self, key: &ObjKey) -> Option<Value> {
        let old = self.get(key)?.clone();
        if !old["metadata"]["deletionTimestamp"].is_null() {
            return Some(old);
        }
        let mut crd = old.clone();
        crd["metadata"]["deletionTimestamp"] = json!(now());
        crd["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        let mut finalizers: Vec<Value> = crd["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == FINALIZER) {
            finalizers.push(json!(FINALIZER));
        }
        crd["metadata"]["finalizers"] = json!(finalizers);
        terminating(
            &mut crd,
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        );
        Some(self.commit(key.clone(), crd, Some(old)))
    }

    /// The CRD finalizer controller's pass: delete the custom resources, then finish or say
    /// what remains.
    pub fn purge_crd(&mut self, name: &str) {
        let key = crd_key(name);
        let Some(crd) = self.get(&key).cloned() else {
            return;
        };
        if crd["metadata"]["deletionTimestamp"].is_null() {
            return;
        }
        let (group, plural) = served(&crd);
        let instances: Vec<ObjKey> = self
            .scan(&group, &plural, None)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &instances {
            self.delete_object(k);
        }
        self.finish_crd_if_empty(name);
    }

    /// Remove the cleanup finalizer (and so the CRD) once no custom resource is left; else
    /// report what holds it, as the real controller's `InstanceDeletionCheck` does.
    pub fn finish_crd_if_empty(&mut self, name: &str) {
        let key = crd_key(name);
        let Some(old) = self.get(&key).cloned() else {
            return;
        };
        if old["metadata"]["deletionTimestamp"].is_null() {
            return;
        }
        let (group, plural) = served(&old);
        let remaining: Vec<Value> = self
            .scan(&group, &plural, None)
            .map(|(_, v)| v.clone())
            .collect();
        let mut crd = old.clone();
        if remaining.is_empty() {
            if let Some(f) = crd["metadata"]["finalizers"].as_array_mut() {
                f.retain(|f| f != FINALIZER);
            }
            terminating(
                &mut crd,
                "InstanceDeletionCompleted",
                "removed all instances",
            );
            let done = crd["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty());
            self.commit(key.clone(), crd, Some(old));
            if done {
                self.delete_now(&key);
            }
            return;
        }
        let mut finalizers: Vec<String> = remaining
            .iter()
            .flat_map(|v| {
                v["metadata"]["finalizers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect();
        finalizers.sort();
        finalizers.dedup();
        let message = format!(
            "could not confirm zero CustomResources remaining: {} {plural}.{group} remaining, \
             with finalizers {}",
            remaining.len(),
            finalizers.join(", ")
        );
        terminating(&mut crd, "InstanceDeletionCheck", &message);
        if crd != old {
            self.commit(key, crd, Some(old));
        }
    }

    /// A create of a custom resource whose CRD is terminating: 405, like the apiserver.
    pub fn refuse_create_while_terminating(&self, crd_name: &str) -> Result<(), ApiError> {
        match self.get(&crd_key(crd_name)) {
            Some(crd) if !crd["metadata"]["deletionTimestamp"].is_null() => {
                Err(ApiError::method_not_allowed(
                    "create not allowed while custom resource definition is terminating",
                ))
            }
            _ => Ok(()),
        }
    }

    /// After a custom resource is really removed: its terminating CRD may now be done.
    pub fn custom_resource_removed(&mut self, key: &ObjKey) {
        let crd_name = format!("{}.{}", key.plural, key.group);
        if self
            .get(&crd_key(&crd_name))
            .is_some_and(|c| !c["metadata"]["deletionTimestamp"].is_null())
        {
            self.finish_crd_if_empty(&crd_name);
        }
    }
}
