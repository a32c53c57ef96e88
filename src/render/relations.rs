//! Resolving a bundle's relations against its charms: which provider endpoint feeds each
//! required endpoint. Both sides must exist and speak the same interface; a bare `app` side is
//! inferred when exactly one pairing fits; a required endpoint left unrelated is an error unless
//! the charm marks it optional.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use crate::bundle::{Bundle, Endpoint};
use crate::charm::Charm;

/// (application, endpoint)
pub type Side = (String, String);

/// For each required side, the provider side feeding it.
#[derive(Debug, Default)]
pub struct Wiring {
    pub providers: BTreeMap<Side, Side>,
    /// Required sides the charm marks optional: they get data but do not order deployment.
    pub optional: std::collections::BTreeSet<Side>,
}

impl Wiring {
    /// Applications that `app` requires through non-optional relations (they deploy first).
    /// An optional endpoint works without its provider, so it does not order deployment; that is
    /// what lets Dex and its OAuth2 client relate both ways without a cycle.
    pub fn needs(&self, app: &str) -> Vec<String> {
        let mut needs: Vec<String> = self
            .providers
            .iter()
            .filter(|(side, _)| side.0 == app && !self.optional.contains(*side))
            .map(|(_, (provider, _))| provider.clone())
            .filter(|provider| provider != app)
            .collect();
        needs.sort();
        needs.dedup();
        needs
    }
}

pub fn resolve(bundle: &Bundle, charms: &BTreeMap<String, Charm>) -> Result<Wiring> {
    let charm_of = |app: &str| &charms[&bundle.applications[app].charm];
    let mut wiring = Wiring::default();
    for pair in &bundle.relations {
        let [a, b] = pair;
        let field = format!("{}: [{a}, {b}]", bundle.relation_field(pair));
        for side in [a, b] {
            if let Some(endpoint) = &side.endpoint {
                let meta = &charm_of(&side.app).meta;
                if !meta.provides.contains_key(endpoint) && !meta.requires.contains_key(endpoint) {
                    let known: Vec<&String> =
                        meta.provides.keys().chain(meta.requires.keys()).collect();
                    bail!(
                        "{field}: charm {} (application {}) has no endpoint `{endpoint}`; its endpoints are: {}",
                        meta.name,
                        side.app,
                        join(&known)
                    );
                }
            }
        }
        let mut candidates = pairings(a, b, charms, bundle);
        candidates.extend(pairings(b, a, charms, bundle));
        let (provider, requirer) = match candidates.len() {
            1 => candidates.remove(0),
            0 => bail!(
                "{field}: no provided endpoint on one side matches a required endpoint on the other with the same \
                 interface ({}; {}); check the endpoint names and interfaces in both charms' metadata.yaml",
                describe(a, charm_of(&a.app)),
                describe(b, charm_of(&b.app))
            ),
            _ => {
                let listed: Vec<String> = candidates
                    .iter()
                    .map(|(p, r)| format!("[{}:{}, {}:{}]", p.0, p.1, r.0, r.1))
                    .collect();
                bail!(
                    "{field}: ambiguous, it could mean any of {}; name the endpoints",
                    listed.join(", ")
                )
            }
        };
        if let Some(existing) = wiring.providers.get(&requirer)
            && existing != &provider
        {
            bail!(
                "{field}: {}:{} is already related to {}:{}; a required endpoint takes one provider, remove one of \
                     the relations",
                requirer.0,
                requirer.1,
                existing.0,
                existing.1
            );
        }
        if charm_of(&requirer.0).meta.requires[&requirer.1].optional {
            wiring.optional.insert(requirer.clone());
        }
        wiring.providers.insert(requirer, provider);
    }
    check_required_endpoints(bundle, charms, &wiring)?;
    Ok(wiring)
}

/// Every (provider side, requirer side) where `provider` provides and `requirer` requires the same interface.
fn pairings(
    provider: &Endpoint,
    requirer: &Endpoint,
    charms: &BTreeMap<String, Charm>,
    bundle: &Bundle,
) -> Vec<(Side, Side)> {
    let provides = &charms[&bundle.applications[&provider.app].charm]
        .meta
        .provides;
    let requires = &charms[&bundle.applications[&requirer.app].charm]
        .meta
        .requires;
    let mut found = Vec::new();
    for (p_name, p) in provides {
        if provider.endpoint.as_ref().is_some_and(|e| e != p_name) {
            continue;
        }
        for (r_name, r) in requires {
            if requirer.endpoint.as_ref().is_some_and(|e| e != r_name) || r.interface != p.interface
            {
                continue;
            }
            found.push((
                (provider.app.clone(), p_name.clone()),
                (requirer.app.clone(), r_name.clone()),
            ));
        }
    }
    found
}

fn check_required_endpoints(
    bundle: &Bundle,
    charms: &BTreeMap<String, Charm>,
    wiring: &Wiring,
) -> Result<()> {
    for (app, application) in &bundle.applications {
        let meta = &charms[&application.charm].meta;
        for (endpoint, require) in &meta.requires {
            if require.optional
                || wiring
                    .providers
                    .contains_key(&(app.clone(), endpoint.clone()))
            {
                continue;
            }
            let offers: Vec<String> = bundle
                .applications
                .iter()
                .flat_map(|(other, o)| {
                    charms[&o.charm]
                        .meta
                        .provides
                        .iter()
                        .filter(|(_, p)| p.interface == require.interface)
                        .map(move |(name, _)| format!("{other}:{name}"))
                })
                .collect();
            let hint = match offers.first() {
                Some(offer) => format!("add `- [{app}:{endpoint}, {offer}]` to relations"),
                None => format!(
                    "add an application whose charm provides interface `{}`",
                    require.interface
                ),
            };
            bail!(
                "{}: relations: application {app} requires `{endpoint}` (interface {}) but nothing is related to it; {hint}",
                bundle.file,
                require.interface
            );
        }
    }
    Ok(())
}

/// What one side offers, for a relation that fits nowhere: `gateway:auth requires interface
/// oidc-gatekeeper`, or every endpoint of a bare application.
fn describe(side: &Endpoint, charm: &Charm) -> String {
    let meta = &charm.meta;
    let provides = meta
        .provides
        .iter()
        .map(|(name, p)| (name, "provides", &p.interface));
    let requires = meta
        .requires
        .iter()
        .map(|(name, r)| (name, "requires", &r.interface));
    let listed: Vec<String> = provides
        .chain(requires)
        .filter(|(name, _, _)| side.endpoint.as_ref().is_none_or(|e| e == *name))
        .map(|(name, verb, interface)| format!("{}:{name} {verb} interface {interface}", side.app))
        .collect();
    if listed.is_empty() {
        format!("{} has no endpoints", side.app)
    } else {
        listed.join(", ")
    }
}

fn join(items: &[&String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
