//! The backup format (docs/backup-format.md): where each file is, and the two documents that
//! describe a backup. `backup.json` is plaintext and written last, so a backup without it is
//! incomplete; `manifest.age` is encrypted and lists every item with its size and sha256.
//!
//! Format 1 is the first; format 2 adds the `volume` item kind (a charm's data volume), which a
//! format-1 reader could not parse. A later wharf reads every earlier format (the test
//! `restore_backup_made_by_previous_format_version` restores a committed format-1 backup).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The format this wharf writes.
pub const FORMAT: u32 = 2;
/// The oldest format this wharf reads.
pub const OLDEST_READABLE: u32 = 1;

pub const INFO_FILE: &str = "backup.json";
pub const MANIFEST_FILE: &str = "manifest.age";

/// The file of item `id` inside a backup.
pub fn item_file(id: u32) -> String {
    format!("items/{id:06}.age")
}

/// How the backup's identity is sealed: with a passphrase (age scrypt) or to an age key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sealing {
    Passphrase,
    KeyFile,
}

/// `backup.json`: what a listing shows without any key. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    pub format: u32,
    pub name: String,
    /// RFC 3339.
    pub created: String,
    pub model: String,
    pub wharf_version: String,
    /// Why it was made: "manual", "before upgrade", "scheduled".
    #[serde(default)]
    pub reason: String,
    /// Whether data is in it: MinIO's buckets, the charms' data volumes.
    pub data: bool,
    pub items: u64,
    /// Plaintext bytes of every item.
    pub bytes: u64,
    /// How long it took, in seconds.
    pub seconds: f64,
    pub sealing: Sealing,
    /// The backup's X25519 identity (`AGE-SECRET-KEY-1…`) as an age file sealed with the
    /// passphrase or to the key file, base64.
    pub identity: String,
    /// The X25519 recipient (public key) every item is encrypted to.
    pub recipient: String,
    /// sha256 of `manifest.age` as stored (hex).
    pub manifest_sha256: String,
}

/// What an item is, and what restore does with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ItemKind {
    /// One object of wharf's state in the model namespace: a release record, `wharf-inputs`,
    /// `wharf-generated` (Secrets) or `wharf-platform` (ConfigMap), as JSON.
    State,
    /// The custom resources of one wharf kind (group `wharf.dev` or `*.wharf.dev`) in every
    /// namespace, as a JSON array, without status, identity and operator-owned objects.
    CustomResources,
    /// A CustomResourceDefinition of Dex's (`*.dex.coreos.com`), for a cluster Dex never ran on.
    DexDefinition,
    /// Dex's objects of one kind in the model namespace, as a JSON array.
    Dex,
    /// One object of a MinIO bucket: its content, with its content type and user metadata.
    S3Object {
        bucket: String,
        key: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        attributes: BTreeMap<String, String>,
    },
    /// The files of a data volume a charm declares (`data:` in its metadata.yaml), as the tar
    /// stream `wharf backup agent stream` writes: entries sorted, with modes, owners and mtimes.
    Volume {
        app: String,
        claim: String,
        /// The application was scaled to zero while it was read (and is while it is restored).
        #[serde(default, rename = "scaleDown")]
        scale_down: bool,
    },
}

impl ItemKind {
    pub fn label(&self) -> &'static str {
        match self {
            ItemKind::State => "state",
            ItemKind::CustomResources => "custom resources",
            ItemKind::DexDefinition => "Dex definition",
            ItemKind::Dex => "Dex",
            ItemKind::S3Object { .. } => "data",
            ItemKind::Volume { .. } => "volume",
        }
    }
}

/// One item: its file is `items/<id>.age`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: u32,
    /// What it is, for people: `Secret/wharf.release.web.v3`, `s3://wharf/data/x.csv`.
    pub name: String,
    #[serde(flatten)]
    pub kind: ItemKind,
    /// Plaintext size and sha256 (hex).
    pub size: u64,
    pub sha256: String,
}

impl Item {
    pub fn file(&self) -> String {
        item_file(self.id)
    }
}

/// `manifest.age`, decrypted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub items: Vec<Item>,
    /// Applications and their latest deployed revision at backup time.
    #[serde(default)]
    pub applications: BTreeMap<String, u32>,
}

impl Manifest {
    pub fn of_kind<'a>(&'a self, label: &'a str) -> impl Iterator<Item = &'a Item> + 'a {
        self.items.iter().filter(move |i| i.kind.label() == label)
    }
}

/// A backup's default name: `wharf-<model>-<UTC time>` (sortable).
pub fn default_name(model: &str) -> String {
    let now = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S");
    format!("{model}-{now}")
}

/// A name is one path segment: letters, digits, `.`, `_`, `-`.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        anyhow::bail!(
            "`{name}` is not a backup name: use letters, digits, `.`, `_` and `-` (not first)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_kinds_serialise_flat() {
        let item = Item {
            id: 3,
            name: "s3://wharf/a.csv".into(),
            kind: ItemKind::S3Object {
                bucket: "wharf".into(),
                key: "a.csv".into(),
                attributes: BTreeMap::from([("content-type".into(), "text/csv".into())]),
            },
            size: 4,
            sha256: "ab".into(),
        };
        let v = serde_json::to_value(&item).unwrap();
        assert_eq!(v["kind"], "s3-object");
        assert_eq!(v["bucket"], "wharf");
        let back: Item = serde_json::from_value(v).unwrap();
        assert_eq!(back, item);
        assert_eq!(item.file(), "items/000003.age");
    }

    #[test]
    fn names_are_one_path_segment() {
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("tiny-20250101-120000").unwrap();
    }
}
