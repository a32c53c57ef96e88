//! Turning kube-rs errors into the one line a user can act on: what failed, why, and what to do.

use kube::Error;

/// The HTTP status of an API error, if the server answered with one.
pub fn status_code(err: &Error) -> Option<u16> {
    match err {
        Error::Api(status) => Some(status.code),
        _ => None,
    }
}

pub fn is_not_found(err: &Error) -> bool {
    status_code(err) == Some(404)
}

pub fn is_conflict(err: &Error) -> bool {
    status_code(err) == Some(409)
}

/// True when the request never got an HTTP answer (refused, timed out, DNS, TLS).
pub fn is_unreachable(err: &Error) -> bool {
    matches!(err, Error::HyperError(_) | Error::Service(_))
}

/// Squash a possibly multi-line cause into one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The innermost cause of an error, which for connection failures is the useful part
/// ("Connection refused" rather than "client error (Connect)").
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    one_line(&cur.to_string())
}

/// Describe a failed request about `what` (e.g. "apply Deployment wharf/dex") against `server`,
/// with the fix for the errors users meet: unreachable cluster, 401, 403.
pub fn describe(err: &Error, what: &str, server: &str) -> String {
    match err {
        Error::Api(status) => match status.code {
            401 => format!(
                "{what}: the cluster at {server} rejected the credentials (401 Unauthorized); \
                 refresh the token in your kubeconfig (on MicroK8s: `microk8s config`)"
            ),
            403 => format!(
                "{what}: forbidden (403): {}; use a kubeconfig whose user may do this \
                 (on MicroK8s: `microk8s config` gives the admin one)",
                one_line(&status.message)
            ),
            code => format!(
                "{what}: {} ({code} {})",
                one_line(&status.message),
                status.reason
            ),
        },
        e if is_unreachable(e) => format!(
            "{what}: the cluster at {server} does not answer ({}); is it running? \
             (`microk8s status --wait-ready`) — or pass --kubeconfig/--context for another one",
            root_cause(e)
        ),
        e => format!("{what}: {}", root_cause(e)),
    }
}

/// The field managers and fields named in a server-side apply conflict message, in either of
/// the apiserver's forms:
/// `Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas`, or
/// `Apply failed with 2 conflicts: conflicts with "m" using apps/v1:\n- .spec.a\n- .spec.b`.
pub fn conflict_parts(message: &str) -> (Vec<String>, Vec<String>) {
    let mut managers = Vec::new();
    let mut fields = Vec::new();
    let mut rest = message;
    while let Some(at) = rest.find("with \"") {
        let after = &rest[at + "with \"".len()..];
        let Some(end) = after.find('"') else { break };
        let manager = after[..end].to_owned();
        if !managers.contains(&manager) {
            managers.push(manager);
        }
        let after = &after[end + 1..];
        // The fields follow "using GROUP/VERSION:" up to the next manager.
        let section_end = after.find("with \"").unwrap_or(after.len());
        let section = &after[..section_end];
        if let Some((_, list)) = section.split_once(':') {
            for f in list
                .split(['\n', ' '])
                .map(|f| f.trim_start_matches('-').trim())
            {
                if f.starts_with('.') {
                    fields.push(f.to_owned());
                }
            }
        }
        rest = after;
    }
    (managers, fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str, message: &str) -> Error {
        Error::Api(Box::new(Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..Status::default()
        }))
    }

    #[test]
    fn auth_errors_say_what_to_do() {
        let e = describe(
            &api(401, "Unauthorized", "Unauthorized"),
            "list nodes",
            "https://k:16443",
        );
        assert!(
            e.contains("401") && e.contains("microk8s config") && !e.contains('\n'),
            "{e}"
        );
        let e = describe(
            &api(403, "Forbidden", "cannot list\nsecrets"),
            "list secrets",
            "s",
        );
        assert!(e.contains("forbidden (403): cannot list secrets"), "{e}");
    }

    #[test]
    fn finds_the_conflicting_managers_and_fields() {
        let one = "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas";
        assert_eq!(
            conflict_parts(one),
            (
                vec!["kubectl-edit".to_string()],
                vec![".spec.replicas".to_string()]
            )
        );
        let many = "Apply failed with 3 conflicts: conflicts with \"a\" using apps/v1:\n- .spec.x\n- .spec.y\nconflicts with \"b\" using v1:\n- .data.z";
        let (managers, fields) = conflict_parts(many);
        assert_eq!(managers, ["a", "b"]);
        assert_eq!(fields, [".spec.x", ".spec.y", ".data.z"]);
        assert_eq!(conflict_parts("no managers here"), (vec![], vec![]));
    }
}
