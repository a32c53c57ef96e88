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

/// Hashes a password for configs such as dex's `staticPasswords`. The salt is derived from the
/// password and the `salt` argument (the template passes the application's identity), so that the
/// same input renders the same output: an unchanged deploy must write nothing.
fn bcrypt_filter(password: &str, kwargs: Kwargs, _: &State) -> tera::TeraResult<String> {
    let context: Option<&str> = kwargs.get("salt")?;
    let digest = Sha256::new()
        .chain_update(b"wharf-bcrypt-salt\0")
        .chain_update(context.unwrap_or_default())
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
    fn bcrypt_is_deterministic_and_verifies() {
        let one = render("{{ 'correct horse' | bcrypt(salt='wharf/dex-auth') }}");
        assert_eq!(
            one,
            render("{{ 'correct horse' | bcrypt(salt='wharf/dex-auth') }}")
        );
        assert!(one.starts_with("$2y$10$"));
        assert!(bcrypt::verify("correct horse", &one).unwrap());
        assert_ne!(
            one,
            render("{{ 'correct horse' | bcrypt(salt='other/dex-auth') }}")
        );
    }
}
