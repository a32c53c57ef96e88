//! The encryption of a backup, all of it from the `age` crate (no cryptography of our own): a
//! fresh X25519 identity per backup encrypts every item and the manifest (age's STREAM:
//! ChaCha20-Poly1305 in 64 KiB chunks, so a changed byte fails authentication and a truncated
//! item is detected); that identity is sealed once with the user's passphrase (age's scrypt
//! recipient) or to the user's age key file, and only the sealed form is kept in the backup.
//! Neither the passphrase nor a key is ever written to the cluster or the backup in the clear.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;
use anyhow::{Context, anyhow, bail};
use base64::Engine;
use futures::{AsyncBufRead, AsyncWrite};

use super::format::Sealing;

/// What the user opens backups with.
pub enum UserKey {
    Passphrase(SecretString),
    /// An age identity file (`age-keygen -o key.txt`): backups are sealed to its public key.
    KeyFile(PathBuf),
}

impl UserKey {
    pub fn sealing(&self) -> Sealing {
        match self {
            UserKey::Passphrase(_) => Sealing::Passphrase,
            UserKey::KeyFile(_) => Sealing::KeyFile,
        }
    }
}

/// One backup's key pair.
pub struct BackupKey {
    identity: x25519::Identity,
}

impl BackupKey {
    pub fn generate() -> BackupKey {
        BackupKey {
            identity: x25519::Identity::generate(),
        }
    }

    pub fn recipient(&self) -> x25519::Recipient {
        self.identity.to_public()
    }

    pub fn identity(&self) -> &x25519::Identity {
        &self.identity
    }

    /// The identity sealed with the user's key, as base64 of an age file.
    pub fn seal(&self, key: &UserKey) -> anyhow::Result<String> {
        let secret = self.identity.to_string();
        let encryptor = match key {
            UserKey::Passphrase(p) => age::Encryptor::with_user_passphrase(p.clone()),
            UserKey::KeyFile(path) => {
                let recipients = identity_file(path)?
                    .to_recipients()
                    .map_err(|e| anyhow!("key file {}: {e}", path.display()))?;
                age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_ref() as _))
                    .map_err(|e| anyhow!("key file {}: {e}", path.display()))?
            }
        };
        let mut sealed = Vec::new();
        let mut w = encryptor.wrap_output(&mut sealed)?;
        w.write_all(secret.expose_secret().as_bytes())?;
        w.finish()?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
    }

    /// Open a sealed identity. The error says which key the backup wants when it is the other kind,
    /// and that the key is wrong otherwise.
    pub fn open(
        backup: &str,
        sealing: Sealing,
        sealed: &str,
        key: &UserKey,
    ) -> anyhow::Result<BackupKey> {
        match (sealing, key) {
            (Sealing::Passphrase, UserKey::KeyFile(_)) => bail!(
                "backup `{backup}` was sealed with a passphrase, not a key file: give the \
                 passphrase (--passphrase-file, WHARF_BACKUP_PASSPHRASE or the prompt)"
            ),
            (Sealing::KeyFile, UserKey::Passphrase(_)) => {
                bail!("backup `{backup}` was sealed to an age key file: pass --key-file FILE")
            }
            _ => {}
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .with_context(|| format!("backup `{backup}`: backup.json's identity is not base64"))?;
        let decryptor = age::Decryptor::new_buffered(&bytes[..])
            .map_err(|e| anyhow!("backup `{backup}`: its sealed identity is damaged ({e})"))?;
        let wrong = || {
            anyhow!(
                "the {} does not open backup `{backup}` (wrong key); nothing was read or changed",
                match key {
                    UserKey::Passphrase(_) => "passphrase",
                    UserKey::KeyFile(_) => "key file",
                }
            )
        };
        let mut reader = match key {
            UserKey::Passphrase(p) => {
                let identity = age::scrypt::Identity::new(p.clone());
                decryptor
                    .decrypt(std::iter::once(&identity as &dyn age::Identity))
                    .map_err(|_| wrong())?
            }
            UserKey::KeyFile(path) => {
                let identities = identity_file(path)?
                    .into_identities()
                    .map_err(|e| anyhow!("key file {}: {e}", path.display()))?;
                decryptor
                    .decrypt(identities.iter().map(|i| i.as_ref() as _))
                    .map_err(|_| wrong())?
            }
        };
        let mut text = String::new();
        reader.read_to_string(&mut text).map_err(|_| wrong())?;
        let identity: x25519::Identity = text
            .trim()
            .parse()
            .map_err(|_| anyhow!("backup `{backup}`: its sealed identity is not an age key"))?;
        Ok(BackupKey { identity })
    }
}

