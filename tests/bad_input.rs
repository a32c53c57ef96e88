//! Every broken input `wharf render` can meet (bundles, overlays, `--set`, charms) must fail with a
//! non-zero exit, nothing on stdout (no half-rendered stream), and a message naming the file and the
//! field, so that the user knows where to look without reading wharf's source.
//!
//! One table, one test: each row says what to write into a fresh directory, which arguments to run
//! `wharf render` with from there, and which substrings stderr must contain. Rows that touch
//! `charms/…` get a small valid charm `tiny` first (then edited), read through `WHARF_CHARMS`.

use std::path::Path;
use std::process::Command;

/// A file of a row: written whole, or an edit of the valid `tiny` charm.
enum F {
    Write(&'static str, &'static str),
    /// (path, from, to): replaces text that must be there.
    Replace(&'static str, &'static str, &'static str),
    Append(&'static str, &'static str),
}
use F::*;

struct Case {
    name: &'static str,
    args: &'static [&'static str],
    files: &'static [F],
    stderr: &'static [&'static str],
}

/// A secret value some rows pass; it must never show up in any message.
const SECRET: &str = "s3cr3t-Value-42";

const TINY_META: &str = "\
name: tiny
version: 1.0.0
summary: a charm for tests
images:
  app:
    upstream-source: example.org/tiny:1.0
    arches: [amd64, arm64]
provides:
  tiny:
    interface: tiny
    data:
      port: \"{{ config.port }}\"
";

const TINY_CONFIG: &str = "\
options:
  port: {type: int, default: 80}
  debug: {type: boolean, default: false}
  ratio: {type: float, default: 0.5}
  level: {type: string, default: info, enum: [info, debug]}
  token: {type: secret, default: '', pattern: '[a-z]+'}
";

const TINY_TEMPLATE: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ app.name }}
data:
  port: \"{{ config.port }}\"
  debug: \"{{ config.debug }}\"
";

const TINY_BUNDLE: &str = "\
bundle: kubernetes
name: t
applications:
  tiny: {charm: tiny}
";

const CHARM_FILES: &[(&str, &str)] = &[
    ("charms/tiny/metadata.yaml", TINY_META),
    ("charms/tiny/config.yaml", TINY_CONFIG),
    ("charms/tiny/templates/cm.yaml", TINY_TEMPLATE),
    ("t.yaml", TINY_BUNDLE),
];

