//! What `wharf pipeline run --watch` shows of a running Workflow: its `status.phase` and each
//! step's phase (`status.nodes` of type Pod, by task name), as lines for what changed since the
//! last look. Pure: the follow loop in `action::pipeline` only fetches the object.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// A Workflow's state at one look.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// `status.phase`: Pending, Running, Succeeded, Failed, Error (empty before the controller
    /// has seen the Workflow).
    pub phase: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Task name → its step's state.
    pub steps: BTreeMap<String, Step>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Step {
    pub phase: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl Snapshot {
    /// Read a Workflow object (its `status`; none yet is an empty snapshot).
    pub fn of(workflow: &Value) -> Snapshot {
        let status = &workflow["status"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let mut steps = BTreeMap::new();
        if let Some(nodes) = status["nodes"].as_object() {
            for node in nodes.values() {
                // DAG and Retry nodes group steps; the Pods are the steps users wrote.
                if !matches!(node["type"].as_str(), Some("Pod" | "Skipped" | "Suspend")) {
                    continue;
                }
                let name = node["displayName"]
                    .as_str()
                    .or(node["name"].as_str())
                    .unwrap_or_default();
                steps.insert(
                    name.to_string(),
                    Step {
                        phase: text(&node["phase"]),
                        message: text(&node["message"]),
                    },
                );
            }
        }
        Snapshot {
            phase: text(&status["phase"]),
            message: text(&status["message"]),
            steps,
        }
    }

    /// The Workflow has finished (the controller never changes these phases again).
    pub fn is_done(&self) -> bool {
        matches!(self.phase.as_str(), "Succeeded" | "Failed" | "Error")
    }

    pub fn succeeded(&self) -> bool {
        self.phase == "Succeeded"
    }

    /// Lines for what changed since `before`: steps first (in name order), the Workflow last.
    pub fn changes(&self, before: &Snapshot, workflow: &str) -> Vec<String> {
        let mut lines = Vec::new();
        for (name, step) in &self.steps {
            if before.steps.get(name) != Some(step) && !step.phase.is_empty() {
                lines.push(line(&format!("step {name}"), &step.phase, &step.message));
            }
        }
        if (self.phase != before.phase || self.message != before.message) && !self.phase.is_empty()
        {
            lines.push(line(
                &format!("workflow {workflow}"),
                &self.phase,
                &self.message,
            ));
        }
        lines
    }
}

fn line(what: &str, phase: &str, message: &str) -> String {
    if message.is_empty() {
        format!("{what}: {phase}")
    } else {
        format!("{what}: {phase} ({message})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workflow(phase: &str, nodes: Value) -> Value {
        json!({"status": {"phase": phase, "nodes": nodes}})
    }

    #[test]
    fn a_workflow_without_status_is_not_done_and_shows_nothing() {
        let s = Snapshot::of(&json!({"metadata": {"name": "w"}}));
        assert!(!s.is_done());
        assert!(s.changes(&Snapshot::default(), "w").is_empty());
    }

    #[test]
    fn steps_are_the_pod_nodes_by_task_name_and_only_changes_are_printed() {
        let running = Snapshot::of(&workflow(
            "Running",
            json!({
                "w": {"type": "DAG", "displayName": "w", "phase": "Running"},
                "w-1": {"type": "Pod", "displayName": "train", "phase": "Running"},
            }),
        ));
        assert_eq!(
            running.changes(&Snapshot::default(), "w"),
            ["step train: Running", "workflow w: Running"]
        );
        let failed = Snapshot::of(&workflow(
            "Failed",
            json!({
                "w-1": {"type": "Pod", "displayName": "train", "phase": "Failed", "message": "Error (exit code 1)"},
                "w-2": {"type": "Pod", "displayName": "predict", "phase": "Omitted"},
            }),
        ));
        assert_eq!(
            failed.changes(&running, "w"),
            [
                "step predict: Omitted",
                "step train: Failed (Error (exit code 1))",
                "workflow w: Failed"
            ]
        );
        assert!(failed.is_done() && !failed.succeeded());
        assert!(failed.changes(&failed, "w").is_empty());
    }
}
