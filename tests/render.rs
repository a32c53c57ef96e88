//! `wharf render`, run as the real binary: deterministic output, the standard labels and the model
//! namespace on every object, secrets kept out of stdout, `-o DIR`, option precedence, relation data
//! flowing from provider to requirer, `--output json`, and Charmed Kubeflow bundles refused with one
//! message listing every charm wharf lacks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use serde_json::Value;

const LABELS: &[&str] = &[
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
];

/// Kinds that never carry a namespace (the test's own list, not wharf's).
const CLUSTER_SCOPED: &[&str] = &[
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "Namespace",
    "PersistentVolume",
    "StorageClass",
    "IngressClass",
    "PriorityClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

fn wharf(args: &[&str], dir: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
    command
        .arg("render")
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("WHARF_CHARMS")
        .env("NO_COLOR", "1");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command.output().unwrap()
}

/// stdout of a render that must succeed.
fn render_in(args: &[&str], dir: Option<&Path>) -> String {
    let out = wharf(args, dir);
    assert!(
        out.status.success(),
        "wharf render {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn render(args: &[&str]) -> String {
    render_in(args, None)
}

fn objects(stream: &str) -> Vec<Value> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(stream).unwrap();
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

/// Every string in a value, so that a search does not depend on how YAML quoted it.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(map) => map.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

fn contains(value: &Value, needle: &str) -> bool {
    strings(value).iter().any(|s| s.contains(needle))
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn describe(object: &Value) -> String {
    format!("{} {}", kind(object), object["metadata"]["name"])
}

#[test]
fn render_is_byte_identical_across_runs() {
    let first = render(&["lite"]);
    assert!(!first.is_empty());
    assert_eq!(first, render(&["lite"]));
    let with_options = ["lite", "--set", "minio.bucket=data", "--show-secrets"];
    assert_eq!(render(&with_options), render(&with_options));
}

fn check_labels_and_namespace(model: Option<&str>) {
    let mut args = vec!["lite", "--output", "json"];
    if let Some(model) = model {
        args.extend(["-m", model]);
    }
    let rendered: Value = serde_json::from_str(&render(&args)).unwrap();
    let namespace = model.unwrap_or("wharf");
    assert_eq!(rendered["namespace"], namespace);
    let apps = rendered["apps"].as_array().unwrap();
    let names: Vec<&str> = apps.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "dashboard",
            "dex-auth",
            "gateway",
            "minio",
            "oidc-gatekeeper",
            "server",
            "trainer"
        ],
        "applications in name order"
    );
    let mut cluster_scoped = 0;
    for app in apps {
        let objects = app["objects"].as_array().unwrap();
        assert!(!objects.is_empty(), "{} renders nothing", app["name"]);
        for object in objects {
            let what = format!("{} of {}", describe(object), app["name"]);
            let labels = &object["metadata"]["labels"];
            for label in LABELS {
                assert!(
                    labels[label].as_str().is_some_and(|v| !v.is_empty()),
                    "{what}: no {label}"
                );
            }
            assert_eq!(labels["app.kubernetes.io/managed-by"], "wharf", "{what}");
            assert_eq!(labels["app.kubernetes.io/part-of"], "wharf", "{what}");
            assert_eq!(labels["app.kubernetes.io/instance"], app["name"], "{what}");
            assert_eq!(labels["app.kubernetes.io/name"], app["charm"], "{what}");
            assert_eq!(
                labels["app.kubernetes.io/version"],
                app["charm_version"].as_str().unwrap().replace('+', "_"),
                "{what}"
            );
            if CLUSTER_SCOPED.contains(&kind(object)) {
                cluster_scoped += 1;
                assert!(
                    object["metadata"].get("namespace").is_none(),
                    "{what} is cluster-scoped but has a namespace"
                );
            } else {
                assert_eq!(object["metadata"]["namespace"], namespace, "{what}");
            }
        }
    }
    assert!(
        cluster_scoped > 0,
        "lite has cluster-scoped objects (Dex's ClusterRole)"
    );
}

#[test]
fn every_object_has_the_standard_labels_and_the_model_namespace() {
    check_labels_and_namespace(None);
    check_labels_and_namespace(Some("other"));
    // And nothing in the stream still names the default model's namespace.
    let other = render(&["lite", "-m", "other"]);
    for object in objects(&other) {
        assert_ne!(
            object["metadata"]["namespace"],
            "wharf",
            "{}",
            describe(&object)
        );
    }
}

const PASSWORD: &str = "Correct-Horse-Battery-9";
const MINIO_KEY: &str = "minio-secret-key-0123456789";
const CLIENT_SECRET: &str = "client-secret-abcdefghijkl";

fn secret_args(show: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "lite".to_string(),
        "--set".into(),
        format!("dex-auth.static-password={PASSWORD}"),
        "--set".into(),
        format!("minio.secret-key={MINIO_KEY}"),
        "--set".into(),
        format!("oidc-gatekeeper.client-secret={CLIENT_SECRET}"),
    ]
    .into();
    if show {
        args.push("--show-secrets".into());
    }
    args
}

