//! Kubeflow Pipelines on Argo Workflows: a KFP v2 pipeline file (the IR YAML `kfp` compiles to,
//! with the kfp-kubernetes platform section as its optional second document) parsed (`ir`),
//! checked against the subset wharf covers (`subset`), and compiled to an Argo Workflow
//! (`compile`, `placeholder`, `argo`). `progress` reads a running Workflow's status.
//! `wharf pipeline compile` and `wharf pipeline run` (`action::pipeline`) are the verbs over it.

pub mod argo;
pub mod compile;
mod error;
pub mod ir;
pub mod placeholder;
pub mod progress;
pub mod subset;

use std::path::Path;

use serde_json::Value;

pub use compile::compile;
pub use error::Error;

/// A pipeline file, parsed.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub spec: ir::PipelineSpec,
    pub platform: Option<ir::PlatformSpec>,
    /// How errors name the first document (the file) and the second (`file (document 2)`).
    pub doc: String,
    pub platform_doc: String,
}

/// Read and parse a pipeline file.
pub fn load(path: &Path) -> Result<Pipeline, Error> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
        file: file.clone(),
        why: e.to_string(),
    })?;
    parse(&file, &text)
}

/// Parse the text of a pipeline file named `file` (for messages).
pub fn parse(file: &str, text: &str) -> Result<Pipeline, Error> {
    let doc = file.to_string();
    // Named as the bundle parser names a second document.
    let platform_doc = format!("{file} (document 2)");
    let documents: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| Error::Yaml {
        doc: doc.clone(),
        why: crate::kube::errors::one_line(&e.to_string()),
    })?;
    let mut documents = documents.into_iter().filter(|d| !d.is_null());
    let Some(first) = documents.next() else {
        return Err(Error::Malformed {
            doc,
            path: ".".into(),
            why: "the file holds no YAML document; compile the pipeline with `kfp dsl compile`"
                .into(),
        });
    };
    let second = documents.next();
    let rest = documents.count();
    if rest > 0 {
        return Err(Error::Documents {
            file: doc,
            count: rest + 2,
        });
    }
    let spec = typed(&doc, first)?;
    let platform = second.map(|v| typed(&platform_doc, v)).transpose()?;
    Ok(Pipeline {
        spec,
        platform,
        doc,
        platform_doc,
    })
}

/// One document into its IR type; a serde error becomes the field's JSON path and the problem.
fn typed<T: serde::de::DeserializeOwned>(doc: &str, value: Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = match e.path().to_string().as_str() {
            "." | "?" => String::new(),
            p => p.to_string(),
        };
        let message = e.into_inner().to_string();
        let (path, why) = explain(&at, &message);
        Error::Malformed {
            doc: doc.to_string(),
            path,
            why,
        }
    })
}

/// serde's "unknown field `x`, expected one of …" and "missing field `x`" name the field in the
/// message; move it into the path, which is what the user searches the YAML for.
fn explain(at: &str, message: &str) -> (String, String) {
    let join = |field: &str| {
        if at.is_empty() {
            field.to_string()
        } else {
            format!("{at}.{field}")
        }
    };
    let quoted = |rest: &str| rest.split('`').nth(1).map(str::to_owned);
    if let Some(rest) = message.strip_prefix("unknown field ")
        && let Some(field) = quoted(rest)
    {
        // serde_path_to_error's path already ends with an unknown field's name.
        let path = if at == field || at.ends_with(&format!(".{field}")) {
            at.to_string()
        } else {
            join(&field)
        };
        let known = rest
            .split_once("expected ")
            .map(|(_, k)| format!(" (known here: {})", k.replace('`', "")))
            .unwrap_or_default();
        return (
            path,
            format!("not a field of the KFP IR subset wharf compiles{known}"),
        );
    }
    if let Some(rest) = message.strip_prefix("missing field ")
        && let Some(field) = quoted(rest)
    {
        return (join(&field), "missing (it is required)".into());
    }
    let path = if at.is_empty() {
        ".".into()
    } else {
        at.to_string()
    };
    (path, message.to_string())
}

/// The Workflow as YAML, the form `wharf pipeline compile` prints.
pub fn to_yaml(workflow: &argo::Workflow) -> anyhow::Result<String> {
    Ok(serde_saphyr::to_string(workflow)?)
}