fn identity_file(path: &Path) -> anyhow::Result<age::IdentityFile<age::NoCallbacks>> {
    age::IdentityFile::from_file(path.display().to_string()).with_context(|| {
        format!(
            "cannot read the age key file {} (make one with `age-keygen -o {}`)",
            path.display(),
            path.display()
        )
    })
}

/// Encrypt to `recipient` into `out`; close the returned writer to finish the file.
pub async fn encrypt<W: AsyncWrite + Unpin>(
    recipient: &x25519::Recipient,
    out: W,
) -> std::io::Result<age::stream::StreamWriter<W>> {
    age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
        .map_err(std::io::Error::other)?
        .wrap_async_output(out)
        .await
}

/// Decrypt what `input` holds with `identity`: a reader of the plaintext, whose reads fail if any
/// byte was changed.
pub async fn decrypt<R: AsyncBufRead + Unpin>(
    identity: &x25519::Identity,
    input: R,
) -> anyhow::Result<age::stream::StreamReader<R>> {
    let decryptor = age::Decryptor::new_async_buffered(input)
        .await
        .map_err(|e| anyhow!("not an age file ({e})"))?;
    decryptor
        .decrypt_async(std::iter::once(identity as &dyn age::Identity))
        .map_err(|e| anyhow!("cannot be decrypted with this backup's key ({e})"))
}

/// Encrypt a small document in memory.
pub fn encrypt_bytes(recipient: &x25519::Recipient, plain: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))?
        .wrap_output(&mut out)?;
    w.write_all(plain)?;
    w.finish()?;
    Ok(out)
}

/// Decrypt a small document in memory.
pub fn decrypt_bytes(identity: &x25519::Identity, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
    let decryptor =
        age::Decryptor::new_buffered(sealed).map_err(|e| anyhow!("not an age file ({e})"))?;
    let mut r = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|e| anyhow!("cannot be decrypted with this backup's key ({e})"))?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .map_err(|e| anyhow!("altered: it fails authentication ({e})"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passphrase(p: &str) -> UserKey {
        UserKey::Passphrase(SecretString::from(p.to_owned()))
    }

    #[test]
    fn a_sealed_identity_opens_with_its_passphrase_only() {
        let key = BackupKey::generate();
        let sealed = key.seal(&passphrase("correct horse")).unwrap();
        let opened = BackupKey::open(
            "b",
            Sealing::Passphrase,
            &sealed,
            &passphrase("correct horse"),
        )
        .unwrap();
        assert_eq!(opened.recipient().to_string(), key.recipient().to_string());
        let err = BackupKey::open("b", Sealing::Passphrase, &sealed, &passphrase("wrong"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("wrong key"), "{err}");
    }

    #[test]
    fn a_changed_byte_fails_authentication() {
        let key = BackupKey::generate();
        let mut sealed = encrypt_bytes(&key.recipient(), b"hello world").unwrap();
        assert_eq!(
            decrypt_bytes(key.identity(), &sealed).unwrap(),
            b"hello world"
        );
        let last = sealed.len() - 3;
        sealed[last] ^= 1;
        assert!(decrypt_bytes(key.identity(), &sealed).is_err());
    }
}
