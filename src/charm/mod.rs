//! Charms: metadata.yaml, config.yaml, templates/.
