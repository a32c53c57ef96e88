//! PersistentVolumeClaims as the apiserver's admission and validation treat them: the default
//! StorageClass filled in and the `kubernetes.io/pvc-protection` finalizer added at creation; on
//! update a spec that is immutable except `resources.requests` of a bound claim, which may grow
//! only on a class with `allowVolumeExpansion` and never shrink below `status.capacity`.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::store::{ObjKey, State};

/// The finalizer the StorageObjectInUseProtection admission plugin adds to every claim.
pub const PROTECTION: &str = "kubernetes.io/pvc-protection";

/// A resource quantity (`10Gi`, `500M`, `1.5Ti`, `1e3`, `100m`) in base units.
pub fn quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(n * factor)
}

fn storage(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => quantity(s),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

impl State {
    /// The StorageClass a claim uses: its `storageClassName`, else the default class.
    pub fn class_of(&self, pvc: &Value) -> Option<Value> {
        match pvc["spec"]["storageClassName"].as_str() {
            Some(name) => self
                .scan("storage.k8s.io", "storageclasses", None)
                .find(|(k, _)| k.name == name)
                .map(|(_, v)| v.clone()),
            None => self.default_class(),
        }
    }

    fn default_class(&self) -> Option<Value> {
        self.scan("storage.k8s.io", "storageclasses", None)
            .find(|(_, v)| {
                v["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
                    == "true"
            })
            .map(|(_, v)| v.clone())
    }

    /// Admission on create: the DefaultStorageClass plugin fills `storageClassName`, the
    /// StorageObjectInUseProtection plugin adds the protection finalizer; `volumeMode` defaults.
    pub fn admit_new_claim(&self, pvc: &mut Value) {
        if pvc["spec"]["storageClassName"].is_null()
            && let Some(class) = self.default_class()
        {
            pvc["spec"]["storageClassName"] = class["metadata"]["name"].clone();
        }
        if pvc["spec"]["volumeMode"].is_null() {
            pvc["spec"]["volumeMode"] = json!("Filesystem");
        }
        let finalizers = pvc["metadata"]["finalizers"].as_array();
        if !finalizers.is_some_and(|f| f.iter().any(|f| f == PROTECTION)) {
            let mut f = finalizers.cloned().unwrap_or_default();
            f.push(json!(PROTECTION));
            pvc["metadata"]["finalizers"] = Value::Array(f);
        }
    }

    /// Admission and validation of a claim update (`old` → `new`), as the apiserver answers.
    pub fn check_claim_update(&self, old: &Value, new: &Value) -> ApiResult<()> {
        let name = old["metadata"]["name"].as_str().unwrap_or_default();
        let requests = |v: &Value| storage(&v["spec"]["resources"]["requests"]["storage"]);
        let (before, after) = (requests(old), requests(new));
        let grows = matches!((before, after), (Some(b), Some(a)) if a > b);
        // The PersistentVolumeClaimResize admission plugin runs before validation.
        if grows {
            let expandable = self
                .class_of(old)
                .is_some_and(|c| c["allowVolumeExpansion"] == json!(true));
            if !expandable {
                return Err(ApiError::forbidden(format!(
                    "persistentvolumeclaims \"{name}\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
                )));
            }
        }
        let bound = old["status"]["phase"] == "Bound";
        let mut a = old["spec"].clone();
        let mut b = new["spec"].clone();
        // The binder may set volumeName once; requests are compared below.
        if a["volumeName"].as_str().is_none_or(str::is_empty) {
            a["volumeName"] = b["volumeName"].clone();
        }
        for s in [&mut a, &mut b] {
            if let Some(r) = s["resources"].as_object_mut() {
                r.remove("requests");
            }
            if let Some(m) = s.as_object_mut() {
                m.remove("volumeAttributesClassName");
                if m.get("resources")
                    .is_some_and(|r| r.as_object().is_some_and(|r| r.is_empty()))
                {
                    m.remove("resources");
                }
            }
        }
        let mut causes = Vec::new();
        if a != b || (before != after && !bound) {
            causes.push((
                "spec".to_string(),
                "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".to_string(),
            ));
        }
        if let (Some(b), Some(a)) = (before, after)
            && a < b
        {
            let capacity = storage(&old["status"]["capacity"]["storage"]).unwrap_or(b);
            if a < capacity {
                causes.push((
                    "spec.resources.requests.storage".to_string(),
                    "Forbidden: field can not be less than status.capacity".to_string(),
                ));
            }
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid("PersistentVolumeClaim", "", name, causes))
        }
    }

    /// Whether a pod that has not finished mounts the claim `ns/name`.
    pub fn claim_in_use(&self, ns: &str, name: &str) -> bool {
        self.scan("", "pods", Some(ns)).any(|(_, p)| {
            !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
                && claims_of(p).iter().any(|c| c == name)
        })
    }
}

/// The claims a pod mounts.
pub fn claims_of(pod: &Value) -> Vec<String> {
    pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .map(str::to_string)
        .collect()
}

/// The key of claim `name` in `ns`.
pub fn claim_key(ns: &str, name: &str) -> ObjKey {
    ObjKey {
        group: String::new(),
        plural: "persistentvolumeclaims".into(),
        namespace: ns.into(),
        name: name.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for (q, want) in [
            ("10Gi", 10.0 * 1024f64.powi(3)),
            ("10240Mi", 10.0 * 1024f64.powi(3)),
            ("1G", 1e9),
            ("100m", 0.1),
            ("1e3", 1000.0),
            ("5", 5.0),
        ] {
            assert_eq!(quantity(q), Some(want), "{q}");
        }
        assert_eq!(quantity("10Qi"), None);
    }
}
