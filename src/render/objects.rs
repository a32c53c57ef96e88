//! Templates → objects: parse each rendered template as YAML documents, check that each is a
//! Kubernetes object, stamp the standard labels and the namespace, and keep secret values out of
//! everything that is not a Secret.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

use super::{RenderedApp, Target, names, standard_labels};
use crate::charm::{Charm, Config};

pub fn render_templates(
    app: &str,
    charm: &Charm,
    context: &tera::Context,
    target: &Target,
    config: &Config,
) -> Result<(Vec<Value>, Vec<String>)> {
    // Render every template first: a charm's own cluster-scoped CRDs decide which of its
    // custom resources get a namespace, whatever template they are in.
    let mut rendered = Vec::new();
    for template in &charm.templates {
        let text = charm
            .engine
            .render(template, context)
            .map_err(|e| anyhow!("{template}: {}", crate::charm::tera_error(&e)))?;
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| anyhow!("{template}: the rendered template is not valid YAML: {e}"))?;
        rendered.push((template, documents));
    }
    let cluster_scoped_crs = custom_cluster_kinds(&rendered);
    let labels = standard_labels(app, charm);
    let mut objects = Vec::new();
    let mut sources = Vec::new();
    for (template, documents) in rendered {
        for (index, mut object) in documents.into_iter().filter(|d| !d.is_null()).enumerate() {
            let place = format!("{template}: document {}", index + 1);
            let kind = check_object(&place, &object)?;
            let namespaced = !names::CLUSTER_SCOPED_KINDS.contains(&kind.as_str())
                && !cluster_scoped_crs.contains(&kind);
            stamp(
                &mut object,
                &labels,
                namespaced.then_some(target.namespace.as_str()),
            );
            if kind != "Secret" {
                keep_secrets_out(&place, &object, config)?;
            }
            objects.push(object);
            sources.push(template.clone());
        }
    }
    Ok((objects, sources))
}

/// Kinds this charm's own CRDs declare cluster-scoped.
fn custom_cluster_kinds(rendered: &[(&String, Vec<Value>)]) -> Vec<String> {
    rendered
        .iter()
        .flat_map(|(_, documents)| documents)
        .filter(|doc| {
            doc["kind"] == "CustomResourceDefinition" && doc["spec"]["scope"] == "Cluster"
        })
        .filter_map(|doc| doc["spec"]["names"]["kind"].as_str().map(str::to_string))
        .collect()
}

fn check_object(place: &str, object: &Value) -> Result<String> {
    if !object.is_object() {
        bail!(
            "{place}: expected a Kubernetes object (a mapping with apiVersion, kind and metadata.name)"
        );
    }
    for field in ["apiVersion", "kind"] {
        if object[field].as_str().is_none_or(|s| s.is_empty()) {
            bail!(
                "{place}: {field}: missing; every object needs apiVersion, kind and metadata.name"
            );
        }
    }
    let name = object["metadata"]["name"]
        .as_str()
        .ok_or_else(|| anyhow!("{place}: metadata.name: missing; every object needs a name"))?;
    names::check_dns_subdomain(name).map_err(|why| anyhow!("{place}: metadata.name: {why}"))?;
    Ok(object["kind"].as_str().unwrap().to_string())
}

/// Sets the standard labels (the template's own labels stay unless they clash) and the namespace.
fn stamp(object: &mut Value, labels: &BTreeMap<String, String>, namespace: Option<&str>) {
    let metadata = object["metadata"].as_object_mut().expect("checked");
    let existing = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    if !existing.is_object() {
        *existing = Value::Object(Default::default());
    }
    let map = existing.as_object_mut().unwrap();
    for (key, value) in labels {
        map.insert(key.clone(), Value::String(value.clone()));
    }
    match namespace {
        Some(ns) => {
            metadata.insert("namespace".into(), Value::String(ns.to_string()));
        }
        None => {
            metadata.remove("namespace");
        }
    }
}

/// A secret option's value may only appear inside a Secret.
fn keep_secrets_out(place: &str, object: &Value, config: &Config) -> Result<()> {
    for (key, secret) in config.secret_values() {
        if secret.len() >= 4 && contains_text(object, secret) {
            bail!(
                "{place}: the value of secret option `{key}` appears in a {}; secret values may only go into a Secret \
                 (reference it with secretKeyRef or a mounted Secret volume)",
                object["kind"].as_str().unwrap_or("object")
            );
        }
    }
    Ok(())
}

fn contains_text(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s.contains(needle),
        Value::Array(items) => items.iter().any(|v| contains_text(v, needle)),
        Value::Object(map) => map.values().any(|v| contains_text(v, needle)),
        _ => false,
    }
}

/// No two objects of a render may share kind, namespace and name.
pub fn check_unique(apps: &[RenderedApp]) -> Result<()> {
    let mut seen: BTreeMap<(String, String, String, String), &str> = BTreeMap::new();
    for app in apps {
        for (object, source) in app.objects.iter().zip(&app.sources) {
            let key = (
                object["apiVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                object["kind"].as_str().unwrap_or_default().to_string(),
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            if let Some(first) = seen.insert(key.clone(), source) {
                bail!(
                    "{source}: {} `{}` is also rendered by {first}; object names must be unique (prefix them with {{{{ app.name }}}})",
                    key.1,
                    key.3
                );
            }
        }
    }
    Ok(())
}