/// Give the Workflow's parameters the values of `--param NAME=VALUE`s, checked against the
/// pipeline's parameters and their types; then every parameter must have a value.
pub fn set_parameters(
    pipeline: &Pipeline,
    workflow: &mut argo::Workflow,
    given: &[String],
) -> Result<(), Error> {
    let declared = &pipeline.spec.root.input_definitions.parameters;
    for item in given {
        let Some((name, value)) = item.split_once('=') else {
            return Err(Error::Param {
                given: item.clone(),
                why: "expected NAME=VALUE".into(),
            });
        };
        let Some(spec) = declared.get(name) else {
            let known: Vec<&str> = declared.keys().map(String::as_str).collect();
            return Err(Error::Param {
                given: item.clone(),
                why: format!(
                    "the pipeline has no parameter `{name}` (it has: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        };
        check_text(spec.parameter_type, value).map_err(|why| Error::Param {
            given: item.clone(),
            why,
        })?;
        let p = workflow
            .spec
            .arguments
            .parameters
            .iter_mut()
            .find(|p| p.name == name)
            .expect("every pipeline parameter is a Workflow parameter");
        p.value = Some(value.to_string());
    }
    if let Some(p) = workflow
        .spec
        .arguments
        .parameters
        .iter()
        .find(|p| p.value.is_none())
    {
        return Err(Error::Param {
            given: format!("{}=…", p.name),
            why: format!(
                "the pipeline parameter `{}` has no default; pass --param {}=VALUE",
                p.name, p.name
            ),
        });
    }
    Ok(())
}

/// Whether a value given as text fits a parameter type (as KFP would parse it).
fn check_text(kind: ir::ParameterType, text: &str) -> Result<(), String> {
    use ir::ParameterType as T;
    let ok = match kind {
        T::String => true,
        T::NumberInteger => text.parse::<i64>().is_ok(),
        T::NumberDouble => text.parse::<f64>().is_ok(),
        T::Boolean => matches!(text, "true" | "false"),
        T::List => matches!(serde_json::from_str::<Value>(text), Ok(Value::Array(_))),
        T::Struct => matches!(serde_json::from_str::<Value>(text), Ok(Value::Object(_))),
        T::TaskFinalStatus => false,
    };
    if !ok {
        let wanted = match kind {
            T::String => "text",
            T::NumberInteger => "an integer",
            T::NumberDouble => "a number",
            T::Boolean => "true or false",
            T::List => "a JSON list",
            T::Struct => "a JSON object",
            T::TaskFinalStatus => "a task status",
        };
        return Err(format!("`{text}` is not {wanted}, the parameter's type"));
    }
    if text.contains("{{") {
        return Err("Argo would read `{{` as a variable; remove it".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_errors_name_the_field_in_the_path() {
        let table = [
            (
                "root.dag.tasks.a",
                "unknown field `foo`, expected one of `x`, `y`",
                "root.dag.tasks.a.foo",
                "known here: one of x, y",
            ),
            (
                "root.dag.tasks.a.foo",
                "unknown field `foo`, expected `x`",
                "root.dag.tasks.a.foo",
                "known here: x",
            ),
            ("", "missing field `root`", "root", "missing"),
            (
                "root.dag",
                "invalid type: string \"x\", expected a map",
                "root.dag",
                "invalid type",
            ),
        ];
        for (at, message, path, why) in table {
            let (p, w) = explain(at, message);
            assert_eq!(p, path);
            assert!(w.contains(why), "{w}");
        }
    }

    #[test]
    fn parameter_text_is_checked_against_its_type() {
        use ir::ParameterType as T;
        assert!(check_text(T::NumberInteger, "3").is_ok());
        assert!(check_text(T::NumberInteger, "3.5").is_err());
        assert!(check_text(T::NumberDouble, "0.001").is_ok());
        assert!(check_text(T::Boolean, "yes").is_err());
        assert!(check_text(T::List, "[1, 2]").is_ok());
        assert!(check_text(T::Struct, "[1]").is_err());
        assert!(check_text(T::String, "{{workflow.name}}").is_err());
    }
}
