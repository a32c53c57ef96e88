//! (bundle, charms, config, relation data) → manifests.
