//! Juju-format bundles, overlays and the relations graph.
