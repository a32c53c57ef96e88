//! wharf's own container images: which there are (the trainer and the model server, each its
//! static binary that is both operator and workload; the workspaces operator; and wharf itself, which the backup agent's
//! Jobs and the scheduled backup's CronJob run), what they are called, and for which
//! architectures. `build` makes them from the binaries, `oci` and `layer` are the format,
//! `registry` pushes and pulls them over the OCI distribution API, `upstream` lists the images
//! wharf does not build.
//!
//! wharf's images are named under `wharf.local`, a registry that does not exist: they reach a
//! cluster by `wharf images import` (MicroK8s' containerd) or `wharf images push` (a registry that
//! the nodes mirror `wharf.local` to), never by a pull from the internet. The charms render them
//! with `imagePullPolicy: IfNotPresent`.

pub mod build;
pub mod elf;
pub mod layer;
pub mod oci;
pub mod registry;
pub mod upstream;

use std::fmt;
use std::str::FromStr;

/// The registry name wharf's own images carry.
pub const REGISTRY: &str = "wharf.local";
/// The images' tag: this wharf's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// An architecture wharf ships for, by its OCI/Go name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target its static binaries are built for.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-unknown-linux-musl",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
        }
    }

    /// `e_machine` of its ELF files.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::Amd64 => 62,
            Arch::Arm64 => 183,
        }
    }

    /// The architecture of the machine wharf runs on, if wharf ships for it.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::Amd64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Arch, String> {
        match s {
            "amd64" | "x86_64" => Ok(Arch::Amd64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            _ => Err(format!("`{s}`: wharf ships amd64 and arm64")),
        }
    }
}

/// One of wharf's own images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    Trainer,
    Server,
    Workspaces,
    Wharf,
}

impl Workload {
    pub const ALL: [Workload; 4] = [
        Workload::Server,
        Workload::Trainer,
        Workload::Workspaces,
        Workload::Wharf,
    ];

    /// The image's and the binary's name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Trainer => "wharf-trainer",
            Workload::Server => "wharf-server",
            Workload::Workspaces => "wharf-workspaces",
            Workload::Wharf => "wharf",
        }
    }

    /// The charm that runs it (wharf's own image also runs the backup Jobs wharf makes).
    pub fn charm(self) -> Option<&'static str> {
        match self {
            Workload::Trainer => Some("trainer"),
            Workload::Server => Some("server"),
            Workload::Workspaces => Some("workspaces"),
            Workload::Wharf => Some("dashboard"),
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Workload::Trainer => "TrainJob operator and Fashion-MNIST trainer",
            Workload::Server => {
                "InferenceService operator and model server (Open Inference Protocol V2, TF Serving REST)"
            }
            Workload::Workspaces => "Profile operator (a namespace per user)",
            Workload::Wharf => {
                "wharf: the dashboard charm, the backup agent's Jobs and the scheduled backups' CronJob"
            }
        }
    }

    /// `wharf.local/wharf-server:0.1.0`: what the charms render and the cluster runs.
    pub fn reference(self) -> String {
        format!("{REGISTRY}/{}:{VERSION}", self.name())
    }

    /// The repository within a registry, without the registry (`wharf-server`).
    pub fn repository(self) -> &'static str {
        self.name()
    }

    /// Whether the image carries Fashion-MNIST (the trainer's `dataset-path`).
    pub fn has_dataset(self) -> bool {
        self == Workload::Trainer
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Workload, String> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
                format!("`{s}`: wharf's images are {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The charms render the references wharf builds and imports: the two must never drift (a new
    /// version bumps both, or pods would wait for an image nothing provides).
    #[test]
    fn the_charms_run_the_images_wharf_builds() {
        for workload in Workload::ALL {
            let Some(charm) = workload.charm() else {
                continue;
            };
            let path = format!(
                "{}/charms/{charm}/metadata.yaml",
                env!("CARGO_MANIFEST_DIR"),
            );
            let text = std::fs::read_to_string(&path).unwrap();
            let meta: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
            let images = meta["images"].as_object().unwrap();
            let sources: Vec<&str> = images
                .values()
                .map(|i| i["upstream-source"].as_str().unwrap())
                .collect();
            assert_eq!(sources, vec![workload.reference().as_str()], "{path}");
        }
    }

    #[test]
    fn images_parse_by_name_and_a_wrong_one_lists_them() {
        for w in Workload::ALL {
            assert_eq!(w.name().parse::<Workload>(), Ok(w));
        }
        assert_eq!(
            Workload::Wharf.reference(),
            format!("wharf.local/wharf:{VERSION}")
        );
        let err = "wharf-agent".parse::<Workload>().unwrap_err();
        assert!(
            err.contains("wharf-server, wharf-trainer, wharf-workspaces, wharf"),
            "{err}"
        );
    }

    #[test]
    fn arches_parse_by_either_name() {
        assert_eq!("aarch64".parse::<Arch>(), Ok(Arch::Arm64));
        assert_eq!("amd64".parse::<Arch>(), Ok(Arch::Amd64));
        assert!(
            "armv7l"
                .parse::<Arch>()
                .unwrap_err()
                .contains("amd64 and arm64")
        );
    }
}
