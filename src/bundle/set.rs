//! `--set app.key=value`: the last and strongest layer of options. The key may itself contain dots
//! (`istio.gateway.name`), so only the first dot separates the application.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

use super::{Bundle, did_you_mean};

pub fn apply(bundle: &mut Bundle, sets: &[String]) -> Result<()> {
    let mut layers: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for expression in sets {
        let (target, value) = expression
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {expression}: expected APP.KEY=VALUE, for example --set dex-auth.public-url=http://10.0.0.5.nip.io"))?;
        let (app, key) = target
            .split_once('.')
            .filter(|(app, key)| !app.is_empty() && !key.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "--set {target}=…: expected APP.KEY=VALUE; `{target}` is not APP.KEY (an application, a dot, then \
                     one of its options, for example dex-auth.port)"
                )
            })?;
        if !bundle.applications.contains_key(app) {
            bail!(
                "--set {target}=…: the bundle has no application `{app}`{}; its applications are: {}",
                did_you_mean(app, bundle.applications.keys()),
                bundle
                    .applications
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        layers
            .entry(app.to_string())
            .or_default()
            .insert(key.to_string(), Value::String(value.to_string()));
    }
    for (app, values) in layers {
        let application = bundle.applications.get_mut(&app).expect("checked above");
        application.options.push((format!("--set {app}"), values));
    }
    Ok(())
}