/// Secret values as they may appear: plain, base64 (a Secret's `data`), or Dex's bcrypt hash.
fn leaks(text: &str) -> Vec<&'static str> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    [PASSWORD, MINIO_KEY, CLIENT_SECRET]
        .into_iter()
        .filter(|secret| text.contains(secret) || text.contains(&b64(secret)))
        .collect()
}

#[test]
fn secret_data_is_redacted_unless_show_secrets() {
    let args = secret_args(false);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stream = render(&args);
    assert_eq!(leaks(&stream), Vec::<&str>::new(), "secrets in the stream");
    assert!(
        !stream.contains("$2y$"),
        "Dex's password hash is Secret data"
    );
    let mut secrets = BTreeSet::new();
    for object in objects(&stream) {
        if kind(&object) != "Secret" {
            continue;
        }
        secrets.insert(object["metadata"]["name"].as_str().unwrap().to_string());
        for field in ["data", "stringData"] {
            if let Some(map) = object[field].as_object() {
                for (key, value) in map {
                    assert_eq!(value, "<redacted>", "{} {field}.{key}", describe(&object));
                }
            }
        }
    }
    for name in [
        "dex-auth-config",
        "minio-credentials",
        "oidc-gatekeeper-secrets",
    ] {
        assert!(secrets.contains(name), "{secrets:?}");
    }

    let mut json_args = args.clone();
    json_args.extend(["--output", "json"]);
    let json = render(&json_args);
    assert_eq!(leaks(&json), Vec::<&str>::new(), "secrets in --output json");
    assert!(!json.contains("$2y$"));
}

#[test]
fn show_secrets_puts_set_secrets_only_inside_secrets() {
    let args = secret_args(true);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let all = objects(&render(&args));
    for secret in [MINIO_KEY, CLIENT_SECRET] {
        let holders: Vec<String> = all
            .iter()
            .filter(|o| contains(o, secret))
            .map(describe)
            .collect();
        assert!(!holders.is_empty(), "--show-secrets shows no {secret}");
        for holder in &holders {
            assert!(holder.starts_with("Secret "), "{secret} is in {holder}");
        }
    }
    // Dex never sees the static password itself, only its bcrypt hash, inside its config Secret.
    for object in &all {
        assert!(!contains(object, PASSWORD), "{}", describe(object));
    }
    let config = all
        .iter()
        .find(|o| kind(o) == "Secret" && o["metadata"]["name"] == "dex-auth-config")
        .expect("dex-auth-config");
    let dex: Value = serde_saphyr::from_str(config["stringData"]["config.yaml"].as_str().unwrap())
        .expect("Dex's config is YAML");
    let hash = dex["staticPasswords"][0]["hash"].as_str().unwrap();
    assert!(
        bcrypt::verify(PASSWORD, hash).unwrap(),
        "the hash is of the password set"
    );
    for object in all.iter().filter(|o| kind(o) != "Secret") {
        assert!(!contains(object, hash), "{}", describe(object));
    }
}