const CASES: &[Case] = &[
    // ---- bundles ----
    Case {
        name: "unknown top-level key",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\nfoo: 1\napplications:\n  minio: {charm: minio}\n",
        )],
        stderr: &["b.yaml: foo:", "unknown field `foo`", "prefix it with `_`"],
    },
    Case {
        name: "unknown application key",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  minio: {charm: minio, scael: 2}\n",
        )],
        stderr: &["b.yaml", "applications.minio.scael", "unknown field"],
    },
    Case {
        name: "scale is not a number",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  minio: {charm: minio, scale: many}\n",
        )],
        stderr: &["b.yaml", "applications.minio.scale", "many"],
    },
    Case {
        name: "scale is negative",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  minio: {charm: minio, scale: -1}\n",
        )],
        stderr: &["b.yaml", "applications.minio.scale", "-1"],
    },
    Case {
        name: "application without a charm",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  minio: {scale: 1}\n",
        )],
        stderr: &["b.yaml", "applications.minio.charm", "missing"],
    },
    Case {
        name: "application name is not a Kubernetes name",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  Min_io: {charm: minio}\n",
        )],
        stderr: &[
            "b.yaml",
            "applications.Min_io",
            "not a valid Kubernetes name",
        ],
    },
    Case {
        name: "not a kubernetes bundle",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: machine\nname: t\napplications:\n  minio: {charm: minio}\n",
        )],
        stderr: &["b.yaml", "bundle:", "machine"],
    },
    Case {
        name: "bundle without a name",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\napplications:\n  minio: {charm: minio}\n",
        )],
        stderr: &["b.yaml", "name: missing"],
    },
    Case {
        name: "bundle without applications",
        args: &["b.yaml"],
        files: &[Write("b.yaml", "bundle: kubernetes\nname: t\n")],
        stderr: &["b.yaml", "applications", "none"],
    },
    Case {
        name: "relation naming a missing application",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  minio: {charm: minio}\nrelations:\n  - [minio, minoi]\n",
        )],
        stderr: &["b.yaml", "relations[0]", "`minoi`", "does not have"],
    },
    Case {
        name: "relation with a missing endpoint",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  minio: {charm: minio}\n  gateway: {charm: gateway}\n\
             relations:\n  - [minio:s3, gateway]\n",
        )],
        stderr: &[
            "b.yaml",
            "relations[0]",
            "no endpoint `s3`",
            "object-storage",
        ],
    },
    Case {
        name: "relation with an interface mismatch",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  minio: {charm: minio}\n  gateway: {charm: gateway}\n\
             relations:\n  - [minio:object-storage, gateway:auth]\n",
        )],
        stderr: &[
            "b.yaml",
            "relations[0]",
            "interface object-storage",
            "interface oidc-gatekeeper",
        ],
    },
    Case {
        name: "relation that is not a pair",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  minio: {charm: minio}\nrelations:\n  - [minio]\n",
        )],
        stderr: &["b.yaml", "relations[0]", "pair"],
    },
    Case {
        name: "ambiguous bare-application relation",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  dex-auth: {charm: dex-auth, trust: true}\n  \
             oidc-gatekeeper: {charm: oidc-gatekeeper}\nrelations:\n  - [dex-auth, oidc-gatekeeper]\n",
        )],
        stderr: &[
            "b.yaml",
            "relations[0]",
            "ambiguous",
            "dex-auth:dex-oidc-config",
            "oidc-gatekeeper:oidc-client",
        ],
    },
    Case {
        name: "required endpoint left unrelated",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  dex-auth: {charm: dex-auth, trust: true}\n  \
             oidc-gatekeeper: {charm: oidc-gatekeeper}\n",
        )],
        stderr: &[
            "b.yaml",
            "relations",
            "oidc-gatekeeper requires `dex-oidc-config`",
            "dex-auth:dex-oidc-config",
        ],
    },
    Case {
        name: "trust missing for a charm that needs it",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  dex-auth: {charm: dex-auth}\n",
        )],
        stderr: &["b.yaml", "applications.dex-auth.trust", "trust: true"],
    },
    Case {
        name: "empty file",
        args: &["b.yaml"],
        files: &[Write("b.yaml", "")],
        stderr: &["b.yaml", "empty", "applications"],
    },
    Case {
        name: "only comments",
        args: &["b.yaml"],
        files: &[Write("b.yaml", "# nothing here\n")],
        stderr: &["b.yaml", "empty"],
    },
    Case {
        name: "invalid YAML",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications: [\n",
        )],
        stderr: &["b.yaml", "line 3"],
    },
    Case {
        name: "unknown charm",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  store: {charm: minoi}\n",
        )],
        stderr: &[
            "b.yaml",
            "minoi (application store) (did you mean `minio`?)",
            "wharf has: ",
        ],
    },
    Case {
        name: "no such bundle",
        args: &["nope.yaml"],
        files: &[],
        stderr: &["nope.yaml", "lite"],
    },
    Case {
        name: "unknown option in the bundle",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  minio: {charm: minio, options: {prot: 1}}\n",
        )],
        stderr: &[
            "b.yaml",
            "applications.minio.options.prot",
            "did you mean `port`",
        ],
    },
    Case {
        name: "option of the wrong type in the bundle",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  minio: {charm: minio, options: {port: [1]}}\n",
        )],
        stderr: &["b.yaml", "applications.minio.options.port", "int"],
    },
    Case {
        name: "second document of the bundle",
        args: &["b.yaml"],
        files: &[Write(
            "b.yaml",
            "bundle: kubernetes\nname: t\napplications:\n  minio: {charm: minio}\n---\n\
             applications:\n  minio: {sacle: 2}\n",
        )],
        stderr: &["b.yaml (document 2)", "applications.minio.sacle"],
    },
    Case {
        name: "model is not a Kubernetes name",
        args: &["lite", "-m", "My_Model"],
        files: &[],
        stderr: &["--model", "My_Model"],
    },
    // ---- overlays ----
    Case {
        name: "overlay with an unknown key",
        args: &["lite", "--overlay", "o.yaml"],
        files: &[Write(
            "o.yaml",
            "applications:\n  minio:\n    optoins: {port: 9100}\n",
        )],
        stderr: &["o.yaml", "applications.minio.optoins", "unknown field"],
    },
    Case {
        name: "overlay file missing",
        args: &["lite", "--overlay", "missing.yaml"],
        files: &[],
        stderr: &["missing.yaml", "cannot read the overlay"],
    },
    Case {
        name: "overlay name wharf does not ship",
        args: &["full", "--overlay", "hq"],
        files: &[],
        stderr: &["no overlay `hq`", "shipped overlays (ha)"],
    },
    Case {
        name: "overlay with a bad option value",
        args: &["lite", "--overlay", "o.yaml"],
        files: &[Write(
            "o.yaml",
            "applications:\n  minio:\n    options: {bucket: Not_A_Bucket}\n",
        )],
        stderr: &["o.yaml", "applications.minio.options.bucket", "pattern"],
    },
    Case {
        name: "overlay relation naming a missing application",
        args: &["lite", "--overlay", "o.yaml"],
        files: &[Write("o.yaml", "relations:\n  - [minio, kfp-api]\n")],
        stderr: &["o.yaml", "relations[0]", "`kfp-api`"],
    },
    Case {
        name: "overlay relation with an interface mismatch",
        args: &["lite", "--overlay", "o.yaml"],
        files: &[Write("o.yaml", "relations:\n  - [minio, gateway]\n")],
        stderr: &["o.yaml", "relations[0]", "interface object-storage"],
    },
    Case {
        name: "overlay that is not YAML",
        args: &["lite", "--overlay", "o.yaml"],
        files: &[Write("o.yaml", "applications: {minio: [\n")],
        stderr: &["o.yaml", "line 1"],
    },
    // ---- --set ----
    Case {
        name: "--set without a dot",
        args: &["lite", "--set", "minio=3"],
        files: &[],
        stderr: &["--set minio", "APP.KEY"],
    },
    Case {
        name: "--set without =",
        args: &["lite", "--set", "minio.port"],
        files: &[],
        stderr: &["--set minio.port", "APP.KEY=VALUE"],
    },
    Case {
        name: "--set with an unknown application",
        args: &["lite", "--set", "mnio.port=9100"],
        files: &[],
        stderr: &[
            "--set mnio.port",
            "did you mean `minio`",
            "dex-auth, gateway",
        ],
    },
    Case {
        name: "--set with an unknown option",
        args: &["lite", "--set", "minio.prot=9100"],
        files: &[],
        stderr: &["--set minio.prot", "did you mean `port`", "console-port"],
    },
    Case {
        name: "--set int given abc",
        args: &["lite", "--set", "minio.port=abc"],
        files: &[],
        stderr: &["--set minio.port", "\"abc\"", "int"],
    },
    Case {
        name: "--set int given a fraction",
        args: &["lite", "--set", "minio.port=90.5"],
        files: &[],
        stderr: &["--set minio.port", "90.5", "int"],
    },
    Case {
        name: "--set enum violation",
        args: &["lite", "--set", "gateway.service-type=Ingress"],
        files: &[],
        stderr: &["--set gateway.service-type", "Ingress", "LoadBalancer"],
    },
    Case {
        name: "--set pattern violation",
        args: &["lite", "--set", "minio.bucket=UPPER"],
        files: &[],
        stderr: &["--set minio.bucket", "UPPER", "pattern"],
    },
    Case {
        name: "--set boolean given maybe",
        args: &["t.yaml", "--set", "tiny.debug=maybe"],
        files: &[],
        stderr: &["--set tiny.debug", "maybe", "boolean"],
    },
    Case {
        name: "--set float given fast",
        args: &["t.yaml", "--set", "tiny.ratio=fast"],
        files: &[],
        stderr: &["--set tiny.ratio", "fast", "float"],
    },
    Case {
        name: "--set secret pattern violation does not echo the secret",
        args: &["t.yaml", "--set", "tiny.token=s3cr3t-Value-42"],
        files: &[],
        stderr: &["--set tiny.token", "pattern"],
    },
    // ---- charms ----
    Case {
        name: "unknown option type",
        args: &["t.yaml"],
        files: &[Replace(
            "charms/tiny/config.yaml",
            "type: float",
            "type: decimal",
        )],
        stderr: &["charms/tiny/config.yaml", "options.ratio.type", "decimal"],
    },
    Case {
        name: "default of the wrong type",
        args: &["t.yaml"],
        files: &[Replace(
            "charms/tiny/config.yaml",
            "default: 80",
            "default: eighty",
        )],
        stderr: &["charms/tiny/config.yaml", "options.port.default", "eighty"],
    },
    Case {
        name: "default outside the enum",
        args: &["t.yaml"],
        files: &[Replace(
            "charms/tiny/config.yaml",
            "default: info",
            "default: loud",
        )],
        stderr: &["charms/tiny/config.yaml", "options.level.default", "loud"],
    },
    Case {
        name: "invalid pattern",
        args: &["t.yaml"],
        files: &[Replace("charms/tiny/config.yaml", "'[a-z]+'", "'[a-z'")],
        stderr: &["charms/tiny/config.yaml", "options.token.pattern"],
    },
    Case {
        name: "generate on a non-secret option",
        args: &["t.yaml"],
        files: &[Replace(
            "charms/tiny/config.yaml",
            "{type: int, default: 80}",
            "{type: int, default: 80, generate: 8}",
        )],
        stderr: &["charms/tiny/config.yaml", "options.port.generate"],
    },
    Case {
        name: "template syntax error with its line",
        args: &["t.yaml"],
        files: &[Replace(
            "charms/tiny/templates/cm.yaml",
            "{{ config.debug }}",
            "{{ config.debug }",
        )],
        stderr: &["charms/tiny/templates/cm.yaml:7:"],
    },
    Case {
        name: "template using an undefined value",
        args: &["t.yaml"],
        files: &[Replace(
            "charms/tiny/templates/cm.yaml",
            "config.debug",
            "config.verbose",
        )],
        stderr: &["charms/tiny/templates/cm.yaml:7:", "verbose"],
    },
    Case {
        name: "template that renders invalid YAML",
        args: &["t.yaml"],
        files: &[Append("charms/tiny/templates/cm.yaml", "  broken: [\n")],
        stderr: &["charms/tiny/templates/cm.yaml", "not valid YAML"],
    },
    Case {
        name: "template object without a kind",
        args: &["t.yaml"],
        files: &[Replace(
            "charms/tiny/templates/cm.yaml",
            "kind: ConfigMap\n",
            "",
        )],
        stderr: &["charms/tiny/templates/cm.yaml: document 1", "kind: missing"],
    },
    Case {
        name: "secret value outside a Secret",
        args: &["t.yaml", "--set", "tiny.token=verysecret"],
        files: &[Append(
            "charms/tiny/templates/cm.yaml",
            "  token: \"{{ config.token }}\"\n",
        )],
        stderr: &[
            "charms/tiny/templates/cm.yaml",
            "secret option `token`",
            "ConfigMap",
        ],
    },
    Case {
        name: "two objects with the same name",
        args: &["t.yaml"],
        files: &[Write(
            "charms/tiny/templates/dup.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ app.name }}\n",
        )],
        stderr: &[
            "charms/tiny/templates/dup.yaml",
            "also rendered by",
            "cm.yaml",
        ],
    },
    Case {
        name: "endpoint both provided and required",
        args: &["t.yaml"],
        files: &[Append(
            "charms/tiny/metadata.yaml",
            "requires:\n  tiny: {interface: tiny, optional: true}\n",
        )],
        stderr: &[
            "charms/tiny/metadata.yaml",
            "endpoint `tiny`",
            "provides and requires",
        ],
    },
    Case {
        name: "endpoint declared twice",
        args: &["t.yaml"],
        files: &[Replace(
            "charms/tiny/metadata.yaml",
            "provides:\n",
            "provides:\n  tiny: {interface: other}\n",
        )],
        stderr: &["charms/tiny/metadata.yaml", "provides", "duplicate", "tiny"],
    },
    Case {
        name: "image without a pinned version",
        args: &["t.yaml"],
        files: &[Replace(
            "charms/tiny/metadata.yaml",
            "example.org/tiny:1.0",
            "example.org/tiny",
        )],
        stderr: &[
            "charms/tiny/metadata.yaml",
            "images.app.upstream-source",
            "not pinned",
        ],
    },
    Case {
        name: "image on the latest tag",
        args: &["t.yaml"],
        files: &[Replace(
            "charms/tiny/metadata.yaml",
            "example.org/tiny:1.0",
            "example.org/tiny:latest",
        )],
        stderr: &[
            "charms/tiny/metadata.yaml",
            "images.app.upstream-source",
            "latest",
        ],
    },
    Case {
        name: "image without arm64",
        args: &["t.yaml"],
        files: &[Replace(
            "charms/tiny/metadata.yaml",
            "[amd64, arm64]",
            "[amd64]",
        )],
        stderr: &["charms/tiny/metadata.yaml", "images.app.arches", "arm64"],
    },
    Case {
        name: "metadata name differs from the folder",
        args: &["t.yaml"],
        files: &[Replace(
            "charms/tiny/metadata.yaml",
            "name: tiny",
            "name: tinier",
        )],
        stderr: &[
            "charms/tiny/metadata.yaml",
            "name:",
            "`tinier`",
            "folder `tiny`",
        ],
    },
    Case {
        name: "unknown metadata key",
        args: &["t.yaml"],
        files: &[Replace("charms/tiny/metadata.yaml", "summary:", "sumary:")],
        stderr: &["charms/tiny/metadata.yaml", "sumary", "unknown field"],
    },
    Case {
        name: "charm version is not semver",
        args: &["t.yaml"],
        files: &[Replace(
            "charms/tiny/metadata.yaml",
            "version: 1.0.0",
            "version: '1.0'",
        )],
        stderr: &["charms/tiny/metadata.yaml", "version"],
    },
    Case {
        name: "Kubernetes version the target does not meet",
        args: &["t.yaml"],
        files: &[Append(
            "charms/tiny/metadata.yaml",
            "kube-version: \">=9.0.0\"\n",
        )],
        stderr: &["charms/tiny/metadata.yaml", "kube-version", ">=9.0.0"],
    },
    Case {
        name: "published relation data with a template error",
        args: &["t.yaml"],
        files: &[Replace(
            "charms/tiny/metadata.yaml",
            "{{ config.port }}",
            "{{ config.port",
        )],
        stderr: &["charms/tiny/metadata.yaml", "provides.tiny.data.port"],
    },
];

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Sets a row up in a fresh directory; returns the `WHARF_CHARMS` to use, if the row needs `tiny`.
fn set_up(dir: &Path, case: &Case) -> Option<std::path::PathBuf> {
    let uses_tiny = case.args.first() == Some(&"t.yaml")
        || case.files.iter().any(|f| match f {
            Write(p, _) | Replace(p, _, _) | Append(p, _) => p.starts_with("charms/"),
        });
    if uses_tiny {
        for (path, text) in CHARM_FILES {
            write(dir, path, text);
        }
    }
    for file in case.files {
        match file {
            Write(path, text) => write(dir, path, text),
            Replace(path, from, to) => {
                let old = std::fs::read_to_string(dir.join(path)).unwrap();
                assert!(
                    old.contains(from),
                    "{}: `{from}` is not in {path}",
                    case.name
                );
                write(dir, path, &old.replacen(from, to, 1));
            }
            Append(path, text) => {
                let old = std::fs::read_to_string(dir.join(path)).unwrap();
                write(dir, path, &(old + text));
            }
        }
    }
    uses_tiny.then(|| dir.join("charms"))
}

#[test]
fn every_broken_input_fails_naming_the_file_and_the_field() {
    assert!(CASES.len() >= 25);
    let mut failures = Vec::new();
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let charms = set_up(dir.path(), case);
        let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
        command
            .arg("render")
            .args(case.args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env_remove("WHARF_CHARMS")
            .env("NO_COLOR", "1");
        if let Some(charms) = &charms {
            command.env("WHARF_CHARMS", charms);
        }
        let out = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut problems = Vec::new();
        if out.status.success() {
            problems.push("exited 0".to_string());
        }
        if !stdout.is_empty() {
            problems.push(format!("stdout is not empty ({} bytes)", stdout.len()));
        }
        for wanted in case.stderr {
            if !stderr.contains(wanted) {
                problems.push(format!("stderr lacks `{wanted}`"));
            }
        }
        if stderr.contains(SECRET) || stderr.contains("verysecret") {
            problems.push("stderr echoes a secret value".to_string());
        }
        if stderr.contains("panicked") {
            problems.push("wharf panicked".to_string());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "[{}] wharf render {}: {}\n--- stderr:\n{stderr}",
                case.name,
                case.args.join(" "),
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}
