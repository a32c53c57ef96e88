//! Where the user's key comes from, in this order: `--key-file FILE` (an age identity file),
//! `--passphrase-file FILE`, the environment variable `WHARF_BACKUP_PASSPHRASE`, and on a
//! terminal a prompt (asked twice when a backup is made). Without any of them and without a
//! terminal, the command stops and says how to give one.

use std::io::IsTerminal;
use std::path::PathBuf;

use age::secrecy::SecretString;
use anyhow::{Context, bail};

use super::crypto::UserKey;

pub const PASSPHRASE_ENV: &str = "WHARF_BACKUP_PASSPHRASE";

/// The key flags a backup verb takes.
#[derive(Debug, Clone, Default)]
pub struct KeySource {
    pub key_file: Option<PathBuf>,
    pub passphrase_file: Option<PathBuf>,
}

/// Whether the key is wanted to make a backup (a prompt asks twice) or to open one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Create,
    Open,
}

impl KeySource {
    /// A key from the flags or the environment, without asking anyone.
    pub fn given(&self) -> anyhow::Result<Option<UserKey>> {
        if let Some(path) = &self.key_file {
            return Ok(Some(UserKey::KeyFile(path.clone())));
        }
        if let Some(path) = &self.passphrase_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the passphrase file {}", path.display()))?;
            let line = text.lines().next().unwrap_or_default();
            return Ok(Some(passphrase(line, &format!("{}", path.display()))?));
        }
        if let Ok(text) = std::env::var(PASSPHRASE_ENV) {
            return Ok(Some(passphrase(&text, PASSPHRASE_ENV)?));
        }
        Ok(None)
    }

    /// The key, asking on the terminal if none was given.
    pub fn resolve(&self, purpose: Purpose) -> anyhow::Result<UserKey> {
        if let Some(key) = self.given()? {
            return Ok(key);
        }
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            bail!("{}", missing());
        }
        let mut prompt = dialoguer::Password::new().with_prompt("Backup passphrase");
        if purpose == Purpose::Create {
            prompt = prompt.with_confirmation("Repeat the passphrase", "the two do not match");
        }
        let text = prompt.interact().context("reading the passphrase")?;
        passphrase(&text, "the prompt")
    }
}

/// What to do when no key was given and nobody can be asked.
pub fn missing() -> String {
    format!(
        "no backup key: pass --passphrase-file FILE or --key-file FILE (an age identity file), or \
         set {PASSPHRASE_ENV}, or run on a terminal to be asked"
    )
}

fn passphrase(text: &str, from: &str) -> anyhow::Result<UserKey> {
    if text.is_empty() {
        bail!("the passphrase from {from} is empty");
    }
    Ok(UserKey::Passphrase(SecretString::from(text.to_owned())))
}