#[test]
fn unset_generated_secrets_show_the_placeholder() {
    let all = objects(&render(&["lite", "--show-secrets"]));
    for (app, key) in [
        ("minio", "secret-key"),
        ("oidc-gatekeeper", "client-secret"),
    ] {
        let placeholder = format!("<generated at deploy: {app}.{key}>");
        let holders: Vec<&Value> = all.iter().filter(|o| contains(o, &placeholder)).collect();
        assert!(!holders.is_empty(), "no `{placeholder}`");
        assert!(holders.iter().all(|o| kind(o) == "Secret"));
    }
    // Redacted, even the placeholder stays out of sight: Secret data is Secret data.
    let redacted = render(&["lite"]);
    assert!(!redacted.contains("<generated at deploy"));
}

#[test]
fn out_dir_writes_one_file_per_application_that_concatenate_to_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("manifests");
    let out = wharf(
        &["lite", "-m", "other", "-o", out_dir.to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "with -o DIR, stdout stays empty");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "dashboard.yaml",
            "dex-auth.yaml",
            "gateway.yaml",
            "minio.yaml",
            "oidc-gatekeeper.yaml",
            "server.yaml",
            "trainer.yaml"
        ]
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for file in &files {
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    }
    let concatenated: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(concatenated, render(&["lite", "-m", "other"]));
    // Each file holds exactly its application's objects.
    for file in &files {
        let app = file.file_stem().unwrap().to_str().unwrap();
        for object in objects(&std::fs::read_to_string(file).unwrap()) {
            assert_eq!(
                object["metadata"]["labels"]["app.kubernetes.io/instance"],
                app,
                "{}",
                describe(&object)
            );
        }
    }
}

/// The bucket minio's objects carry (the bucket Job's BUCKET variable and the like).
fn bucket_values(stream: &str) -> BTreeSet<String> {
    let buckets = [
        "wharf",
        "from-bundle",
        "from-inline",
        "from-overlay",
        "from-set",
    ];
    objects(stream)
        .iter()
        .flat_map(strings)
        .filter(|s| buckets.contains(&s.as_str()))
        .filter(|s| s != "wharf")
        .collect()
}

#[test]
fn options_layer_charm_default_bundle_overlay_set() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    let plain = "bundle: kubernetes\nname: t\napplications:\n  minio: {charm: minio}\n";
    write("plain.yaml", plain);
    write(
        "b.yaml",
        "bundle: kubernetes\nname: t\napplications:\n  minio:\n    charm: minio\n    options: {bucket: from-bundle, region: eu-1}\n",
    );
    write(
        "inline.yaml",
        "bundle: kubernetes\nname: t\napplications:\n  minio:\n    charm: minio\n    options: {bucket: from-bundle}\n\
         ---\napplications:\n  minio:\n    options: {bucket: from-inline}\n",
    );
    write(
        "o.yaml",
        "applications:\n  minio:\n    options: {bucket: from-overlay}\n",
    );
    write(
        "region.yaml",
        "applications:\n  minio:\n    options: {region: eu-2}\n",
    );
    let dir = Some(dir.path());
    let config = |args: &[&str]| -> Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let rendered: Value = serde_json::from_str(&render_in(&args, dir)).unwrap();
        rendered["apps"][0]["config"].clone()
    };
    let cases: &[(&[&str], &str)] = &[
        (&["plain.yaml"], "wharf"),
        (&["b.yaml"], "from-bundle"),
        (&["inline.yaml"], "from-inline"),
        (&["b.yaml", "--overlay", "o.yaml"], "from-overlay"),
        (&["inline.yaml", "--overlay", "o.yaml"], "from-overlay"),
        (
            &[
                "b.yaml",
                "--overlay",
                "o.yaml",
                "--set",
                "minio.bucket=from-set",
            ],
            "from-set",
        ),
        (&["b.yaml", "--set", "minio.bucket=from-set"], "from-set"),
    ];
    for (args, expected) in cases {
        assert_eq!(config(args)["bucket"], *expected, "{args:?}");
        // Observed in the rendered objects, not only in the reported config.
        let seen = bucket_values(&render_in(args, dir));
        if *expected == "wharf" {
            assert!(seen.is_empty(), "{args:?}: {seen:?}");
        } else {
            assert_eq!(seen, BTreeSet::from([expected.to_string()]), "{args:?}");
        }
    }
    // Overlays merge option by option: setting region keeps the bundle's bucket.
    let merged = config(&["b.yaml", "--overlay", "region.yaml"]);
    assert_eq!(merged["bucket"], "from-bundle");
    assert_eq!(merged["region"], "eu-2");
    assert_eq!(config(&["b.yaml"])["region"], "eu-1");
    // An int option set from the command line is an int, as from YAML.
    assert_eq!(
        config(&["b.yaml", "--set", "minio.port=9100"])["port"],
        9100
    );
}

