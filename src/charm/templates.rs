//! The charm template language: tera, plus the few filters that Kubernetes manifests need
//! (`b64encode` for Secret data, `bcrypt` for password hashes, `json` for safe YAML scalars,
//! `sha256` for checksums that roll workloads when their config changes).

use base64::Engine as _;
use sha2::{Digest, Sha256};
use tera::{Kwargs, State, Tera};

/// A tera engine with wharf's filters registered and no HTML escaping (we emit YAML).
pub fn engine() -> Tera {
    let mut tera = Tera::new();
    tera.autoescape_on(Vec::<&str>::new());
    tera.register_filter("b64encode", |value: &str, _: Kwargs, _: &State| {
        base64::engine::general_purpose::STANDARD.encode(value)
    });
    tera.register_filter("sha256", |value: &str, _: Kwargs, _: &State| {
        hex::encode(Sha256::digest(value))
    });
    tera.register_filter(
        "json",
        |value: tera::Value, _: Kwargs, _: &State| -> tera::TeraResult<String> {
            serde_json::to_string(&value).map_err(|e| tera::Error::message(e.to_string()))
        },
    );
    tera.register_filter("bcrypt", bcrypt_filter);
    tera
}

/// Hashes a password for configs such as dex's `staticPasswords`. `salt` is required: a random
/// value made once per install and kept with the model's generated secrets (dex-auth's
/// `password-salt`), so two installs never share a hash, while a re-deploy of the same password
/// with the same salt renders the same hash and writes nothing. bcrypt's 16-byte salt is derived
/// from it and the password.
fn bcrypt_filter(password: &str, kwargs: Kwargs, _: &State) -> tera::TeraResult<String> {
    let context: Option<&str> = kwargs.get("salt")?;
    let context = context.unwrap_or_default();
    if context.is_empty() {
        return Err(tera::Error::message(
            "bcrypt needs a non-empty `salt` argument, random per install: pass a generated \
             secret option, e.g. `bcrypt(salt=config['password-salt'])` with `password-salt` \
             declared `type: secret` and `generate: 16` in the charm's config.yaml",
        ));
    }
    let digest = Sha256::new()
        .chain_update(b"wharf-bcrypt-salt\0")
        .chain_update(context)
        .chain_update(b"\0")
        .chain_update(password)
        .finalize();
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&digest[..16]);
    bcrypt::hash_with_salt(password, 10, salt)
        .map(|hash| hash.format_for_version(bcrypt::Version::TwoY))
        .map_err(|e| tera::Error::message(format!("bcrypt: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str) -> String {
        let mut tera = engine();
        tera.add_raw_template("t", template).unwrap();
        tera.render("t", &tera::Context::new()).unwrap()
    }

    #[test]
    fn filters() {
        assert_eq!(render("{{ 'abc' | b64encode }}"), "YWJj");
        assert_eq!(render("{{ 'a\"b' | json }}"), "\"a\\\"b\"");
        assert_eq!(render("{{ '<x>' }}"), "<x>");
    }

    #[test]
    fn bcrypt_hashes_per_salt_and_verifies() {
        let hash = |salt: &str| {
            render(&format!(
                "{{{{ 'correct horse' | bcrypt(salt='{salt}') }}}}"
            ))
        };
        let one = hash("x2Jf8Qk1bZ0pLm3N");
        assert_eq!(
            one,
            hash("x2Jf8Qk1bZ0pLm3N"),
            "same salt: same hash (no churn)"
        );
        assert_ne!(
            one,
            hash("Tq7Rz9Wc4Vn2Yh6K"),
            "another install's salt: another hash"
        );
        assert!(one.starts_with("$2y$10$"), "{one}");
        assert!(bcrypt::verify("correct horse", &one).unwrap());
        assert!(bcrypt::verify("correct horse", &hash("Tq7Rz9Wc4Vn2Yh6K")).unwrap());
        assert!(!bcrypt::verify("wrong horse", &one).unwrap());
    }

    #[test]
    fn bcrypt_refuses_a_missing_or_empty_salt() {
        for template in ["{{ 'pw' | bcrypt }}", "{{ 'pw' | bcrypt(salt='') }}"] {
            let mut tera = engine();
            tera.add_raw_template("t", template).unwrap();
            let err = tera.render("t", &tera::Context::new()).unwrap_err();
            let chain = format!("{err:?}");
            assert!(chain.contains("non-empty `salt`"), "{template}: {chain}");
        }
    }
}
