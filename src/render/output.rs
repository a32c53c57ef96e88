//! Rendered objects as text: one YAML stream, or one file per application; Secret data redacted
//! unless the user asks to see it.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use super::{Rendered, RenderedApp};

pub const REDACTED: &str = "<redacted>";

/// Replaces every value under a Secret's `data` and `stringData`.
pub fn redact(object: &mut Value) {
    if object["kind"] != "Secret" {
        return;
    }
    for field in ["data", "stringData"] {
        if let Some(map) = object.get_mut(field).and_then(Value::as_object_mut) {
            for value in map.values_mut() {
                *value = Value::String(REDACTED.into());
            }
        }
    }
}

/// One application's objects as a YAML stream, each headed by the template it came from.
pub fn app_yaml(app: &RenderedApp, show_secrets: bool) -> Result<String> {
    let mut out = String::new();
    for (object, source) in app.objects.iter().zip(&app.sources) {
        let mut object = object.clone();
        if !show_secrets {
            redact(&mut object);
        }
        out.push_str("---\n");
        out.push_str(&format!("# Source: {source}\n"));
        out.push_str(&serde_saphyr::to_string(&object).context("serialising a rendered object")?);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

pub fn stream(rendered: &Rendered, show_secrets: bool) -> Result<String> {
    rendered
        .apps
        .iter()
        .map(|app| app_yaml(app, show_secrets))
        .collect()
}

/// Writes `<dir>/<app>.yaml` for every application; returns the paths written.
pub fn write_dir(
    rendered: &Rendered,
    dir: &Path,
    show_secrets: bool,
) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for app in &rendered.apps {
        let path = dir.join(format!("{}.yaml", app.name));
        std::fs::write(&path, app_yaml(app, show_secrets)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
