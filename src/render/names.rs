//! Kubernetes naming rules and scopes that rendering relies on.

/// Kinds that live outside any namespace. Custom resources take their scope from their CRD.
pub const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "APIService",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "PersistentVolume",
    "PriorityClass",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
];

/// An RFC 1123 label: what application names, namespaces and most object names must be.
pub fn check_dns_label(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid Kubernetes name: use at most 63 lower-case letters, digits and '-', \
             starting and ending with a letter or digit"
        ))
    }
}

/// An RFC 1123 subdomain: what names of most objects must be (dots allowed, up to 253).
pub fn check_dns_subdomain(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| check_dns_label(part).is_ok());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid Kubernetes object name: lower-case letters, digits, '-' and '.', at most 253"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert!(check_dns_label("dex-auth").is_ok());
        for bad in ["", "Dex", "dex_auth", "-a", "a-", &"a".repeat(64)] {
            assert!(check_dns_label(bad).is_err(), "{bad}");
        }
        assert!(check_dns_subdomain("trainjobs.wharf.dev").is_ok());
        assert!(check_dns_subdomain("a..b").is_err());
    }
}
