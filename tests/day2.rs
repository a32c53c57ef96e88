//! Day 2 against kube-sim, the real binary: stored options that no later command loses, `config`,
//! `history`, `upgrade` (plan, gates, automatic rollback on failure and on SIGTERM), `rollback`,
//! corrupt records, and a lost lock. Upgrades use the fixture charms at two versions: the test
//! edits its copy of them (`WHARF_CHARMS`) as a newer wharf would ship them.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// Secret values used in these scenarios: distinctive, so a grep for them cannot match by chance.
const FIRST: &str = "Tr0ub4dor-first-7Qx";
const SECOND: &str = "Tr0ub4dor-second-9Kz";

/// Make the copied charm `app` look like a newer release: a version, and optionally an image.
fn bump(env: &Env, app: &str, version: &str, image: Option<&str>) {
    let path = env.charms.join(app).join("metadata.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("version:") {
            out.push_str(&format!("version: {version}\n"));
        } else if let (Some(image), true) =
            (image, line.trim_start().starts_with("upstream-source:"))
        {
            out.push_str(&format!("    upstream-source: {image}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&path, out).unwrap();
}

fn edit(env: &Env, file: &str, from: &str, to: &str) {
    let path = env.charms.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} has no {from:?}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

/// (revision, status, description) of an application's records, from `wharf history -o json`.
async fn history(env: &Env, app: &str) -> Vec<(u64, String, String)> {
    let out = env.wharf(&["history", app, "--output", "json"]).await;
    assert!(out.status.success(), "history: {}", text(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("history -o json is JSON");
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["status"].as_str().unwrap().to_owned(),
                r["description"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn image_of(env: &Env, deployment: &str) -> String {
    let d = env
        .sim
        .get("apps/v1", "Deployment", MODEL, deployment)
        .unwrap_or_else(|| panic!("no Deployment {deployment}"));
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn secret_text(env: &Env, name: &str, key: &str) -> String {
    use base64::Engine;
    let s = env.sim.get("v1", "Secret", MODEL, name).unwrap();
    if let Some(v) = s["stringData"][key].as_str() {
        return v.to_owned();
    }
    let b = s["data"][key].as_str().unwrap_or_default();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap()
}

fn no_pending(env: &Env) {
    for app in ["store", "web"] {
        for (rev, status) in env.records(app) {
            assert!(
                !status.starts_with("pending"),
                "{app} revision {rev} is {status}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_without_set_keeps_stored_login() {
    let env = start(fast()).await;
    let out = env
        .deploy(&[
            "--set",
            &format!("store.password={FIRST}"),
            "--set",
            "web.greeting=bonjour",
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(secret_text(&env, "store-auth", "password"), FIRST);

    let before = env.versions();
    let writes = env.sim.writes();
    let out = env.deploy(&[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        secret_text(&env, "store-auth", "password"),
        FIRST,
        "the login is kept"
    );
    let cm = env.sim.get("v1", "ConfigMap", MODEL, "web-config").unwrap();
    assert_eq!(cm["data"]["greeting"], "bonjour");
    assert_eq!(changed(&before, &env.versions()), Vec::<String>::new());
    assert_eq!(env.sim.writes() - writes, 2, "only the lock");

    // `wharf config` shows where each value comes from, the secret only as set.
    let out = env.wharf(&["config", "store", "--output", "json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = |key: &str| {
        shown["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .unwrap()
            .clone()
    };
    assert_eq!(row("password")["value"], "<set>");
    assert_eq!(row("password")["source"], "user");
    assert_eq!(row("port")["source"], "default");
    assert!(!text(&out.stdout).contains(FIRST));

    // --reset forgets one stored option; the next deploy goes back to the generated password.
    let out = env.deploy(&["--reset", "store.password"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(secret_text(&env, "store-auth", "password"), FIRST);
    let cm = env.sim.get("v1", "ConfigMap", MODEL, "web-config").unwrap();
    assert_eq!(cm["data"]["greeting"], "bonjour", "other options stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_bad_value_changes_nothing() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let writes = env.sim.writes();
    for (args, needle) in [
        (vec!["config", "store", "port=eighty"], "not a valid int"),
        (
            vec!["config", "web", "greting=hi"],
            "did you mean `greeting`",
        ),
        (vec!["config", "web", "greeting"], "expected KEY=VALUE"),
        (vec!["config", "nosuch", "x=1"], "no application `nosuch`"),
    ] {
        let out = env.wharf(&args).await;
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = text(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert_eq!(env.sim.writes(), writes, "a refused config writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_one_option_and_its_related_application() {
    let env = start(fast()).await;
    assert!(
        env.deploy(&["--set", "web.greeting=hello"])
            .await
            .status
            .success()
    );
    let out = env.wharf(&["config", "store", "port=6380"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("store: revision 2") && said.contains("port: 6379 → 6380"),
        "{said}"
    );
    // web receives the store's URL through the relation: it changes too.
    assert!(said.contains("web: revision 2"), "{said}");
    let cm = env.sim.get("v1", "ConfigMap", MODEL, "web-config").unwrap();
    assert_eq!(
        cm["data"]["store-url"],
        format!("http://store.{MODEL}.svc:6380")
    );
    assert_eq!(cm["data"]["greeting"], "hello", "the earlier --set is kept");
    let h = history(&env, "store").await;
    assert_eq!(h.last().unwrap().2, "config: port");
    assert_eq!(
        history(&env, "web").await.last().unwrap().2,
        "config of store: port"
    );
    // The same value again changes nothing.
    let writes = env.sim.writes();
    let out = env.wharf(&["config", "store", "port=6380"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(env.sim.writes(), writes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_public_url_reaches_gatekeeper_gateway_and_dex_issuer() {
    let env = start(fast()).await;
    let login = [
        "deploy",
        "lite",
        "--set",
        "dex-auth.static-password=correct-horse-battery-staple",
        "--public-url",
        "http://192.168.1.240.nip.io",
    ];
    let out = env.command_shipped(&login).output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let url = "http://10.64.140.43.nip.io";
    let out = env
        .command_shipped(&["config", "dex-auth", &format!("public-url={url}")])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    for app in ["dex-auth", "oidc-gatekeeper", "gateway"] {
        assert!(
            said.contains(&format!("{app}: revision")),
            "{app} not changed:\n{said}"
        );
        // The new URL is somewhere in what the application runs with.
        let found = ["Secret", "ConfigMap", "Deployment"].iter().any(|kind| {
            let api = if *kind == "Deployment" {
                "apps/v1"
            } else {
                "v1"
            };
            env.sim.list(api, kind, Some(MODEL)).iter().any(|o| {
                o["metadata"]["labels"]["app.kubernetes.io/instance"] == app
                    && object_text(o).contains(url)
            })
        });
        assert!(found, "{app} does not carry {url}");
    }
    // Dex's issuer follows.
    let dex = env
        .sim
        .list("v1", "Secret", Some(MODEL))
        .into_iter()
        .find(|s| {
            s["metadata"]["labels"]["app.kubernetes.io/instance"] == "dex-auth"
                && object_text(s).contains("issuer")
        })
        .expect("Dex's configuration");
    let config = object_text(&dex);
    assert!(
        config.contains(&format!("issuer: \"{url}/dex\"")),
        "{config}"
    );
    // The login's callback moved with it: Dex redirects to the gatekeeper under the new URL.
    assert!(
        config.contains(&format!("- \"{url}/oauth2/callback\"")),
        "{config}"
    );
    let proxy = env
        .sim
        .get("apps/v1", "Deployment", MODEL, "oidc-gatekeeper")
        .unwrap();
    assert!(
        proxy
            .to_string()
            .contains(&format!("--redirect-url={url}/oauth2/callback")),
        "{proxy}"
    );
    let status = env.status_json().await;
    assert_eq!(app(&status, "dex-auth")["status"], "active", "{status}");
}

/// An object's text with Secret data decoded.
fn object_text(o: &Value) -> String {
    use base64::Engine;
    let mut text = o.to_string();
    if let Some(data) = o["data"].as_object() {
        for v in data.values().filter_map(Value::as_str) {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(v) {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_success_supersedes_previous() {
    let env = start(fast()).await;
    assert!(
        env.deploy(&["--set", "web.greeting=hello"])
            .await
            .status
            .success()
    );
    bump(&env, "web", "2.1.0", Some("example.org/web:2.1"));
    let out = env.wharf(&["upgrade", "--timeout", "60s"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(plan.contains("web: 2.0.0 → 2.1.0"), "{plan}");
    assert!(
        plan.contains("image   example.org/web:2.0 → example.org/web:2.1"),
        "{plan}"
    );
    assert_eq!(image_of(&env, "web"), "example.org/web:2.1");
    let h = history(&env, "web").await;
    assert_eq!(h[0].1, "superseded");
    assert_eq!(
        (h[1].1.as_str(), h[1].2.as_str()),
        ("deployed", "upgrade 2.0.0 → 2.1.0")
    );
    assert_eq!(
        env.records("store"),
        [(1, "deployed".to_string())],
        "store did not change"
    );
    let cm = env.sim.get("v1", "ConfigMap", MODEL, "web-config").unwrap();
    assert_eq!(
        cm["data"]["greeting"], "hello",
        "stored options survive the upgrade"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_wait_failure_rolls_back_config_and_data_intact() {
    let env = start(Config {
        never_ready_image: Some(regex::Regex::new("example.org/web:2.1").unwrap()),
        ..fast()
    })
    .await;
    assert!(
        env.deploy(&[
            "--set",
            "web.greeting=hello",
            "--set",
            &format!("store.password={FIRST}")
        ])
        .await
        .status
        .success()
    );
    let data_uid = env
        .sim
        .get("v1", "PersistentVolumeClaim", MODEL, "store-data")
        .unwrap()["metadata"]["uid"]
        .clone();
    bump(&env, "web", "2.1.0", Some("example.org/web:2.1"));
    let out = env.wharf(&["upgrade", "--timeout", "3s"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("rolled back automatically") && err.contains("web to revision 1"),
        "{err}"
    );
    assert_eq!(image_of(&env, "web"), "example.org/web:2.0");
    let h = history(&env, "web").await;
    let statuses: Vec<&str> = h.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(statuses, ["superseded", "failed", "deployed"], "{h:?}");
    assert_eq!(h[2].2, "rollback to 1 (upgrade failed)");
    no_pending(&env);
    // Config and data intact.
    let cm = env.sim.get("v1", "ConfigMap", MODEL, "web-config").unwrap();
    assert_eq!(cm["data"]["greeting"], "hello");
    assert_eq!(secret_text(&env, "store-auth", "password"), FIRST);
    let pvc = env
        .sim
        .get("v1", "PersistentVolumeClaim", MODEL, "store-data")
        .unwrap();
    assert_eq!(pvc["metadata"]["uid"], data_uid, "the same volume");
    let status = env.status_json().await;
    assert_eq!(app(&status, "web")["status"], "active", "{status}");
    assert!(!err.contains(FIRST));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_failure_with_failing_rollback_reports_both() {
    // Every web image is unready: the first deploy does not wait, so revision 1 counts as
    // deployed; the upgrade fails, and so does going back to revision 1.
    let env = start(Config {
        never_ready_image: Some(regex::Regex::new("example.org/web").unwrap()),
        ..fast()
    })
    .await;
    assert!(env.deploy(&["--no-wait"]).await.status.success());
    bump(&env, "web", "2.1.0", Some("example.org/web:2.1"));
    let out = env.wharf(&["upgrade", "--timeout", "2s"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("the upgrade failed") && err.contains("automatic rollback failed too"),
        "{err}"
    );
    assert!(err.contains("wharf rollback"), "says what to do: {err}");
    no_pending(&env);
    let statuses: Vec<String> = history(&env, "web")
        .await
        .into_iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(statuses.last().unwrap(), "failed", "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_upgrade_leaves_no_pending_record() {
    let env = start(Config {
        readiness_delay: Duration::from_millis(2500),
        ..fast()
    })
    .await;
    assert!(env.deploy(&["--timeout", "60s"]).await.status.success());
    bump(&env, "web", "2.1.0", Some("example.org/web:2.1"));
    let bundle_less = env
        .command(&["upgrade", "--timeout", "60s"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = bundle_less.id().unwrap();
    until(20, "the upgrade's pending record", || {
        env.records("web")
            .iter()
            .any(|(_, s)| s.starts_with("pending"))
    })
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = bundle_less.wait_with_output().await.unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("interrupted by SIGTERM") && err.contains("rolled back"),
        "{err}"
    );
    no_pending(&env);
    let h = history(&env, "web").await;
    let statuses: Vec<&str> = h.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(statuses, ["superseded", "failed", "deployed"], "{h:?}");
    assert_eq!(image_of(&env, "web"), "example.org/web:2.0");
    // The lock was released: the next command runs at once.
    assert!(
        env.sim
            .get("coordination.k8s.io/v1", "Lease", MODEL, "wharf-lock")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_dry_run_writes_nothing() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    bump(&env, "web", "2.1.0", Some("example.org/web:2.1"));
    let writes = env.sim.writes();
    let out = env.wharf(&["upgrade", "--dry-run"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(
        plan.contains("web: 2.0.0 → 2.1.0") && plan.contains("gates: passed"),
        "{plan}"
    );
    assert!(plan.contains("update    Deployment tiny/web"), "{plan}");
    let out = env
        .wharf(&["upgrade", "--dry-run", "--output", "json"])
        .await;
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["applications"][0]["to"], "2.1.0");
    assert_eq!(env.sim.writes(), writes);
    assert_eq!(image_of(&env, "web"), "example.org/web:2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_refused_by_kube_version_gate_writes_nothing() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    bump(&env, "web", "2.1.0", None);
    edit(
        &env,
        "web/metadata.yaml",
        "kube-version: \">=1.29.0\"",
        "kube-version: \">=1.35.0\"",
    );
    let writes = env.sim.writes();
    let out = env.wharf(&["upgrade"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("refused before any change")
            && err.contains("needs Kubernetes >=1.35.0 but the target is 1.33.5")
            && err.contains("wharf upgrade --kubernetes"),
        "{err}"
    );
    assert_eq!(env.sim.writes(), writes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_refused_pvc_growth_without_expansion_writes_nothing() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    bump(&env, "store", "1.1.0", None);
    edit(
        &env,
        "store/templates/10-store.yaml",
        "storage: 1Gi",
        "storage: 3Gi",
    );
    let writes = env.sim.writes();
    let out = env.wharf(&["upgrade"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("PersistentVolumeClaim tiny/store-data")
            && err.contains("1Gi → 3Gi")
            && err.contains("allowVolumeExpansion")
            && err.contains("microk8s-hostpath"),
        "{err}"
    );
    assert_eq!(env.sim.writes(), writes);
    // A shrink is refused too, on any class.
    edit(
        &env,
        "store/templates/10-store.yaml",
        "storage: 3Gi",
        "storage: 512Mi",
    );
    let out = env.wharf(&["upgrade"]).await;
    assert!(
        text(&out.stderr).contains("cannot shrink"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(env.sim.writes(), writes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn major_bump_needs_allow_major() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    bump(&env, "store", "2.0.0", None);
    let writes = env.sim.writes();
    let out = env.wharf(&["upgrade"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("1.0.0 → 2.0.0 is a major version change") && err.contains("--allow-major"),
        "{err}"
    );
    assert_eq!(env.sim.writes(), writes);
    let out = env.wharf(&["upgrade", "--allow-major"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        history(&env, "store").await.last().unwrap().2,
        "upgrade 1.0.0 → 2.0.0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_writes_new_revision_and_restores_secret_values() {
    let env = start(fast()).await;
    assert!(
        env.deploy(&["--set", &format!("store.password={FIRST}")])
            .await
            .status
            .success()
    );
    let file = env.dir.path().join("password");
    std::fs::write(&file, format!("{SECOND}\n")).unwrap();
    let out = env
        .wharf(&[
            "config",
            "store",
            "--from-file",
            &format!("password={}", file.display()),
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(secret_text(&env, "store-auth", "password"), SECOND);

    let out = env.wharf(&["rollback", "store"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("store: revision 3 re-applies revision 1"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(secret_text(&env, "store-auth", "password"), FIRST);
    let h = history(&env, "store").await;
    let got: Vec<(u64, &str, &str)> = h
        .iter()
        .map(|(r, s, d)| (*r, s.as_str(), d.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "superseded", "install"),
            (2, "superseded", "config: password"),
            (3, "deployed", "rollback to 1")
        ]
    );
    // The next deploy keeps the rolled-back value: the stored option went back too.
    assert!(env.deploy(&[]).await.status.success());
    assert_eq!(secret_text(&env, "store-auth", "password"), FIRST);
    // Rolling back to a revision that does not exist says which do.
    let out = env.wharf(&["rollback", "store", "9"]).await;
    assert!(
        text(&out.stderr).contains("no revision 9; the kept ones are 1, 2, 3"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_trim_never_deletes_last_deployed() {
    let env = start(Config {
        never_ready_image: Some(regex::Regex::new("example.org/web:9").unwrap()),
        ..fast()
    })
    .await;
    assert!(env.deploy(&[]).await.status.success());
    for minor in 1..=3 {
        bump(
            &env,
            "web",
            &format!("2.{minor}.0"),
            Some(&format!("example.org/web:9.{minor}")),
        );
        let out = env
            .wharf(&[
                "upgrade",
                "--no-rollback-on-failure",
                "--timeout",
                "1s",
                "--history",
                "2",
            ])
            .await;
        assert!(!out.status.success());
    }
    let kept = env.records("web");
    assert_eq!(
        kept,
        [
            (1, "deployed".to_string()),
            (3, "failed".to_string()),
            (4, "failed".to_string())
        ],
        "the newest two and the deployed one"
    );
    // What runs is what a rollback returns to.
    let out = env.wharf(&["rollback", "web"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(image_of(&env, "web"), "example.org/web:2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_record_does_not_block_history_or_deploy() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    env.sim
        .put(
            serde_json::json!({"apiVersion": "v1", "kind": "Secret", "type": "wharf.dev/release.v2",
            "metadata": {"name": "wharf.release.web.v5", "namespace": MODEL,
                "labels": {"owner": "wharf", "app": "web", "revision": "5", "status": "deployed"}},
            "data": {"release": "bm90IGd6aXA="}}),
        )
        .unwrap();
    let out = env.wharf(&["history", "web"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("unreadable") && table.contains("wharf.release.web.v5"),
        "{table}"
    );
    let out = env.deploy(&["--set", "web.greeting=again"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let h = history(&env, "web").await;
    assert_eq!(
        h.last().unwrap().0,
        6,
        "numbering continues after the unreadable record: {h:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_lock_stops_before_next_write() {
    let env = start(Config {
        readiness_delay: Duration::from_millis(2500),
        ..fast()
    })
    .await;
    let bundle = env.bundle();
    let run = env
        .command(&["deploy", &bundle, "--timeout", "60s"])
        .env("WHARF_LOCK_SECONDS", "3")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While store is waiting to be ready, another run takes the lock over.
    until(20, "store's objects", || {
        env.sim
            .get("apps/v1", "Deployment", MODEL, "store")
            .is_some()
    })
    .await;
    let mut lease = env
        .sim
        .get("coordination.k8s.io/v1", "Lease", MODEL, "wharf-lock")
        .unwrap();
    lease["spec"]["holderIdentity"] = Value::from("mallory@elsewhere pid 7");
    lease["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    env.sim.put(lease).unwrap();
    let out = run.wait_with_output().await.unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("lost the lock") && err.contains("mallory@elsewhere pid 7"),
        "{err}"
    );
    assert!(
        env.sim.get("apps/v1", "Deployment", MODEL, "web").is_none(),
        "nothing was written after the lock was lost"
    );
    let lease = env
        .sim
        .get("coordination.k8s.io/v1", "Lease", MODEL, "wharf-lock")
        .unwrap();
    assert_eq!(
        lease["spec"]["holderIdentity"], "mallory@elsewhere pid 7",
        "not deleted by the loser"
    );
}

/// Every byte wharf printed (stdout, stderr, at the most verbose log level), diffed, planned or
/// stored outside a Secret's data, across the day-2 verbs, is free of the secret values used —
/// and so is the printable part of every release record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_leaves_secrets() {
    let env = start(fast()).await;
    let file = env.dir.path().join("password");
    std::fs::write(&file, SECOND).unwrap();
    let from_file = format!("password={}", file.display());
    let bundle = env.bundle();
    let set_first = format!("store.password={FIRST}");
    let runs: Vec<Vec<&str>> = vec![
        vec!["deploy", &bundle, "--set", &set_first, "-vvv"],
        vec![
            "deploy",
            &bundle,
            "--diff",
            "--set",
            "web.greeting=x",
            "-vvv",
        ],
        vec!["deploy", &bundle, "--dry-run", "--output", "json"],
        vec!["config", "store", "-vvv"],
        vec!["config", "store", "--output", "json"],
        vec!["config", "store", "--from-file", &from_file, "-vvv"],
        vec![
            "config",
            "store",
            "--output",
            "yaml",
            "--from-file",
            &from_file,
        ],
        vec!["history", "--output", "json"],
        vec!["history"],
        vec!["status", "--output", "json"],
        vec!["rollback", "store", "--dry-run", "-vvv"],
        vec!["rollback", "store", "-vvv"],
        vec!["upgrade", "--dry-run", "--output", "json"],
        vec!["render", &bundle, "--set", &set_first, "--output", "json"],
        vec!["render", &bundle, "--set", &set_first],
    ];
    let mut printed = String::new();
    for args in &runs {
        let out = env.wharf(args).await;
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        printed.push_str(&text(&out.stdout));
        printed.push_str(&text(&out.stderr));
    }
    // The secret did take effect (the test would prove nothing otherwise).
    assert_eq!(
        secret_text(&env, "store-auth", "password"),
        FIRST,
        "rolled back to the first"
    );
    for secret in [FIRST, SECOND] {
        assert!(!printed.contains(secret), "{secret} was printed");
    }
    // The grep can find one: asked for explicitly, render shows it.
    let shown = env
        .wharf(&["render", &bundle, "--set", &set_first, "--show-secrets"])
        .await;
    assert!(
        text(&shown.stdout).contains(FIRST),
        "the control failed: the grep proves nothing"
    );
    // Stored outside Secrets: every object of every kind the platform uses.
    let kinds: &[(&str, &str, bool)] = &[
        ("v1", "ConfigMap", true),
        ("v1", "Service", true),
        ("v1", "PersistentVolumeClaim", true),
        ("v1", "Event", true),
        ("v1", "Namespace", false),
        ("apps/v1", "Deployment", true),
        ("apps/v1", "ReplicaSet", true),
        ("v1", "Pod", true),
        ("coordination.k8s.io/v1", "Lease", true),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition", false),
        ("tiny.wharf.dev/v1alpha1", "Greeting", true),
    ];
    for (api, kind, namespaced) in kinds {
        for obj in env.sim.list(api, kind, namespaced.then_some(MODEL)) {
            let t = obj.to_string();
            for secret in [FIRST, SECOND] {
                assert!(
                    !t.contains(secret),
                    "{kind} {} holds a secret",
                    obj["metadata"]["name"]
                );
            }
        }
    }
    // The printable part of each release record (what `history` reads) holds none either.
    for s in env.sim.list("v1", "Secret", Some(MODEL)) {
        if s["type"] != "wharf.dev/release.v2" {
            continue;
        }
        let record = wharf::store::Release::from_secret(&s).unwrap();
        let t = serde_json::to_string(&record).unwrap();
        for secret in [FIRST, SECOND] {
            assert!(
                !t.contains(secret),
                "record {} holds a secret",
                s["metadata"]["name"]
            );
        }
        // Secret values do live in the record's `values`, so a rollback can restore them.
        let values = wharf::store::Release::values_from_secret(&s).unwrap();
        assert!(!values.config.is_empty() || record.app != "store");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_refused_when_the_cluster_no_longer_serves_an_api() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    bump(&env, "web", "2.1.0", None);
    let hpa = "---\napiVersion: autoscaling/v2beta2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 1\n  maxReplicas: 2\n";
    let path = env.charms.join("web/templates/20-web.yaml");
    let mut t = std::fs::read_to_string(&path).unwrap();
    t.push_str(hpa);
    std::fs::write(&path, t).unwrap();
    let writes = env.sim.writes();
    let out = env.wharf(&["upgrade"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("HorizontalPodAutoscaler tiny/web")
            && err.contains("does not serve autoscaling/v2beta2 HorizontalPodAutoscaler"),
        "{err}"
    );
    assert_eq!(env.sim.writes(), writes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_refused_when_a_crd_version_it_needs_is_no_longer_served() {
    let env = start(fast()).await;
    assert!(
        env.deploy(&["--set", "web.greeting=one"])
            .await
            .status
            .success()
    );
    assert!(
        env.wharf(&["config", "web", "greeting=two"])
            .await
            .status
            .success()
    );
    // Since then the Greeting CRD moved on: it serves only v1beta1.
    let mut crd = env
        .sim
        .get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            "greetings.tiny.wharf.dev",
        )
        .unwrap();
    crd["spec"]["versions"][0]["name"] = Value::from("v1beta1");
    crd["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    env.sim.put(crd).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes = env.sim.writes();
    let out = env.wharf(&["rollback", "web", "1"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot roll `web` back to revision 1")
            && err.contains("does not serve tiny.wharf.dev/v1alpha1 Greeting"),
        "{err}"
    );
    assert_eq!(env.sim.writes(), writes);
}

/// A Job's pod template is immutable on a real cluster. MinIO's bucket Job carries the standard
/// labels, `app.kubernetes.io/version` among them, so its name must change with them: upgrading
/// MinIO makes a new bucket Job (the old one is pruned) instead of being refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_job_survives_minio_upgrade() {
    let env = start(fast()).await;
    // The shipped charms, as files the test can bump.
    std::fs::remove_dir_all(&env.charms).unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charms");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let name = entry.unwrap().file_name();
        let (from, to) = (shipped.join(&name), env.charms.join(&name));
        copy_dir(&from.join("templates"), &to.join("templates"));
        for file in ["metadata.yaml", "config.yaml"] {
            std::fs::copy(from.join(file), to.join(file)).unwrap();
        }
    }
    let login = [
        "--set",
        "dex-auth.static-password=correct-horse-battery-staple",
    ];
    let deploy = [&["deploy", "lite", "--timeout", "120s"][..], &login].concat();
    let out = env.wharf(&deploy).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jobs = |env: &Env| -> Vec<String> {
        env.sim
            .list("batch/v1", "Job", Some(MODEL))
            .iter()
            .map(|j| j["metadata"]["name"].as_str().unwrap().to_owned())
            .filter(|n| n.starts_with("minio-bucket-"))
            .collect()
    };
    let before = jobs(&env);
    assert_eq!(before.len(), 1, "{before:?}");

    bump(&env, "minio", "2024.12.19", None);
    let out = env.wharf(&["upgrade", "--timeout", "60s"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = jobs(&env);
    assert_eq!(after.len(), 1, "the old Job is pruned: {after:?}");
    assert_ne!(after, before, "a new template makes a new Job");
    let job = env.sim.get("batch/v1", "Job", MODEL, &after[0]).unwrap();
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"],
        "2024.12.19"
    );
}
