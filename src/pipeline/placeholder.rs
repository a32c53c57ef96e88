//! KFP's placeholders in an executor's `command` and `args`, turned into what Argo substitutes:
//!
//! | KFP                                           | Argo                                   |
//! |-----------------------------------------------|----------------------------------------|
//! | `{{$.inputs.parameters['x']}}`                | `{{inputs.parameters.x}}`              |
//! | `{{$.outputs.parameters['y'].output_file}}`   | `/tmp/outputs/parameters/y` (read back through `valueFrom.path`) |
//! | `{{$.inputs.artifacts['a'].path}}`            | `/tmp/inputs/artifacts/a` (Argo puts the artifact there) |
//! | `{{$.outputs.artifacts['m'].path}}`           | `/tmp/outputs/artifacts/m` (Argo uploads it from there) |
//!
//! Anything else between `{{` and `}}` is refused: the rest of KFP's placeholders need its
//! launcher (`{{$}}`, `.uri`, `.metadata`, `{{$.pipeline_job_name}}`…), and text Argo would read
//! as its own variable must not reach it by accident. So are KFP's structured placeholders
//! (`{"IfPresent": …}`, `{"Concat": …}`).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

/// Where a step's outputs and inputs live in its container. Output paths are under `/tmp`, which
/// every image has (wharf's own images too); the step creates the parent directory of an output
/// path before writing it, as KFP's own components do.
pub fn output_parameter_path(name: &str) -> String {
    format!("/tmp/outputs/parameters/{name}")
}

pub fn output_artifact_path(name: &str) -> String {
    format!("/tmp/outputs/artifacts/{name}")
}

pub fn input_artifact_path(name: &str) -> String {
    format!("/tmp/inputs/artifacts/{name}")
}

/// What a component declares, which its placeholders may name.
#[derive(Debug, Default)]
pub struct Declared {
    /// Input parameters that have a value: given by the task or defaulted.
    pub input_parameters: BTreeSet<String>,
    pub input_artifacts: BTreeSet<String>,
    pub output_parameters: BTreeSet<String>,
    pub output_artifacts: BTreeSet<String>,
}

