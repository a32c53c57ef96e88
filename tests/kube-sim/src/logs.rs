//! The `pods/log` subresource: `GET /api/v1/namespaces/{ns}/pods/{name}/log` answers the
//! container's log as `text/plain`, as the kubelet serves it through the apiserver. Simulated pods
//! run nothing, so a test writes what their containers print (`Simulator::append_pod_log`).
//!
//! Kept faithful where clients depend on it: RBAC is checked on `pods/log` (verb `get`); a pod
//! with several containers needs `container=`; a container that has not started is a 400
//! `container "c" in pod "p" is waiting to start: REASON`; `tailLines` keeps the last lines and
//! `limitBytes` then cuts the answer, as the kubelet does. `follow=true` answers what there is and
//! ends (no streaming); `previous=true` is a 400 (simulated containers never restart).

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::store::{ObjKey, State};

/// The stored log of one container: keyed by the pod's uid (a pod recreated under the same name
/// starts empty, as a real one does) and the container's name.
pub type Logs = std::collections::BTreeMap<(String, String), String>;

fn pod(st: &State, ns: &str, name: &str) -> ApiResult<Value> {
    let key = ObjKey {
        group: String::new(),
        plural: "pods".into(),
        namespace: ns.to_string(),
        name: name.to_string(),
    };
    st.get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found("pods", "", name))
}

fn container_names(pod: &Value) -> Vec<String> {
    pod["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The answer to `GET .../pods/{name}/log` with query `q`.
pub fn get(st: &State, ns: &str, name: &str, q: &HashMap<String, String>) -> ApiResult<String> {
    let pod = pod(st, ns, name)?;
    let names = container_names(&pod);
    let container = match q.get("container").filter(|c| !c.is_empty()) {
        Some(c) if names.contains(c) => c.clone(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    if q.get("previous").is_some_and(|p| p == "true") {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    let state = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
        .map(|c| c["state"].clone())
        .unwrap_or(Value::Null);
    if state.get("running").is_none() && state.get("terminated").is_none() {
        let reason = state["waiting"]["reason"]
            .as_str()
            .unwrap_or("ContainerCreating");
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    let text = st
        .pod_logs
        .get(&(uid.to_string(), container))
        .cloned()
        .unwrap_or_default();
    let number = |key: &str| -> ApiResult<Option<usize>> {
        q.get(key)
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| ApiError::bad_request(format!("{key}: {v:?} is not a number")))
            })
            .transpose()
    };
    let mut text = match number("tailLines")? {
        Some(n) => tail(&text, n).to_string(),
        None => text,
    };
    if let Some(limit) = number("limitBytes")? {
        if limit == 0 {
            return Err(ApiError::bad_request("limitBytes: must be greater than 0"));
        }
        let mut cut = limit.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Ok(text)
}

/// The last `n` lines of `text` (a final line without a newline counts).
fn tail(text: &str, n: usize) -> &str {
    if n == 0 {
        return "";
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    match body.rmatch_indices('\n').nth(n - 1) {
        Some((at, _)) => &text[at + 1..],
        None => text,
    }
}

/// Appends `text` to container `container` of every pod in `ns` whose name matches `pattern`;
/// how many pods matched.
pub fn append(
    st: &mut State,
    ns: &str,
    pattern: &regex::Regex,
    container: &str,
    text: &str,
) -> usize {
    let uids: Vec<String> = st
        .scan("", "pods", Some(ns))
        .filter(|(k, p)| {
            pattern.is_match(&k.name) && container_names(p).iter().any(|c| c == container)
        })
        .filter_map(|(_, p)| p["metadata"]["uid"].as_str().map(str::to_string))
        .collect();
    for uid in &uids {
        st.pod_logs
            .entry((uid.clone(), container.to_string()))
            .or_default()
            .push_str(text);
    }
    uids.len()
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a\nb\n", 5), "a\nb\n");
        assert_eq!(tail("a\nb\n", 0), "");
        assert_eq!(tail("", 3), "");
    }
}
