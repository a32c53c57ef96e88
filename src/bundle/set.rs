//! `--set app.key=value`: the last and strongest layer of options. The key may itself contain dots
//! (`istio.gateway.name`), so only the first dot separates the application.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use serde_json::Value;

use super::{Bundle, did_you_mean};

pub fn apply(bundle: &mut Bundle, sets: &[String]) -> Result<()> {
    for (app, values) in parse(bundle, sets)? {
        bundle.add_layer(&app, format!("--set {app}"), values);
    }
    Ok(())
}

/// `APP.KEY=VALUE` expressions by application, each naming an application of `bundle`.
pub fn parse(
    bundle: &Bundle,
    sets: &[String],
) -> Result<BTreeMap<String, BTreeMap<String, Value>>> {
    let mut layers: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for expression in sets {
        let (target, value) = expression
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {expression}: expected APP.KEY=VALUE, for example --set dex-auth.public-url=http://10.0.0.5.nip.io"))?;
        let (app, key) = split_app_key(target).map_err(|why| anyhow!("--set {target}=…: {why}"))?;
        check_app(bundle, app).map_err(|why| anyhow!("--set {target}=…: {why}"))?;
        layers
            .entry(app.to_string())
            .or_default()
            .insert(key.to_string(), Value::String(value.to_string()));
    }
    Ok(layers)
}

/// `APP.KEY` into its two parts (the key may itself contain dots).
pub fn split_app_key(target: &str) -> std::result::Result<(&str, &str), String> {
    target
        .split_once('.')
        .filter(|(app, key)| !app.is_empty() && !key.is_empty())
        .ok_or_else(|| {
            format!(
                "expected APP.KEY; `{target}` is not APP.KEY (an application, a dot, then one of its \
                 options, for example dex-auth.port)"
            )
        })
}

/// The bundle has an application named `app`, or an error listing those it has.
pub fn check_app(bundle: &Bundle, app: &str) -> std::result::Result<(), String> {
    if bundle.applications.contains_key(app) {
        return Ok(());
    }
    Err(format!(
        "the bundle has no application `{app}`{}; its applications are: {}",
        did_you_mean(app, bundle.applications.keys()),
        bundle
            .applications
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