/// Why one argument cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A KFP feature the subset leaves out (the message names it).
    Unsupported { feature: String, fix: String },
    /// A placeholder naming an input or output the component does not declare.
    Undeclared(String),
}

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{(.*?)\}\}").expect("valid regex"));
static KFP_IO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"^\$\.(inputs|outputs)\.(parameters|artifacts)\[\s*(?:'([^']*)'|"([^"]*)")\s*\](?:\.([A-Za-z_]+))?$"#,
    )
    .expect("valid regex")
});
static STRUCTURED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^\s*\{\s*"(IfPresent|Concat)"\s*:"#).expect("valid regex"));

/// Translate one `command` or `args` entry.
pub fn translate(arg: &str, declared: &Declared) -> Result<String, Problem> {
    if let Some(kind) = STRUCTURED.captures(arg) {
        return Err(Problem::Unsupported {
            feature: format!("KFP's `{}` placeholder", &kind[1]),
            fix: "write the argument out (give the input a value, or build the string in the \
                  component)"
                .into(),
        });
    }
    let mut out = String::with_capacity(arg.len());
    let mut rest = 0;
    for found in PLACEHOLDER.captures_iter(arg) {
        let whole = found.get(0).expect("match");
        literal(&arg[rest..whole.start()])?;
        out.push_str(&arg[rest..whole.start()]);
        out.push_str(&one(whole.as_str(), found[1].trim(), declared)?);
        rest = whole.end();
    }
    literal(&arg[rest..])?;
    out.push_str(&arg[rest..]);
    Ok(out)
}

/// Text between placeholders: an unmatched `{{` would be Argo's to interpret.
fn literal(text: &str) -> Result<(), Problem> {
    if text.contains("{{") {
        return Err(Problem::Unsupported {
            feature: "an unterminated `{{`".into(),
            fix: "Argo reads `{{` as the start of a variable; remove it".into(),
        });
    }
    Ok(())
}

fn one(whole: &str, inner: &str, declared: &Declared) -> Result<String, Problem> {
    let Some(io) = KFP_IO.captures(inner) else {
        let fix = if inner.starts_with('$') {
            "only inputs.parameters, outputs.parameters[…].output_file and inputs/outputs \
             .artifacts[…].path are translated; pass the value as an input parameter instead"
        } else {
            "Argo would read it as one of its own variables; KFP never writes it"
        };
        return Err(Problem::Unsupported {
            feature: format!("the placeholder `{whole}`"),
            fix: fix.into(),
        });
    };
    let direction = &io[1];
    let kind = &io[2];
    let name = io.get(3).or(io.get(4)).expect("one quote form").as_str();
    let field = io.get(5).map(|m| m.as_str());
    let (set, translated) = match (direction, kind, field) {
        ("inputs", "parameters", None) => (
            &declared.input_parameters,
            format!("{{{{inputs.parameters.{name}}}}}"),
        ),
        ("outputs", "parameters", Some("output_file")) => {
            (&declared.output_parameters, output_parameter_path(name))
        }
        ("inputs", "artifacts", Some("path")) => {
            (&declared.input_artifacts, input_artifact_path(name))
        }
        ("outputs", "artifacts", Some("path")) => {
            (&declared.output_artifacts, output_artifact_path(name))
        }
        _ => {
            return Err(Problem::Unsupported {
                feature: format!("the placeholder `{whole}`"),
                fix: "artifacts are passed by path (`.path`) and output parameters by file \
                      (`.output_file`); URIs and metadata need KFP's launcher and MLMD"
                    .into(),
            });
        }
    };
    if !set.contains(name) {
        let known: Vec<&str> = set.iter().map(String::as_str).collect();
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        let what = format!("{direction}.{kind}");
        return Err(Problem::Undeclared(format!(
            "`{whole}` names `{name}`, which is not among the component's {what} with a value \
             (declared: {known})"
        )));
    }
    Ok(translated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> Declared {
        let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        Declared {
            input_parameters: set(&["epochs", "name"]),
            input_artifacts: set(&["dataset"]),
            output_parameters: set(&["accuracy"]),
            output_artifacts: set(&["model"]),
        }
    }

    #[test]
    fn each_supported_placeholder_becomes_argos_form() {
        let table = [
            (
                "--epochs={{$.inputs.parameters['epochs']}}",
                "--epochs={{inputs.parameters.epochs}}",
            ),
            (
                "{{$.inputs.parameters[\"name\"]}}",
                "{{inputs.parameters.name}}",
            ),
            (
                "{{$.outputs.parameters['accuracy'].output_file}}",
                "/tmp/outputs/parameters/accuracy",
            ),
            (
                "{{$.inputs.artifacts['dataset'].path}}",
                "/tmp/inputs/artifacts/dataset",
            ),
            (
                "{{$.outputs.artifacts['model'].path}}/x",
                "/tmp/outputs/artifacts/model/x",
            ),
            (
                "a {{$.inputs.parameters['name']}} b {{$.inputs.parameters['epochs']}}",
                "a {{inputs.parameters.name}} b {{inputs.parameters.epochs}}",
            ),
            ("plain text, no placeholder", "plain text, no placeholder"),
        ];
        for (kfp, argo) in table {
            assert_eq!(translate(kfp, &declared()).as_deref(), Ok(argo), "{kfp}");
        }
    }

    #[test]
    fn placeholders_outside_the_subset_are_refused_by_name() {
        let table = [
            ("{{$}}", "`{{$}}`"),
            (
                "{{$.inputs.artifacts['dataset'].uri}}",
                "`{{$.inputs.artifacts['dataset'].uri}}`",
            ),
            ("{{$.outputs.artifacts['model'].metadata}}", ".metadata"),
            ("{{$.pipeline_job_name}}", "`{{$.pipeline_job_name}}`"),
            ("{{workflow.name}}", "`{{workflow.name}}`"),
            ("{\"IfPresent\": {\"InputName\": \"x\"}}", "IfPresent"),
            ("{\"Concat\": [\"a\"]}", "Concat"),
            ("half {{ open", "unterminated"),
        ];
        for (arg, named) in table {
            match translate(arg, &declared()) {
                Err(Problem::Unsupported { feature, .. }) => {
                    assert!(feature.contains(named), "{arg}: {feature}")
                }
                other => panic!("{arg}: expected Unsupported, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_placeholder_naming_an_undeclared_input_says_what_is_declared() {
        let err = translate("{{$.inputs.parameters['lr']}}", &declared()).unwrap_err();
        let Problem::Undeclared(why) = err else {
            panic!("{err:?}")
        };
        assert!(
            why.contains("`lr`") && why.contains("epochs, name"),
            "{why}"
        );
    }
}
