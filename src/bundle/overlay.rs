//! Merging documents into a bundle the way Juju merges overlays: an application in an overlay
//! updates the one of the same name field by field (options key by key), a new one is added, and
//! `app: null` removes it together with its relations; relations are added.

use anyhow::{Result, anyhow, bail};

use super::raw::{RawApplication, RawDocument};
use super::{Application, Bundle, Endpoint};

pub fn from_base(file: &str, base: RawDocument) -> Result<Bundle> {
    if let Some(kind) = &base.bundle
        && kind != "kubernetes"
    {
        bail!(
            "{file}: bundle: `{kind}` is not supported; wharf deploys to Kubernetes, set `bundle: kubernetes`"
        );
    }
    let name = base
        .name
        .clone()
        .ok_or_else(|| anyhow!("{file}: name: missing; give the bundle a name"))?;
    let mut bundle = Bundle {
        file: file.to_string(),
        name,
        applications: Default::default(),
        relations: Vec::new(),
        requirements: None,
        relation_origins: Default::default(),
    };
    apply(&mut bundle, file, base)?;
    if bundle.applications.is_empty() {
        bail!("{file}: applications: the bundle has none; add at least one");
    }
    Ok(bundle)
}

pub fn apply(bundle: &mut Bundle, origin: &str, document: RawDocument) -> Result<()> {
    if document.requirements.is_some() {
        bundle.requirements = document.requirements;
    }
    for (app, raw) in document.applications {
        let field = format!("{origin}: applications.{app}");
        match raw {
            None => {
                bundle.applications.remove(&app);
                bundle
                    .relations
                    .retain(|pair| pair.iter().all(|side| side.app != app));
            }
            Some(raw) => merge_application(bundle, &field, &app, raw)?,
        }
    }
    for (index, pair) in document.relations.iter().enumerate() {
        let field = format!("{origin}: relations[{index}]");
        let [a, b] = pair.as_slice() else {
            bail!(
                "{field}: a relation is a pair of endpoints like [dex-auth:dex-oidc-config, oidc-gatekeeper], got {} items",
                pair.len()
            );
        };
        let relation = [parse_endpoint(&field, a)?, parse_endpoint(&field, b)?];
        if !bundle.relations.contains(&relation) {
            bundle.relation_origins.insert(relation.clone(), field);
            bundle.relations.push(relation);
        }
    }
    Ok(())
}

fn merge_application(
    bundle: &mut Bundle,
    field: &str,
    app: &str,
    raw: RawApplication,
) -> Result<()> {
    let options_origin = format!("{field}.options");
    let existing = bundle.applications.get_mut(app);
    match existing {
        Some(current) => {
            if let Some(charm) = raw.charm {
                current.charm = charm;
            }
            current.channel = raw.channel.or(current.channel.take());
            current.scale = raw.scale.unwrap_or(current.scale);
            current.trust = raw.trust.unwrap_or(current.trust);
            current.constraints = raw.constraints.or(current.constraints.take());
            if !raw.options.is_empty() {
                current.options.push((options_origin, raw.options));
            }
        }
        None => {
            let charm = raw.charm.ok_or_else(|| {
                anyhow!("{field}.charm: missing; say which charm runs this application (for example `charm: {app}`)")
            })?;
            crate::render::names::check_dns_label(app)
                .map_err(|why| anyhow!("{field}: the application name {why}"))?;
            bundle.applications.insert(
                app.to_string(),
                Application {
                    charm,
                    channel: raw.channel,
                    scale: raw.scale.unwrap_or(1),
                    trust: raw.trust.unwrap_or(false),
                    constraints: raw.constraints,
                    options: if raw.options.is_empty() {
                        Vec::new()
                    } else {
                        vec![(options_origin, raw.options)]
                    },
                },
            );
        }
    }
    Ok(())
}

fn parse_endpoint(field: &str, text: &str) -> Result<Endpoint> {
    let (app, endpoint) = match text.split_once(':') {
        Some((app, endpoint)) => (app, Some(endpoint.to_string())),
        None => (text, None),
    };
    if app.is_empty() || endpoint.as_deref() == Some("") {
        bail!("{field}: `{text}` is not an endpoint; write `app:endpoint` or `app`");
    }
    Ok(Endpoint {
        app: app.to_string(),
        endpoint,
    })
}
