//! Where charms and bundles are read from: the copies compiled into the binary (so that one static
//! binary carries the whole platform), or a directory on disk (`--charms-dir`, for charm authors
//! and tests). Paths are always shown relative, as `charms/<name>/<file>`, so errors read the same.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Files compiled in by `build.rs`: (`charms/…` or `bundles/…` path, contents).
const EMBEDDED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

#[derive(Debug, Clone)]
pub enum Source {
    Embedded,
    /// A directory that holds one folder per charm.
    Dir(PathBuf),
}

impl Source {
    pub fn new(charms_dir: Option<&Path>) -> Self {
        charms_dir.map_or(Source::Embedded, |dir| Source::Dir(dir.to_path_buf()))
    }

    /// Names of the charms this source holds, sorted.
    pub fn charm_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = match self {
            Source::Embedded => EMBEDDED
                .iter()
                .filter_map(|(path, _)| {
                    path.strip_prefix("charms/")?.strip_suffix("/metadata.yaml")
                })
                .map(str::to_string)
                .collect(),
            Source::Dir(dir) => std::fs::read_dir(dir)
                .with_context(|| format!("cannot read the charms directory {}", dir.display()))?
                .filter_map(|entry| entry.ok())
                .filter(|entry| entry.path().join("metadata.yaml").is_file())
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect(),
        };
        names.sort();
        Ok(names)
    }

    /// The text of `charms/<charm>/<file>`, or None when the charm has no such file.
    pub fn read(&self, charm: &str, file: &str) -> Result<Option<String>> {
        match self {
            Source::Embedded => {
                let wanted = format!("charms/{charm}/{file}");
                Ok(EMBEDDED
                    .iter()
                    .find(|(path, _)| *path == wanted)
                    .map(|(_, text)| text.to_string()))
            }
            Source::Dir(dir) => {
                let path = dir.join(charm).join(file);
                match std::fs::read_to_string(&path) {
                    Ok(text) => Ok(Some(text)),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
                }
            }
        }
    }

    /// Template file names of a charm (`templates/*.yaml`), sorted: they render in this order.
    pub fn templates(&self, charm: &str) -> Result<Vec<String>> {
        let mut names: Vec<String> = match self {
            Source::Embedded => {
                let prefix = format!("charms/{charm}/templates/");
                EMBEDDED
                    .iter()
                    .filter_map(|(path, _)| path.strip_prefix(prefix.as_str()))
                    .map(str::to_string)
                    .collect()
            }
            Source::Dir(dir) => match std::fs::read_dir(dir.join(charm).join("templates")) {
                Ok(entries) => entries
                    .filter_map(|entry| entry.ok())
                    .filter_map(|entry| entry.file_name().into_string().ok())
                    .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
                    .collect(),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(err) => {
                    return Err(err).context(format!("cannot read charms/{charm}/templates"));
                }
            },
        };
        names.sort();
        Ok(names)
    }
}

/// The files of `bundles/` that are overlays, not bundles: they only change a bundle
/// (`wharf deploy full --overlay ha`).
pub const SHIPPED_OVERLAYS: &[&str] = &["ha"];

/// A file of `bundles/` by name, as (display path, text).
fn shipped(name: &str) -> Option<(String, String)> {
    let wanted = format!("bundles/{name}.yaml");
    EMBEDDED
        .iter()
        .find(|(path, _)| *path == wanted)
        .map(|(path, text)| (path.to_string(), text.to_string()))
}

/// A bundle shipped with wharf (`lite`, `full`), as (display path, text).
pub fn shipped_bundle(name: &str) -> Option<(String, String)> {
    shipped(name).filter(|_| !SHIPPED_OVERLAYS.contains(&name))
}

/// An overlay shipped with wharf (`ha`), as (display path, text).
pub fn shipped_overlay(name: &str) -> Option<(String, String)> {
    shipped(name).filter(|_| SHIPPED_OVERLAYS.contains(&name))
}

/// Names of the bundles shipped with wharf.
pub fn shipped_bundle_names() -> Vec<&'static str> {
    EMBEDDED
        .iter()
        .filter_map(|(path, _)| path.strip_prefix("bundles/")?.strip_suffix(".yaml"))
        .filter(|name| !SHIPPED_OVERLAYS.contains(name))
        .collect()
}
