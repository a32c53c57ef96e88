//! Backups of a model: what is captured (wharf's state, the custom resources of wharf's kinds,
//! Dex's objects, MinIO's data, the data volumes charms declare), how it is encrypted on the client (age: a fresh X25519 identity
//! per backup, itself sealed with the user's passphrase or key file), how it is laid out where it
//! is kept (a directory or an S3 prefix), and how it is put back. The verbs are
//! `action::backup` and `action::restore`; docs/backup-format.md documents the format.

pub mod agent;
pub mod capture;
pub mod crypto;
pub mod format;
pub mod items;
pub mod key;
pub mod objects;
pub mod repo;
pub mod restore;
pub mod s3;
pub mod schedule;
pub mod volumes;

pub use format::{Info, Item, ItemKind, Manifest};
pub use repo::Repo;
