//! What a bundle needs from its host, as stated in the bundle file's `requirements:` block.
//!
//! ```yaml
//! requirements:
//!   cpu: 2
//!   memory: 4Gi      # total; available memory warns below half of it
//!   disk: 20Gi       # free where MicroK8s keeps its data
//! ```
//! The thresholds live in the bundle, never in code, so `lite` can ask for less than `full`.

use anyhow::Context;
use serde::Deserialize;

use super::quantity::Bytes;

/// The host a bundle needs. Deserializes from the bundle's `requirements:` block; every error
/// names the field (`requirements.memory`) and shows a valid example.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawRequirements")]
pub struct Requirements {
    /// Logical CPUs.
    pub cpu: u32,
    /// Total memory.
    pub memory: Bytes,
    /// Free disk where MicroK8s keeps its data (`/var/snap/microk8s/common`).
    pub disk: Bytes,
}

impl Requirements {
    /// Available memory below this warns: half the total the bundle needs.
    pub fn memory_available_warn(&self) -> Bytes {
        Bytes(self.memory.0 / 2)
    }
}

/// A number or a string: YAML gives `4096` and `4Gi` different types, both are fine.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequirements {
    cpu: Scalar,
    memory: Scalar,
    disk: Scalar,
}

impl TryFrom<RawRequirements> for Requirements {
    type Error = String;

    fn try_from(raw: RawRequirements) -> Result<Self, String> {
        let cpu = match raw.cpu {
            Scalar::Int(n) if n >= 1 && n <= u32::MAX as u64 => n as u32,
            Scalar::Int(n) => {
                return Err(format!(
                    "requirements.cpu: {n} is not a CPU count; write a whole number of CPUs such as `cpu: 2`"
                ));
            }
            Scalar::Text(t) => {
                return Err(format!(
                    "requirements.cpu: `{t}` is not a CPU count; write a whole number of CPUs such as `cpu: 2`"
                ));
            }
        };
        let bytes = |field: &str, value: Scalar| match value {
            Scalar::Int(n) => Ok(Bytes(n)),
            Scalar::Text(t) => Bytes::parse(&t).map_err(|e| format!("requirements.{field}: {e}")),
        };
        Ok(Requirements {
            cpu,
            memory: bytes("memory", raw.memory)?,
            disk: bytes("disk", raw.disk)?,
        })
    }
}

/// The `requirements:` block of a bundle (`lite`, `full` or a path), checked field by field.
pub fn load_requirements(bundle: &str) -> anyhow::Result<Requirements> {
    let bundle = crate::bundle::Bundle::load(bundle, &[], &[])?;
    let block = bundle.requirements.clone().with_context(|| {
        format!(
            "{}: no `requirements:` block; add one, e.g.\nrequirements:\n  cpu: 2\n  memory: 6Gi\n  disk: 30Gi",
            bundle.file
        )
    })?;
    serde_json::from_value(block).map_err(|e| anyhow::anyhow!("{}: {e}", bundle.file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Requirements, String> {
        serde_saphyr::from_str::<Requirements>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_quantities_and_counts() {
        let r = parse("cpu: 2\nmemory: 6Gi\ndisk: 30Gi\n").unwrap();
        assert_eq!(
            r,
            Requirements {
                cpu: 2,
                memory: Bytes(6 << 30),
                disk: Bytes(30 << 30)
            }
        );
        assert_eq!(r.memory_available_warn(), Bytes(3 << 30));
        let r = parse("cpu: 4\nmemory: 15032385536\ndisk: 60G\n").unwrap();
        assert_eq!(r.memory, Bytes(14 << 30));
        assert_eq!(r.disk, Bytes(60_000_000_000));
    }

    #[test]
    fn bad_requirements_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("cpu: 2\nmemory: 4GB\ndisk: 20Gi\n", "requirements.memory"),
            ("cpu: 2\nmemory: 4Gi\ndisk: lots\n", "requirements.disk"),
            ("cpu: two\nmemory: 4Gi\ndisk: 20Gi\n", "requirements.cpu"),
            ("cpu: 0\nmemory: 4Gi\ndisk: 20Gi\n", "requirements.cpu"),
            ("cpu: 2\nmemory: 4Gi\ndisk: 20Gi\ngpu: 1\n", "gpu"),
            ("cpu: 2\nmemory: 4Gi\n", "disk"),
        ];
        for (yaml, needle) in cases {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(needle), "{yaml:?} gave {err}");
        }
    }

    #[test]
    fn loads_requirements_from_a_bundle_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.yaml");
        std::fs::write(
            &path,
            "bundle: kubernetes\nname: mine\nrequirements:\n  cpu: 1\n  memory: 2Gi\n  disk: 10Gi\napplications:\n  a: {charm: a}\n",
        )
        .unwrap();
        let r = load_requirements(path.to_str().unwrap()).unwrap();
        assert_eq!(r.cpu, 1);

        std::fs::write(
            &path,
            "bundle: kubernetes\nname: mine\napplications:\n  a: {charm: a}\n",
        )
        .unwrap();
        let err = format!(
            "{:#}",
            load_requirements(path.to_str().unwrap()).unwrap_err()
        );
        assert!(err.contains("no `requirements:` block"), "{err}");

        let err = format!(
            "{:#}",
            load_requirements("/nonexistent/b.yaml").unwrap_err()
        );
        assert!(err.contains("no bundle `/nonexistent/b.yaml`"), "{err}");
    }
}