fn app_objects<'a>(rendered: &'a Value, app: &str) -> &'a Vec<Value> {
    rendered["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == app)
        .unwrap_or_else(|| panic!("no {app}"))["objects"]
        .as_array()
        .unwrap()
}

#[test]
fn relation_data_flows_from_the_provider_config_to_the_requirer() {
    let json = |args: &[&str]| -> Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        serde_json::from_str(&render(&args)).unwrap()
    };
    let default = json(&["lite"]);
    let moved = json(&["lite", "--set", "dex-auth.port=5999", "-m", "ml"]);
    let dex_url =
        |port: u32, ns: &str| format!("http://dex-auth.{ns}.svc.cluster.local:{port}/dex");
    // oidc-gatekeeper redeems tokens at Dex's in-cluster URL, published from dex-auth's config.
    let before = app_objects(&default, "oidc-gatekeeper");
    let after = app_objects(&moved, "oidc-gatekeeper");
    assert!(
        before.iter().any(|o| contains(o, &dex_url(5556, "wharf"))),
        "oidc-gatekeeper sees Dex's default port"
    );
    assert!(
        after.iter().any(|o| contains(o, &dex_url(5999, "ml"))),
        "oidc-gatekeeper sees the port set on dex-auth, and the model"
    );
    assert!(!after.iter().any(|o| contains(o, ":5556")));
    // The gateway routes /dex to Dex's Service on the port set on dex-auth.
    let gateway = app_objects(&moved, "gateway");
    assert!(
        gateway
            .iter()
            .any(|o| contains(o, "dex-auth.ml.svc.cluster.local:5999")),
        "the gateway's nginx config follows dex-auth.port"
    );
    // Requirers of a relation: oidc-gatekeeper needs dex-auth; the gateway needs both.
    let needs = |app: &str| -> Value {
        moved["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == app)
            .unwrap()["needs"]
            .clone()
    };
    assert_eq!(needs("oidc-gatekeeper"), serde_json::json!(["dex-auth"]));
    assert_eq!(
        needs("gateway"),
        serde_json::json!(["dex-auth", "oidc-gatekeeper"])
    );
    // oidc-gatekeeper's client id, published on oidc-client, reaches Dex's static client.
    let dex = render(&[
        "lite",
        "--show-secrets",
        "--set",
        "oidc-gatekeeper.client-id=my-portal",
    ]);
    let config = objects(&dex)
        .into_iter()
        .find(|o| o["metadata"]["name"] == "dex-auth-config")
        .unwrap();
    let config: Value =
        serde_saphyr::from_str(config["stringData"]["config.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(config["staticClients"][0]["id"], "my-portal");
}

#[test]
fn json_output_holds_the_same_objects_as_the_yaml_stream() {
    let stream = objects(&render(&["lite"]));
    let rendered: Value = serde_json::from_str(&render(&["lite", "--output", "json"])).unwrap();
    assert_eq!(rendered["bundle_name"], "lite");
    let from_json: Vec<Value> = rendered["apps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["objects"].as_array().unwrap().clone())
        .collect();
    assert_eq!(from_json, stream);
    assert_eq!(render(&["lite", "--output", "yaml"]), render(&["lite"]));
}

/// The charms wharf ships: folders of charms/ with a metadata.yaml.
fn shipped_charms() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("charms");
    std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("metadata.yaml").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Drops every `( … )` so that `mysql-k8s (applications katib-db, kfp-db)` lists as one item.
fn without_parentheses(text: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[test]
fn charmed_kubeflow_bundles_fail_with_one_message_listing_every_missing_charm() {
    let have = shipped_charms();
    assert!(have.contains("dex-auth"), "{have:?}");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ckf-bundles");
    let mut bundles: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    bundles.sort();
    assert_eq!(bundles.len(), 3);
    for bundle in bundles {
        let text = std::fs::read_to_string(&bundle).unwrap();
        let yaml: Value = serde_saphyr::from_str(&text).unwrap();
        let named: BTreeSet<String> = yaml["applications"]
            .as_object()
            .unwrap()
            .values()
            .map(|app| app["charm"].as_str().unwrap().to_string())
            .collect();
        let missing: BTreeSet<String> = named.difference(&have).cloned().collect();
        assert!(missing.len() > 10, "{}", bundle.display());

        let shown = bundle.display().to_string();
        let out = wharf(&[&shown], None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{shown}");
        assert!(out.stdout.is_empty(), "{shown}: stdout not empty");
        assert_eq!(
            stderr.matches("error:").count(),
            1,
            "one message:\n{stderr}"
        );
        assert!(stderr.contains(&shown), "{stderr}");

        let (_, listed) = stderr
            .split_once("that wharf does not have: ")
            .unwrap_or_else(|| panic!("no list of missing charms:\n{stderr}"));
        let listed = listed.lines().next().unwrap();
        let listed: BTreeSet<String> = without_parentheses(listed)
            .split(',')
            .map(|s| s.trim().to_string())
            .collect();
        assert_eq!(listed, missing, "{shown}: the missing charms, each once");
        assert!(
            stderr.contains(&format!("names {} charm(s)", missing.len())),
            "{stderr}"
        );

        let has_line = stderr
            .lines()
            .find_map(|l| l.strip_prefix("wharf has: "))
            .unwrap_or_else(|| panic!("no `wharf has:` line:\n{stderr}"));
        let has: BTreeSet<String> = has_line.split(", ").map(String::from).collect();
        assert_eq!(has, have, "{stderr}");
    }
}

// --- the monitoring charm: its Prometheus configuration, rules and dashboards, checked by promtool

/// promtool (Debian's `prometheus` package brings it), or `None` with WHARF_SKIP_PROMTOOL=1, said
/// loudly here and reported by scripts/test.sh. Missing without the variable is a failure.
fn promtool() -> Option<PathBuf> {
    if std::env::var("WHARF_SKIP_PROMTOOL").as_deref() == Ok("1") {
        eprintln!(
            "SKIPPED: WHARF_SKIP_PROMTOOL=1 (the Prometheus configuration, rules and dashboards were NOT checked with promtool)"
        );
        return None;
    }
    Some(which::which("promtool").unwrap_or_else(|_| {
        panic!(
            "promtool not found: `apt-get install prometheus` (Debian's package brings promtool), \
             or set WHARF_SKIP_PROMTOOL=1 to skip these checks"
        )
    }))
}

fn run_promtool(promtool: &Path, args: &[&str], dir: &Path) -> Output {
    Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn says(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The monitoring application's objects in `wharf render full ARGS --output json`.
fn monitoring(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["full"];
    all.extend_from_slice(args);
    all.extend(["--output", "json"]);
    let rendered: Value = serde_json::from_str(&render(&all)).unwrap();
    app_objects(&rendered, "monitoring").clone()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// Prometheus' files as the pod sees them (the ConfigMap's keys at their mount paths) in `dir`.
fn write_prometheus_files(objects: &[Value], dir: &Path) -> Value {
    let data = &find(objects, "ConfigMap", "monitoring-config").expect("monitoring-config")["data"];
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    for (key, path) in [
        ("prometheus.yml", "prometheus.yml"),
        ("recording.yml", "rules/recording.yml"),
        ("alerts.yml", "rules/alerts.yml"),
    ] {
        std::fs::write(dir.join(path), data[key].as_str().unwrap()).unwrap();
    }
    data.clone()
}

/// The `__meta_kubernetes_*` labels Prometheus' Kubernetes discovery sets for each role (from
/// its documentation's `kubernetes_sd_config` section), as prefixes: a relabelling that reads
/// another role's label would silently match nothing.
fn meta_prefixes(role: &str) -> &'static [&'static str] {
    match role {
        "node" => &["__meta_kubernetes_node_"],
        "pod" => &["__meta_kubernetes_namespace", "__meta_kubernetes_pod_"],
        "endpointslice" => &[
            "__meta_kubernetes_namespace",
            "__meta_kubernetes_endpointslice_",
            "__meta_kubernetes_service_",
            "__meta_kubernetes_pod_",
        ],
        other => panic!("role {other}: not one this charm uses"),
    }
}

/// What promtool cannot check when it is built without Kubernetes discovery (Debian's is: its
/// configuration parser has no `kubernetes_sd_configs`): each block's role, its namespace (the
/// model's), its selectors' role and label syntax, and that every `__meta_kubernetes_*` label the
/// job's relabelling reads is one that role sets.
fn check_kubernetes_sd(config: &Value, namespace: &str) {
    let label_selector = regex::Regex::new(
        r"^[a-z0-9A-Z./-]+(=[a-z0-9A-Z._-]+)?(,[a-z0-9A-Z./-]+(=[a-z0-9A-Z._-]+)?)*$",
    )
    .unwrap();
    for job in config["scrape_configs"].as_array().unwrap() {
        let name = job["job_name"].as_str().unwrap();
        let Some(sds) = job["kubernetes_sd_configs"].as_array() else {
            continue;
        };
        assert_eq!(sds.len(), 1, "{name}: one discovery block");
        let sd = &sds[0];
        let role = sd["role"].as_str().unwrap();
        let keys: BTreeSet<&str> = sd.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(
            keys.is_subset(&BTreeSet::from(["role", "namespaces", "selectors"])),
            "{name}: unexpected keys {keys:?}"
        );
        if role != "node" {
            assert_eq!(
                sd["namespaces"]["names"],
                serde_json::json!([namespace]),
                "{name}: discovery stays in the model namespace (the Role's)"
            );
        }
        for selector in sd["selectors"].as_array().into_iter().flatten() {
            assert_eq!(selector["role"], role, "{name}: a selector of another role");
            let label = selector["label"].as_str().unwrap();
            assert!(
                label_selector.is_match(label),
                "{name}: label selector {label:?}"
            );
        }
        let prefixes = meta_prefixes(role);
        for relabel in job["relabel_configs"].as_array().unwrap() {
            for source in relabel["source_labels"].as_array().into_iter().flatten() {
                let source = source.as_str().unwrap();
                if source.starts_with("__meta_kubernetes_") {
                    assert!(
                        prefixes.iter().any(|p| source.starts_with(p)),
                        "{name}: role {role} does not set {source}"
                    );
                }
            }
        }
    }
}

/// The configuration Prometheus runs, checked by `promtool check config` (syntax-only: the
/// ServiceAccount token it names exists only in the pod). A promtool without Kubernetes
/// discovery (Debian's) gets the same file with each `kubernetes_sd_configs` replaced by a static
/// target — everything else, relabelling included, is still promtool's to judge — and the
/// discovery blocks are checked here instead; the test says so when that happens.
#[test]
fn the_prometheus_configuration_passes_promtool() {
    let objects = monitoring(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = write_prometheus_files(&objects, dir.path());
    let config: Value = serde_saphyr::from_str(data["prometheus.yml"].as_str().unwrap()).unwrap();
    let namespace =
        find(&objects, "ConfigMap", "monitoring-config").unwrap()["metadata"]["namespace"]
            .as_str()
            .unwrap();

    // What the charm promises to scrape, and how it finds the model servers: the label the
    // server operator puts on their pods (charms/server/src/operator/resources.rs, ISVC_LABEL).
    let jobs: BTreeSet<&str> = config["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        jobs,
        BTreeSet::from([
            "prometheus",
            "wharf-operators",
            "model-servers",
            "argo-workflow-controller",
            "kubelet",
            "cadvisor"
        ])
    );
    let servers = config["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "model-servers")
        .unwrap();
    assert!(
        servers.to_string().contains("wharf.dev/inferenceservice")
            && servers
                .to_string()
                .contains("__meta_kubernetes_pod_label_wharf_dev_inferenceservice"),
        "{servers}"
    );
    check_kubernetes_sd(&config, namespace);

    let Some(promtool) = promtool() else { return };
    let out = run_promtool(
        &promtool,
        &["check", "config", "--syntax-only", "prometheus.yml"],
        dir.path(),
    );
    if out.status.success() {
        return;
    }
    let said = says(&out);
    assert!(
        said.contains("field kubernetes_sd_configs not found"),
        "promtool check config:\n{said}"
    );
    eprintln!(
        "NOTE: this promtool is built without Kubernetes discovery (Debian's is): the discovery \
         blocks were checked by this test, the rest of the configuration by promtool"
    );
    let mut substitute = config.clone();
    for job in substitute["scrape_configs"].as_array_mut().unwrap() {
        let job = job.as_object_mut().unwrap();
        if job.remove("kubernetes_sd_configs").is_some() {
            job.insert(
                "static_configs".into(),
                serde_json::json!([{"targets": ["discovered.invalid:80"]}]),
            );
        }
    }
    // JSON is YAML.
    std::fs::write(dir.path().join("substitute.yml"), substitute.to_string()).unwrap();
    let out = run_promtool(
        &promtool,
        &["check", "config", "--syntax-only", "substitute.yml"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "promtool check config:\n{}",
        says(&out)
    );
}

/// Every alert and recording rule passes `promtool check rules`, and `promtool test rules` runs
/// charms/monitoring/tests/rules_test.yml against them: input series → expected values and
/// alerts, with a firing case for each alert (checked here, so a new alert without a test
/// fails). The slow threshold is the charm option's: at 2 s the slow InferenceService of the
/// unit test no longer fires, and promtool says so.
#[test]
fn the_alert_and_recording_rules_pass_promtool_and_their_unit_tests() {
    let unit_tests =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("charms/monitoring/tests/rules_test.yml");
    let tests_text = std::fs::read_to_string(&unit_tests).unwrap();
    let unit: Value = serde_saphyr::from_str(&tests_text).unwrap();
    let fired: BTreeSet<String> = unit["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["exp_alerts"].as_array().is_some_and(|e| !e.is_empty()))
        .map(|a| a["alertname"].as_str().unwrap().to_owned())
        .collect();

    let rules_in = |args: &[&str]| -> (tempfile::TempDir, Value) {
        let dir = tempfile::tempdir().unwrap();
        let data = write_prometheus_files(&monitoring(args), dir.path());
        for file in ["recording.yml", "alerts.yml"] {
            std::fs::copy(dir.path().join("rules").join(file), dir.path().join(file)).unwrap();
        }
        std::fs::copy(&unit_tests, dir.path().join("rules_test.yml")).unwrap();
        (dir, data)
    };
    let (dir, data) = rules_in(&[]);
    let alerts: Value = serde_saphyr::from_str(data["alerts.yml"].as_str().unwrap()).unwrap();
    let defined: BTreeSet<String> = alerts["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect();
    for must in [
        "InferenceServiceDown",
        "InferenceServiceSlow",
        "TrainJobFailing",
    ] {
        assert!(defined.contains(must), "{must} missing: {defined:?}");
    }
    assert_eq!(
        defined, fired,
        "each alert needs a unit test in which it fires"
    );

    let Some(promtool) = promtool() else { return };
    let out = run_promtool(
        &promtool,
        &["check", "rules", "recording.yml", "alerts.yml"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "promtool check rules:\n{}",
        says(&out)
    );
    let out = run_promtool(&promtool, &["test", "rules", "rules_test.yml"], dir.path());
    assert!(out.status.success(), "promtool test rules:\n{}", says(&out));

    let (dir, _) = rules_in(&["--set", "monitoring.slow-p99-seconds=2"]);
    let out = run_promtool(&promtool, &["test", "rules", "rules_test.yml"], dir.path());
    let said = says(&out);
    assert!(
        !out.status.success() && said.contains("InferenceServiceSlow"),
        "a 2 s threshold must not fire for a 0.995 s p99:\n{said}"
    );
}

/// Grafana only with `monitoring.grafana=true`: Prometheus provisioned as its data source at the
/// Service's in-cluster address, the Models and Training dashboards provisioned, each panel's
/// query valid PromQL (promtool checks them as rules), the admin password only in its Secret.
#[test]
fn grafana_is_optional_and_provisions_prometheus_and_the_dashboards() {
    let without = monitoring(&[]);
    assert!(
        without
            .iter()
            .all(|o| !o["metadata"]["name"].as_str().unwrap().contains("grafana")),
        "no Grafana by default"
    );
    let with = monitoring(&["--set", "monitoring.grafana=true", "-m", "ml"]);
    for (kind, name) in [
        ("Deployment", "monitoring-grafana"),
        ("Service", "monitoring-grafana"),
        ("ConfigMap", "monitoring-grafana"),
        ("Secret", "monitoring-grafana-admin"),
    ] {
        assert!(find(&with, kind, name).is_some(), "{kind} {name}");
    }
    let data = &find(&with, "ConfigMap", "monitoring-grafana").unwrap()["data"];
    let sources: Value =
        serde_saphyr::from_str(data["datasources.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(
        sources["datasources"][0]["url"],
        "http://monitoring.ml.svc.cluster.local:9090"
    );
    assert_eq!(sources["datasources"][0]["uid"], "prometheus");
    let deployment = find(&with, "Deployment", "monitoring-grafana")
        .unwrap()
        .to_string();
    assert!(
        deployment.contains("monitoring-grafana-admin"),
        "the password comes from the Secret: {deployment}"
    );

    let mut exprs = Vec::new();
    let mut titles = BTreeSet::new();
    for key in ["models.json", "training.json"] {
        let dashboard: Value = serde_json::from_str(data[key].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        titles.insert(dashboard["title"].as_str().unwrap().to_owned());
        for panel in dashboard["panels"].as_array().unwrap() {
            assert_eq!(panel["datasource"]["uid"], "prometheus", "{key}: {panel}");
            for target in panel["targets"].as_array().unwrap() {
                exprs.push(target["expr"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(titles, BTreeSet::from(["Models".into(), "Training".into()]));
    // The Models dashboard reads what its panels promise: rate, p99, errors, batch size.
    // The Training dashboard reads the trainer operator's TrainJob gauges.
    for metric in [
        "wharf_trainer_trainjobs",
        "wharf_trainer_trainjob_epochs_completed",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(metric)),
            "no panel shows {metric}"
        );
    }
    for rule in [
        "inferenceservice:requests:rate5m",
        "inferenceservice:request_duration_seconds:p99_5m",
        "inferenceservice:errors:rate5m",
        "inferenceservice:batch_size:mean5m",
    ] {
        assert!(exprs.iter().any(|e| e == rule), "no panel shows {rule}");
    }

    let Some(promtool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| serde_json::json!({"record": format!("dashboard:panel:{i}"), "expr": e}))
        .collect();
    let file = serde_json::json!({"groups": [{"name": "dashboards", "rules": rules}]});
    std::fs::write(dir.path().join("panels.yml"), file.to_string()).unwrap();
    let out = run_promtool(&promtool, &["check", "rules", "panels.yml"], dir.path());
    assert!(out.status.success(), "a panel's query:\n{}", says(&out));
}
