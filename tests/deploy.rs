//! `wharf deploy`, the real binary against kube-sim: convergence, zero-write re-runs, targeted
//! updates, pruning, failure on timeout, the lock (concurrent runs, SIGKILL, expiry), dry-run and
//! diff, and the kubeconfig errors a user meets.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_makes_every_application_active_and_a_rerun_writes_nothing() {
    let env = start(fast()).await;
    let out = env.deploy(&["--timeout", "60s"]).await;
    assert!(out.status.success(), "deploy failed: {}", text(&out.stderr));

    let status = env.status_json().await;
    for name in ["store", "web"] {
        assert_eq!(app(&status, name)["status"], "active", "{status}");
    }
    // Stage 1 ran: the CRD exists and web's custom resource of its kind too.
    assert!(
        env.sim
            .get("tiny.wharf.dev/v1alpha1", "Greeting", MODEL, "web")
            .is_some()
    );
    // The generated secret was made and used.
    let generated = env
        .sim
        .get("v1", "Secret", MODEL, "wharf-generated")
        .expect("wharf-generated");
    assert!(
        generated["data"]["store.password"].is_string(),
        "{generated}"
    );
    assert_eq!(env.records("store"), [(1, "deployed".to_string())]);
    assert_eq!(env.records("web"), [(1, "deployed".to_string())]);
    // The Lease is gone once the run ends.
    assert!(
        env.sim
            .get("coordination.k8s.io/v1", "Lease", MODEL, "wharf-lock")
            .is_none()
    );

    let before = env.versions();
    let writes = env.sim.writes();
    let out = env.deploy(&["--timeout", "60s"]).await;
    assert!(
        out.status.success(),
        "re-deploy failed: {}",
        text(&out.stderr)
    );
    assert_eq!(changed(&before, &env.versions()), Vec::<String>::new());
    // Only the lock: create and delete of the Lease.
    assert_eq!(
        env.sim.writes() - writes,
        2,
        "a no-change deploy writes only the lock Lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_one_option_writes_only_the_objects_it_affects() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let before = env.versions();
    let out = env.deploy(&["--set", "web.greeting=bonjour"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut touched = changed(&before, &env.versions());
    touched.retain(|k| !k.starts_with("Secret/wharf.release."));
    // The option is kept in the model's inputs for later deploys.
    assert_eq!(
        touched,
        [
            "ConfigMap/web-config",
            "Greeting/web",
            "Secret/wharf-inputs"
        ]
    );
    let cm = env.sim.get("v1", "ConfigMap", MODEL, "web-config").unwrap();
    assert_eq!(cm["data"]["greeting"], "bonjour");
    // web got a new revision, the old one superseded; store did not change at all.
    assert_eq!(
        env.records("web"),
        [(1, "superseded".to_string()), (2, "deployed".to_string())]
    );
    assert_eq!(env.records("store"), [(1, "deployed".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_dropped_from_a_charm_is_pruned() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    assert!(
        env.sim
            .get("v1", "ConfigMap", MODEL, "web-config")
            .is_some()
    );
    std::fs::remove_file(env.charms.join("web/templates/10-config.yaml")).unwrap();
    // The ConfigMap carried the relation data; the charm no longer uses it.
    let out = env.deploy(&[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        env.sim
            .get("v1", "ConfigMap", MODEL, "web-config")
            .is_none(),
        "pruned"
    );
    assert!(
        env.sim.get("apps/v1", "Deployment", MODEL, "web").is_some(),
        "the rest stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_that_never_gets_ready_fails_the_deploy_after_the_timeout() {
    let env = start(Config {
        never_ready_image: Some(regex::Regex::new("example.org/web").unwrap()),
        ..fast()
    })
    .await;
    let started = std::time::Instant::now();
    let out = env.deploy(&["--timeout", "3s"]).await;
    assert!(!out.status.success());
    assert!(started.elapsed() >= Duration::from_secs(3));
    let err = text(&out.stderr);
    assert!(err.contains("web") && err.contains("timed out"), "{err}");
    assert_eq!(env.records("web"), [(1, "failed".to_string())]);
    assert_eq!(env.records("store"), [(1, "deployed".to_string())]);
    let status = env.status_json().await;
    let web = app(&status, "web");
    assert!(
        web["status"] == "error" || web["status"] == "waiting",
        "{web}"
    );
    assert!(
        web["message"].as_str().unwrap().contains("Deployment"),
        "{web}"
    );
    assert_eq!(app(&status, "store")["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_deploy_while_one_runs_is_refused_naming_the_first() {
    let env = start(Config {
        readiness_delay: Duration::from_millis(2500),
        ..fast()
    })
    .await;
    let bundle = env.bundle();
    let first = env.command(&["deploy", &bundle]).spawn().unwrap();
    let pid = first.id().unwrap();
    until(20, "the first run's lock", || {
        env.sim
            .get("coordination.k8s.io/v1", "Lease", MODEL, "wharf-lock")
            .is_some()
    })
    .await;
    let second = env.deploy(&[]).await;
    assert!(!second.status.success());
    let err = text(&second.stderr);
    assert!(
        err.contains("locked by") && err.contains(&format!("pid {pid}")),
        "{err}"
    );
    let first = first.wait_with_output().await.unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_deploy_leaves_a_lock_the_next_run_takes_over_after_expiry() {
    let env = start(Config {
        readiness_delay: Duration::from_millis(1500),
        ..fast()
    })
    .await;
    let bundle = env.bundle();
    let mut victim = env
        .command(&["deploy", &bundle])
        .env("WHARF_LOCK_SECONDS", "3")
        .spawn()
        .unwrap();
    let pid = victim.id().unwrap();
    // Kill it in the middle: after it recorded store as pending and started applying.
    until(20, "a pending release", || {
        env.records("store")
            .iter()
            .any(|(_, s)| s.starts_with("pending"))
    })
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    victim.wait().await.unwrap();

    let refused = env.deploy(&[]).await;
    assert!(!refused.status.success());
    let err = text(&refused.stderr);
    assert!(
        err.contains(&format!("pid {pid}")) && err.contains("expires"),
        "{err}"
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    let out = env.deploy(&["--timeout", "60s"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = env.status_json().await;
    for name in ["store", "web"] {
        assert_eq!(app(&status, name)["status"], "active", "{status}");
    }
    assert_eq!(env.records("store").last().unwrap().1, "deployed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_unlock_takes_a_held_lock() {
    let env = start(fast()).await;
    env.sim
        .put(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MODEL}}))
        .unwrap();
    env.sim
        .put(serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "wharf-lock", "namespace": MODEL},
            "spec": {"holderIdentity": "alice@elsewhere pid 42", "leaseDurationSeconds": 3600,
                     "renewTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()}}))
        .unwrap();
    let refused = env.deploy(&[]).await;
    assert!(
        text(&refused.stderr).contains("alice@elsewhere pid 42"),
        "{}",
        text(&refused.stderr)
    );
    let out = env.deploy(&["--force-unlock"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_writes_nothing_and_diff_hides_secrets() {
    let env = start(fast()).await;
    let writes = env.sim.writes();
    let out = env.deploy(&["--dry-run"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(
        plan.contains("stage 1: custom resource definitions"),
        "{plan}"
    );
    assert!(plan.contains("create    Deployment tiny/web"), "{plan}");
    assert!(plan.contains("web (after store)"), "{plan}");
    assert_eq!(env.sim.writes(), writes, "dry-run writes nothing");

    assert!(env.deploy(&[]).await.status.success());
    let out = env
        .deploy(&["--dry-run", "--set", "web.greeting=hej"])
        .await;
    let plan = text(&out.stdout);
    assert!(
        plan.contains("update    ConfigMap tiny/web-config"),
        "{plan}"
    );
    assert!(plan.contains("unchanged Deployment tiny/web"), "{plan}");

    let out = env
        .deploy(&["--dry-run", "--diff", "--set", "web.greeting=hej"])
        .await;
    let diff = text(&out.stdout);
    assert!(
        diff.contains("-  greeting: hello") && diff.contains("+  greeting: hej"),
        "{diff}"
    );
    assert!(
        !diff.contains("Secret tiny/store-auth"),
        "an unchanged secret has no diff: {diff}"
    );
    let password = env
        .sim
        .get("v1", "Secret", MODEL, "wharf-generated")
        .unwrap()["data"]["store.password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!diff.contains(&password));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_problems_are_one_line_errors_and_write_nothing() {
    let env = start(fast()).await;
    let bundle = env.bundle();
    let good = std::fs::read_to_string(&env.kubeconfig).unwrap();
    let dir = env.dir.path();
    let invalid = dir.join("invalid");
    std::fs::write(&invalid, "clusters: [[[ not yaml").unwrap();
    let unreachable = dir.join("unreachable");
    std::fs::write(
        &unreachable,
        good.replace(&env.sim.url(), "http://127.0.0.1:9"),
    )
    .unwrap();
    let bad_token = dir.join("bad-token");
    std::fs::write(&bad_token, good.replace("admin-token", "wrong-token")).unwrap();
    // A real identity without rights: a ServiceAccount no Role grants anything to.
    let powerless = dir.join("powerless");
    let token = env.sim.token_for_service_account("default", "nobody");
    std::fs::write(&powerless, good.replace("admin-token", &token)).unwrap();
    let cases: [(&std::path::Path, &[&str], &str); 6] = [
        (&dir.join("missing"), &[], "no kubeconfig at"),
        (&invalid, &[], "is not valid"),
        (
            &env.kubeconfig,
            &["--context", "prod"],
            "context `prod` is not in",
        ),
        (&unreachable, &[], "does not answer"),
        (&bad_token, &[], "401"),
        (&powerless, &[], "forbidden (403)"),
    ];
    let writes = env.sim.writes();
    for (kubeconfig, extra, want) in cases {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["deploy", &bundle, "-m", MODEL, "--kubeconfig"])
            .arg(kubeconfig)
            .args(extra)
            .env("WHARF_CHARMS", &env.charms)
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "{want}");
        let err = text(&out.stderr);
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one line for {want}: {err}"
        );
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{want}: {err}"
        );
    }
    assert_eq!(env.sim.writes(), writes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_another_manager_owns_is_a_conflict_until_forced() {
    use kube::api::{Api, Patch, PatchParams};
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    // Someone edits the ConfigMap with their own field manager, taking over data.greeting.
    let kubeconfig = kube::config::Kubeconfig::read_from(&env.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, MODEL);
    let edit = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web-config"}, "data": {"greeting": "edited by hand"}});
    cms.patch(
        "web-config",
        &PatchParams::apply("kubectl-edit").force(),
        &Patch::Apply(&edit),
    )
    .await
    .unwrap();

    let out = env.deploy(&[]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("\"kubectl-edit\"") && err.contains("--force-conflicts"),
        "{err}"
    );
    assert_eq!(env.records("web").last().unwrap().1, "failed");

    let out = env.deploy(&["--force-conflicts"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cm = env.sim.get("v1", "ConfigMap", MODEL, "web-config").unwrap();
    assert_eq!(cm["data"]["greeting"], "hello");
    assert_eq!(env.records("web").last().unwrap().1, "deployed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_capped() {
    let env = start(fast()).await;
    for greeting in ["a", "b", "c", "d"] {
        let set = format!("web.greeting={greeting}");
        let out = env.deploy(&["--set", &set, "--history", "2"]).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert_eq!(
        env.records("web"),
        [(3, "superseded".to_string()), (4, "deployed".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_left_pending_by_a_killed_run_is_finished_by_the_next() {
    use wharf::store::record::{Release, ReleaseStatus};
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    // As if the run had been killed after applying everything, before recording the result.
    let secret = env
        .sim
        .get("v1", "Secret", MODEL, "wharf.release.store.v1")
        .unwrap();
    let mut record = Release::from_secret(&secret).unwrap();
    let values = Release::values_from_secret(&secret).unwrap();
    record.status = ReleaseStatus::PendingUpgrade;
    env.sim
        .put(record.to_secret(MODEL, &values).unwrap())
        .unwrap();
    assert_eq!(env.records("store"), [(1, "pending-upgrade".to_string())]);

    let out = env.deploy(&[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        env.records("store"),
        [(1, "failed".to_string()), (2, "deployed".to_string())]
    );
    let status = env.status_json().await;
    assert_eq!(app(&status, "store")["status"], "active");
    assert_eq!(app(&status, "store")["rev"], 2);
}

/// What a shipped bundle needs to become active: a login and the URL Dex is reached at.
const LOGIN: [&str; 6] = [
    "--set",
    "dex-auth.static-password=correct-horse-battery-staple",
    "--set",
    "dex-auth.public-url=http://192.168.1.240.nip.io",
    "--set",
    "oidc-gatekeeper.public-url=http://192.168.1.240.nip.io",
];

/// The shipped `lite` bundle end to end: without a login Dex says so (blocked, with the fix);
/// with one every application is active, the password is never printed, and a re-run writes
/// nothing but the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_lite_makes_every_application_active_and_a_rerun_writes_nothing() {
    let env = start(fast()).await;
    let out = env
        .command_shipped(&["deploy", "lite", "--timeout", "120s"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "deploy lite failed: {}",
        text(&out.stderr)
    );
    let status = env.status_json().await;
    let dex = app(&status, "dex-auth");
    assert_eq!(dex["status"], "blocked", "{dex}");
    assert!(
        dex["message"].as_str().unwrap().contains("static-password"),
        "{dex}"
    );

    let password = "correct-horse-battery-staple";
    let login = [&["deploy", "lite"][..], &LOGIN].concat();
    let out = env.command_shipped(&login).output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(password) && !text(&out.stderr).contains(password));
    let status = env.status_json().await;
    let apps = status["applications"].as_array().unwrap();
    let names: Vec<&str> = apps
        .iter()
        .map(|a| a["app"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(apps.len(), 7, "{names:?} {status}");
    for a in apps {
        assert_eq!(a["status"], "active", "{a}");
    }
    assert!(!status.to_string().contains(password));

    let writes = env.sim.writes();
    let out = env.command_shipped(&login).output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        env.sim.writes() - writes,
        2,
        "only the lock Lease is written: {}",
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("differs"),
        "{}",
        text(&out.stderr)
    );

    // Deploying without the login again keeps it: the model stored it (see tests/day2.rs).
    let out = env
        .command_shipped(&["deploy", "lite", "--dry-run"])
        .output()
        .await
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("change"), "nothing differs:\n{err}");
    assert!(!err.contains(password) && !text(&out.stdout).contains(password));
}

/// The shipped `full` bundle with the shipped `ha` overlay, named bare: lite's six applications
/// and the workspaces operator (its Profile and Notebook CRDs registered), the login, gateway and operators with
/// two ready replicas each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_full_with_the_ha_overlay_runs_two_replicas_of_the_login_gateway_and_operators() {
    let env = start(fast()).await;
    let args = [
        &["deploy", "full", "--overlay", "ha", "--timeout", "120s"][..],
        &LOGIN,
    ]
    .concat();
    let out = env.command_shipped(&args).output().await.unwrap();
    assert!(
        out.status.success(),
        "deploy full --overlay ha failed: {}",
        text(&out.stderr)
    );
    let status = env.status_json().await;
    assert_eq!(
        status["applications"].as_array().unwrap().len(),
        10,
        "{status}"
    );
    assert!(
        env.sim
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "",
                "profiles.kubeflow.org"
            )
            .is_some(),
        "the Profile CRD is registered"
    );
    assert!(
        env.sim
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "",
                "notebooks.kubeflow.org"
            )
            .is_some(),
        "the Notebook CRD is registered"
    );
    assert!(
        env.sim
            .get("v1", "Service", MODEL, "workspaces-authz")
            .is_some(),
        "the notebook owner check the gateway asks has its Service"
    );
    for (name, scale) in [
        ("dex-auth", 2),
        ("oidc-gatekeeper", 2),
        ("gateway", 2),
        ("trainer", 2),
        ("minio", 1),
        ("server", 2),
        ("workspaces", 2),
        // Prometheus: one (its TSDB owns its volume), with its claim bound.
        ("monitoring", 1),
        ("argo", 2),
    ] {
        let a = app(&status, name);
        assert_eq!(a["status"], "active", "{a}");
        assert_eq!(a["scale"], scale, "{a}");
    }
    let claim = env
        .sim
        .get("v1", "PersistentVolumeClaim", MODEL, "monitoring-data")
        .expect("Prometheus' claim");
    assert_eq!(claim["status"]["phase"], "Bound", "{claim}");
}

/// `deploy full` installs Argo Workflows (the argo charm): its CRDs registered, the controller and
/// the UI ready, the model namespace's `workflow` account bound to the executor's rights; then
/// `wharf pipeline run` submits the shipped example there and it is stored as compiled (kube-sim
/// cannot run Argo's controller: nothing runs the Workflow here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_full_installs_argo_and_pipeline_run_submits_to_it() {
    let env = start(fast()).await;
    let args = [&["deploy", "full", "--timeout", "120s"][..], &LOGIN].concat();
    let out = env.command_shipped(&args).output().await.unwrap();
    assert!(
        out.status.success(),
        "deploy full failed: {}",
        text(&out.stderr)
    );
    let status = env.status_json().await;
    let argo = app(&status, "argo");
    assert_eq!(argo["status"], "active", "{argo}");
    for kind in [
        "workflows",
        "workflowtemplates",
        "clusterworkflowtemplates",
        "cronworkflows",
        "workfloweventbindings",
        "workflowtasksets",
        "workflowtaskresults",
        "workflowartifactgctasks",
    ] {
        let name = format!("{kind}.argoproj.io");
        assert!(
            env.sim
                .get(
                    "apiextensions.k8s.io/v1",
                    "CustomResourceDefinition",
                    "",
                    &name
                )
                .is_some(),
            "{name} is registered"
        );
    }
    for name in ["argo-controller", "argo-server"] {
        let d = env.sim.get("apps/v1", "Deployment", MODEL, name).unwrap();
        assert_eq!(d["status"]["readyReplicas"], 1, "{name}: {d}");
    }
    assert!(
        env.sim
            .get("v1", "ServiceAccount", MODEL, "workflow")
            .is_some()
    );
    let binding = env
        .sim
        .get(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            MODEL,
            "workflow-executor",
        )
        .unwrap();
    assert_eq!(binding["roleRef"]["name"], format!("{MODEL}-argo-executor"));

    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/pipelines/fashion-mnist-train-predict.yaml");
    let example = example.display().to_string();
    let out = env
        .command_shipped(&["pipeline", "run", &example, "-n", MODEL])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stored = env
        .sim
        .list("argoproj.io/v1alpha1", "Workflow", Some(MODEL));
    assert_eq!(stored.len(), 1, "{stored:?}");
    let p = wharf::pipeline::load(std::path::Path::new(&example)).unwrap();
    let want = serde_json::to_value(wharf::pipeline::compile(&p).unwrap()).unwrap();
    assert_eq!(stored[0]["spec"], want["spec"]);
}

/// `--public-url` reaches every charm (Dex's issuer, the login callback, the model server) and is
/// kept in the model: a later deploy without it changes nothing; `--public-url ""` clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_url_is_kept_in_the_model_for_later_deploys() {
    let env = start(fast()).await;
    let url = "http://192.168.1.240.nip.io";
    let password = "dex-auth.static-password=correct-horse-battery-staple";
    let first = ["deploy", "lite", "--set", password, "--public-url", url];
    let out = env.command_shipped(&first).output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = env.status_json().await;
    for a in status["applications"].as_array().unwrap() {
        assert_eq!(a["status"], "active", "{a}");
    }
    let kept = env
        .sim
        .get("v1", "ConfigMap", MODEL, "wharf-platform")
        .unwrap();
    assert_eq!(kept["data"]["public-url"], url);
    let server = env
        .sim
        .get("apps/v1", "Deployment", MODEL, "server")
        .unwrap();
    assert!(
        server.to_string().contains(&format!("--public-url={url}")),
        "the model server's operator gets the URL: {server}"
    );

    let writes = env.sim.writes();
    let again = ["deploy", "lite", "--set", password];
    let out = env.command_shipped(&again).output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        env.sim.writes() - writes,
        2,
        "only the lock Lease is written"
    );

    let cleared = ["deploy", "lite", "--set", password, "--public-url", ""];
    let out = env.command_shipped(&cleared).output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = env.status_json().await;
    assert_eq!(app(&status, "dex-auth")["status"], "blocked", "{status}");
    let kept = env
        .sim
        .get("v1", "ConfigMap", MODEL, "wharf-platform")
        .unwrap();
    assert_eq!(kept["data"]["public-url"], "");

    let out = env
        .command_shipped(&["deploy", "lite", "--public-url", "10.0.0.1"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad URL is a usage error");
    assert!(
        text(&out.stderr).contains("--public-url `10.0.0.1`"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_volume_is_kept_unless_prune_data() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let path = env.charms.join("store/templates/10-store.yaml");
    let text_before = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text_before
        .split("\n---\n")
        .filter(|doc| !doc.contains("kind: PersistentVolumeClaim"))
        .collect();
    std::fs::write(&path, kept.join("\n---\n")).unwrap();

    let out = env.deploy(&[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        env.sim
            .get("v1", "PersistentVolumeClaim", MODEL, "store-data")
            .is_some(),
        "data is kept by default"
    );
    let plan = text(&env.deploy(&["--dry-run"]).await.stdout);
    assert!(
        plan.contains("keep      PersistentVolumeClaim tiny/store-data"),
        "{plan}"
    );
    let plan = text(&env.deploy(&["--dry-run", "--prune-data"]).await.stdout);
    assert!(
        plan.contains("prune     PersistentVolumeClaim tiny/store-data"),
        "{plan}"
    );
    let out = env.deploy(&["--prune-data"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Deleted; the pvc-protection finalizer keeps it Terminating while store's pod still mounts
    // it, as on a real cluster, and the deploy does not wait for that.
    let claim = env
        .sim
        .get("v1", "PersistentVolumeClaim", MODEL, "store-data");
    assert!(
        claim
            .as_ref()
            .is_none_or(|c| !c["metadata"]["deletionTimestamp"].is_null()),
        "{claim:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wait_applies_and_returns_before_workloads_are_ready() {
    let env = start(Config {
        readiness_delay: Duration::from_secs(30),
        ..fast()
    })
    .await;
    let started = std::time::Instant::now();
    let out = env.deploy(&["--no-wait"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it did not wait for readiness"
    );
    assert!(env.sim.get("apps/v1", "Deployment", MODEL, "web").is_some());
    assert_eq!(app(&env.status_json().await, "web")["status"], "waiting");
}

/// An application dropped from the bundle keeps running (removal is `wharf remove`'s job) and
/// the deploy says so instead of staying silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_dropped_from_the_bundle_is_reported_and_left_running() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let overlay = env.dir.path().join("without-web.yaml");
    std::fs::write(&overlay, "applications:\n  web: null\n").unwrap();
    let out = env.deploy(&["--overlay", overlay.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("`web` is deployed") && err.contains("wharf remove web"),
        "{err}"
    );
    let status = env.status_json().await;
    assert_eq!(app(&status, "web")["status"], "active", "{status}");
}

/// `--output json` answers with one document a script can parse, for the plan as for the run;
/// progress goes to stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_json_is_one_document_for_the_plan_and_the_run() {
    let env = start(fast()).await;
    let out = env.deploy(&["--dry-run", "--output", "json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(plan["model"], MODEL);
    assert_eq!(plan["stages"][0]["title"], "custom resource definitions");
    let web = plan["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app"] == "web")
        .unwrap();
    assert_eq!(web["needs"][0], "store");
    assert!(
        web["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["change"] == "create")
    );

    let out = env.deploy(&["--output", "yaml"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let run: serde_json::Value =
        serde_saphyr::from_str(&text(&out.stdout)).expect("one YAML document");
    let apps = run["applications"].as_array().unwrap();
    assert!(
        apps.iter()
            .all(|a| a["status"] == "deployed" && a["revision"] == 1),
        "{run}"
    );
    assert!(
        text(&out.stderr).contains("stage 3"),
        "progress is on stderr"
    );
}

/// A real cluster often lists an aggregated API that answers 503 (metrics.k8s.io while
/// metrics-server starts): deploy, status and remove carry on with a warning naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_succeeds_with_unavailable_metrics_api() {
    let env = start(Config {
        unavailable_apis: vec!["metrics.k8s.io/v1beta1".into()],
        ..fast()
    })
    .await;
    let out = env.deploy(&["--timeout", "60s"]).await;
    assert!(out.status.success(), "deploy failed: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: discover metrics.k8s.io/v1beta1"),
        "{stderr}"
    );
    let status = env.status_json().await;
    for name in ["store", "web"] {
        assert_eq!(app(&status, name)["status"], "active", "{status}");
    }
    let out = env.wharf(&["remove", "--all"]).await;
    assert!(out.status.success(), "remove failed: {}", text(&out.stderr));
}

/// lite's MinIO claims 10Gi, full's 30Gi, and MicroK8s' hostpath class cannot expand: deploying
/// full over lite is refused before any write, naming the claim, the sizes and the class. The
/// cluster would refuse the growth too (kube-sim answers as the resize admission plugin does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_full_over_lite_refuses_pvc_growth_before_writing() {
    let env = start(fast()).await;
    let lite = [&["deploy", "lite", "--timeout", "120s"][..], &LOGIN].concat();
    let out = env.command_shipped(&lite).output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let claim = env
        .sim
        .get("v1", "PersistentVolumeClaim", MODEL, "minio-data")
        .expect("minio-data");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "10Gi");

    let writes = env.sim.writes();
    let full = [&["deploy", "full", "--timeout", "120s"][..], &LOGIN].concat();
    let out = env.command_shipped(&full).output().await.unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("PersistentVolumeClaim tiny/minio-data")
            && err.contains("10Gi → 30Gi")
            && err.contains("allowVolumeExpansion")
            && err.contains("microk8s-hostpath"),
        "{err}"
    );
    assert_eq!(env.sim.writes(), writes, "nothing written");
    let after = env
        .sim
        .get("v1", "PersistentVolumeClaim", MODEL, "minio-data")
        .unwrap();
    assert_eq!(after["spec"]["resources"]["requests"]["storage"], "10Gi");

    let mut grown = claim.clone();
    grown["spec"]["resources"]["requests"]["storage"] = "30Gi".into();
    let refused = env.sim.put(grown).unwrap_err().to_string();
    assert!(
        refused.contains("only dynamically provisioned pvc can be resized"),
        "{refused}"
    );
}

/// A real node pulls `wharf.local/` images from nowhere: until they are imported, the trainer's and
/// the server's pods stay in ImagePullBackOff, the deploy fails after its timeout naming them, and
/// `wharf status` says why with the image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_image_is_imagepullbackoff_and_status_says_so() {
    let store = tempfile::NamedTempFile::new().unwrap();
    let env = start(Config {
        node_images: Some(store.path().to_path_buf()),
        ..fast()
    })
    .await;
    // Past the check that would refuse it (see refuses_wharf_images_no_node_has…).
    let out = env
        .command_shipped(&["deploy", "lite", "--timeout", "4s", "--skip-image-check"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("trainer") && err.contains("server"), "{err}");
    assert!(
        err.contains("warning: no node of the cluster has wharf's own image"),
        "{err}"
    );
    let status = env.status_json().await;
    for name in ["trainer", "server"] {
        let a = app(&status, name);
        let message = a["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("ImagePullBackOff")
                && message.contains(&format!("wharf.local/wharf-{name}:")),
            "{a}"
        );
    }
    // Upstream images pull from their registries: the rest of the platform runs.
    assert_eq!(app(&status, "minio")["status"], "active", "{status}");

    // Imported (as `microk8s ctr images import` does), the next deploy finishes. (wharf's own
    // image runs the dashboard.)
    std::fs::write(
        store.path(),
        "wharf.local/wharf-server:0.1.0 sha256:1\nwharf.local/wharf-trainer:0.1.0 sha256:2\n\
         wharf.local/wharf:0.1.0 sha256:3\n",
    )
    .unwrap();
    until_the_node_lists(&env, "wharf.local/wharf-trainer:0.1.0").await;
    until_the_node_lists(&env, "wharf.local/wharf:0.1.0").await;
    for d in ["trainer", "server", "dashboard"] {
        env.sim.delete("apps/v1", "Deployment", MODEL, d);
    }
    let out = env
        .command_shipped(&["deploy", "lite", "--timeout", "60s"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    // An upgrade is held to the same check: a newer wharf whose trainer image no node has yet
    // is refused before any change (instead of a timeout in ImagePullBackOff and a rollback).
    let newer = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("charms"),
        newer.path(),
    );
    let metadata = newer.path().join("trainer/metadata.yaml");
    let text_of = std::fs::read_to_string(&metadata).unwrap();
    std::fs::write(
        &metadata,
        text_of
            .replace("version: 0.1.0", "version: 0.2.0")
            .replace("wharf-trainer:0.1.0", "wharf-trainer:0.2.0"),
    )
    .unwrap();
    let trainer_before = env
        .sim
        .get("apps/v1", "Deployment", MODEL, "trainer")
        .unwrap();
    let upgrade = |extra: &[&str]| {
        let mut args = vec!["upgrade", "--no-backup"];
        args.extend_from_slice(extra);
        let mut command = env.command_shipped(&args);
        command.env("WHARF_CHARMS", newer.path());
        command
    };
    let out = upgrade(&[]).output().await.unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("refused before any change")
            && err.contains("wharf.local/wharf-trainer:0.2.0")
            && err.contains("--skip-image-check"),
        "{err}"
    );
    let trainer_after = env
        .sim
        .get("apps/v1", "Deployment", MODEL, "trainer")
        .unwrap();
    assert_eq!(
        trainer_before["metadata"]["resourceVersion"],
        trainer_after["metadata"]["resourceVersion"]
    );
    // A dry run plans anyway, and warns.
    let out = upgrade(&["--dry-run"]).output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning: no node of the cluster has wharf's own image"),
        "{}",
        text(&out.stderr)
    );
}

/// The apiserver fills a CRD's structural-schema defaults into a custom resource that leaves
/// them out (web's Greeting sets only `text`; the store's CRD defaults `language` and `style`):
/// they are the server's, not drift, so a re-run writes nothing and `--diff` shows no change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_defaults_filled_by_the_apiserver_are_not_drift() {
    let env = start(fast()).await;
    let out = env.deploy(&[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let greeting = env
        .sim
        .get("tiny.wharf.dev/v1alpha1", "Greeting", MODEL, "web")
        .unwrap();
    assert_eq!(
        greeting["spec"],
        serde_json::json!({"text": "hello", "language": "en", "style": {"punctuation": "!"}})
    );
    let out = env.deploy(&["--dry-run"]).await;
    let plan = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(plan.contains("unchanged Greeting tiny/web"), "{plan}");
    let out = env.deploy(&["--dry-run", "--diff"]).await;
    let diff = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !diff.contains("Greeting") && !diff.contains("language"),
        "{diff}"
    );
    let writes = env.sim.writes();
    assert!(env.deploy(&[]).await.status.success());
    assert_eq!(env.sim.writes() - writes, 2, "only the lock Lease");
    let status = env.status_json().await;
    assert_eq!(app(&status, "web")["status"], "active", "{status}");
}

/// A CRD whose CEL rule the apiserver cannot compile is refused before anything is written:
/// wharf sends each CRD it would write as a dry run first, and the refusal names the CRD and
/// the rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_with_a_rule_that_does_not_compile_stops_deploy_before_any_write() {
    let env = start(fast()).await;
    let crd_file = env.charms.join("store/templates/00-crd.yaml");
    let crd = std::fs::read_to_string(&crd_file).unwrap();
    let crd = crd.replace(
        "              type: object\n              properties:\n                text: {type: string}",
        "              type: object\n              x-kubernetes-validations:\n                - rule: \"self.txt.size() > 0\"\n              properties:\n                text: {type: string}",
    );
    assert!(crd.contains("self.txt"), "the fixture's CRD changed shape");
    std::fs::write(&crd_file, crd).unwrap();
    let writes = env.sim.writes();
    let out = env.deploy(&["--timeout", "20s"]).await;
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("refused before any change")
            && err.contains("CustomResourceDefinition greetings.tiny.wharf.dev")
            && err.contains("Rule:\"self.txt.size() > 0\"")
            && err.contains("undefined field 'txt'"),
        "{err}"
    );
    assert_eq!(
        env.sim.writes(),
        writes,
        "nothing written, not even the lock"
    );
    assert!(env.sim.get("v1", "Namespace", "", MODEL).is_none());
}

/// The apiserver authorizes an apply that creates an object as a `create` as well as a
/// `patch`: a kubeconfig whose user may patch CRDs but not create them fails on the first CRD,
/// and wharf's error names the verb, the resource and what to grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_with_a_user_that_may_patch_but_not_create_names_the_verb() {
    let env = start(fast()).await;
    let rules = serde_json::json!([
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch", "patch", "update", "delete"]},
        {"apiGroups": ["", "coordination.k8s.io"], "resources": ["namespaces", "secrets", "leases"], "verbs": ["create"]}
    ]);
    env.sim
        .put(
            serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "patcher"}, "rules": rules}),
        )
        .unwrap();
    env.sim
        .put(serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "patcher"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "patcher"},
            "subjects": [{"kind": "ServiceAccount", "name": "patcher", "namespace": "default"}]}))
        .unwrap();
    let token = env.sim.token_for_service_account("default", "patcher");
    env.sim
        .write_kubeconfig(&env.kubeconfig, Some(&token))
        .unwrap();
    let out = env.deploy(&["--timeout", "20s"]).await;
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("apply CustomResourceDefinition greetings.tiny.wharf.dev: forbidden (403)")
            && err.contains("cannot create resource \"customresourcedefinitions\"")
            && err.contains("needs the `create` verb as well as `patch`"),
        "{err}"
    );
    assert!(
        env.sim
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "",
                "greetings.tiny.wharf.dev"
            )
            .is_none()
    );
}
/// An HPA someone added scales wharf's `web`: wharf applies the Deployment without
/// `spec.replicas` from then on, so neither `deploy` nor `config` resets the HPA's count (before,
/// the deploy failed with a conflict on `.spec.replicas`, or with --force-conflicts scaled back).
/// The first deploy after the HPA appears hands the field over while the HPA still agrees with
/// wharf's count, so it never drops to the default of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_does_not_fight_hpa_replicas() {
    let env = start(Config {
        metrics_server: true,
        hpa_sync_period: Duration::from_millis(100),
        ..fast()
    })
    .await;
    // The fixture bundle with two web replicas.
    let bundle = env.dir.path().join("bundle.yaml");
    let text_of = std::fs::read_to_string(fixtures().join("bundle.yaml")).unwrap();
    std::fs::write(
        &bundle,
        text_of.replace("web: {charm: web, scale: 1", "web: {charm: web, scale: 2"),
    )
    .unwrap();
    let bundle = bundle.display().to_string();
    let deploy = || async {
        env.wharf(&["deploy", bundle.as_str(), "--timeout", "60s"])
            .await
    };
    let out = deploy().await;
    assert!(out.status.success(), "deploy failed: {}", text(&out.stderr));
    let replicas =
        || env.sim.get("apps/v1", "Deployment", MODEL, "web").unwrap()["spec"]["replicas"].as_i64();
    assert_eq!(replicas(), Some(2));

    // An HPA on web: 100m per pod is the target and what the pods use, so it keeps two.
    env.sim.set_pod_usage(MODEL, "web-*", 100, 16 << 20);
    env.sim
        .put(serde_json::json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": MODEL},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 3,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "AverageValue", "averageValue": "100m"}}}]}}))
        .unwrap();
    until(5, "the HPA's first decision", || {
        env.sim
            .get("autoscaling/v2", "HorizontalPodAutoscaler", MODEL, "web")
            .is_some_and(|h| h["status"]["desiredReplicas"] == 2)
    })
    .await;
    let out = deploy().await;
    assert!(out.status.success(), "deploy failed: {}", text(&out.stderr));
    assert_eq!(replicas(), Some(2), "handed over, not reset to one");
    let said = text(&out.stderr);
    assert!(
        said.contains("Deployment tiny/web: spec.replicas is left to HorizontalPodAutoscaler web"),
        "{said}"
    );
    let web = env.sim.get("apps/v1", "Deployment", MODEL, "web").unwrap();
    let owners = replicas_owners(&web);
    assert_eq!(owners, ["wharf-handover-to-hpa"], "{web}");

    // Busy: 300m per pod against 100m scales to the maximum through /scale.
    env.sim.set_pod_usage(MODEL, "web-*", 300, 16 << 20);
    until(5, "three replicas", || replicas() == Some(3)).await;
    let out = deploy().await;
    assert!(out.status.success(), "deploy failed: {}", text(&out.stderr));
    assert_eq!(replicas(), Some(3));
    let out = env.wharf(&["config", "web", "greeting=bonjour"]).await;
    assert!(out.status.success(), "config failed: {}", text(&out.stderr));
    assert_eq!(replicas(), Some(3));
    let web = env.sim.get("apps/v1", "Deployment", MODEL, "web").unwrap();
    assert_eq!(replicas_owners(&web), ["kube-controller-manager"], "{web}");
    assert_eq!(
        env.sim.get("v1", "ConfigMap", MODEL, "web-config").unwrap()["data"]["greeting"],
        "bonjour"
    );
}

/// The managers whose managedFields entry holds `spec.replicas`.
fn replicas_owners(obj: &serde_json::Value) -> Vec<String> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.pointer("/fieldsV1/f:spec/f:replicas").is_some())
        .filter_map(|e| e["manager"].as_str().map(str::to_string))
        .collect()
}

/// The history of wharf's deployed revisions of `app`, from `wharf history APP --output json`.
async fn history_json(env: &Env, app: &str) -> Vec<serde_json::Value> {
    let out = env.wharf(&["history", app, "--output", "json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// A release record keeps what each workload ran once it was ready, by digest, as the kubelet
/// reports it (`imageID`); a deploy of a new image records the new digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_keep_the_image_digests_the_pods_run() {
    let env = start(fast()).await;
    let out = env.deploy(&[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first = history_json(&env, "web").await;
    let images = &first[0]["images"];
    assert_eq!(images[0]["workload"], "Deployment/web", "{images}");
    assert_eq!(images[0]["image"], "example.org/web:2.0", "{images}");
    let id = images[0]["imageID"].as_str().unwrap().to_owned();
    let hex = id
        .strip_prefix("example.org/web@sha256:")
        .unwrap_or_default();
    assert!(
        hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    // The digest is what the pod's status says, not something wharf made up.
    let pods = env.sim.list("v1", "Pod", Some(MODEL));
    let pod = pods
        .iter()
        .find(|p| p["metadata"]["name"].as_str().unwrap().starts_with("web-"))
        .unwrap();
    assert_eq!(
        pod["status"]["containerStatuses"][0]["imageID"],
        id.as_str()
    );

    // A new image: the new revision records the new digest, the old revision keeps the old one.
    let meta = env.charms.join("web/metadata.yaml");
    let text_before = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(
        &meta,
        text_before.replace("example.org/web:2.0", "example.org/web:2.1"),
    )
    .unwrap();
    let out = env.deploy(&[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let both = history_json(&env, "web").await;
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(both[0]["images"][0]["imageID"], id.as_str());
    let new = &both[1]["images"];
    assert_eq!(
        new.as_array().unwrap().len(),
        1,
        "only the running pod's image: {new}"
    );
    assert_eq!(new[0]["image"], "example.org/web:2.1");
    let new_id = new[0]["imageID"].as_str().unwrap();
    assert!(
        new_id.starts_with("example.org/web@sha256:") && new_id != id,
        "{new_id}"
    );
    // `--output yaml` shows them too (read as YAML: a long ID may be folded onto its own line).
    let out = env.wharf(&["history", "web", "--output", "yaml"]).await;
    let yaml: serde_json::Value = serde_saphyr::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(
        yaml[1]["images"][0]["imageID"],
        new_id,
        "{}",
        text(&out.stdout)
    );
}

/// `deploy lite` on a cluster whose nodes lack wharf's images is refused before any change,
/// saying where the images must come from; `--image-registry` points the charms at a registry
/// (kept for later deploys), and imported images are recorded with the digest they came with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_wharf_images_no_node_has_and_image_registry_points_elsewhere() {
    let store = tempfile::NamedTempFile::new().unwrap();
    let env = start(Config {
        node_images: Some(store.path().to_path_buf()),
        ..fast()
    })
    .await;
    let deploy = |args: &'static [&'static str]| {
        let mut all = vec!["deploy", "lite", "--timeout", "60s"];
        all.extend_from_slice(args);
        env.command_shipped(&all).output()
    };
    env.sim.reset_writes();
    let out = deploy(&[]).await.unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for needed in [
        "refused before any change",
        "wharf.local/wharf-server:0.1.0",
        "wharf images import",
        "wharf images push REGISTRY",
        "--image-registry REGISTRY",
        "--skip-image-check",
    ] {
        assert!(err.contains(needed), "{needed}: {err}");
    }
    assert_eq!(env.sim.writes(), 0, "nothing written");

    // Pushed to a registry the nodes pull from: the charms run the images from there.
    let out = deploy(&["--image-registry", "localhost:32000"])
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let image = |name: &str| {
        let d = env.sim.get("apps/v1", "Deployment", MODEL, name).unwrap();
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(image("server"), "localhost:32000/wharf-server:0.1.0");
    let platform = env
        .sim
        .get("v1", "ConfigMap", MODEL, "wharf-platform")
        .unwrap();
    assert_eq!(platform["data"]["image-registry"], "localhost:32000");
    // A later deploy without the flag keeps it; "" goes back to wharf.local (imported now).
    let out = deploy(&["--set", "server.log-level=debug"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(image("server"), "localhost:32000/wharf-server:0.1.0");

    let digest = |n: u8| format!("sha256:{}", format!("{n:x}").repeat(64));
    std::fs::write(
        store.path(),
        format!(
            "wharf.local/wharf-server:0.1.0 {}\nwharf.local/wharf-trainer:0.1.0 {}\n\
             wharf.local/wharf:0.1.0 {}\n",
            digest(0xa),
            digest(0xb),
            digest(0xc)
        ),
    )
    .unwrap();
    until_the_node_lists(&env, "wharf.local/wharf-server:0.1.0").await;
    let out = deploy(&["--image-registry", ""]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(image("server"), "wharf.local/wharf-server:0.1.0");
    let records = history_json(&env, "server").await;
    let last = records.last().unwrap();
    assert_eq!(
        last["images"][0]["imageID"],
        format!("wharf.local/wharf-server@{}", digest(0xa)),
        "{last}"
    );
}

/// A service mesh (or a user) adds a sidecar container and an env var to wharf's Deployment with
/// its own field manager. Server-side apply merges containers and env by name, so wharf's next
/// apply keeps them, and they are not wharf's drift: the plan says unchanged and --diff is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssa_keeps_other_managers_containers() {
    use kube::api::{Api, Patch, PatchParams};
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let kubeconfig = kube::config::Kubeconfig::read_from(&env.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client, MODEL);
    let injection = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "web", "env": [{"name": "MESH_ENABLED", "value": "true"}]},
            {"name": "mesh-proxy", "image": "envoyproxy/envoy:v1.31"}]}}}});
    deployments
        .patch(
            "web",
            &PatchParams::apply("mesh-injector"),
            &Patch::Apply(&injection),
        )
        .await
        .unwrap();
    let theirs = |d: &serde_json::Value| {
        let containers = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .clone();
        let names: Vec<String> = containers
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        let env: Vec<String> = containers[0]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect();
        (names, env)
    };
    let web = || env.sim.get("apps/v1", "Deployment", MODEL, "web").unwrap();
    assert_eq!(
        theirs(&web()),
        (
            vec!["web".into(), "mesh-proxy".into()],
            vec!["MESH_ENABLED".into()]
        )
    );

    // Not wharf's drift: the plan leaves the Deployment alone and the diff does not show it.
    let out = env.deploy(&["--dry-run"]).await;
    let plan = text(&out.stdout);
    assert!(plan.contains("unchanged Deployment tiny/web"), "{plan}");
    let out = env.deploy(&["--dry-run", "--diff"]).await;
    let diff = text(&out.stdout);
    assert!(!diff.contains("Deployment tiny/web"), "{diff}");
    assert!(!diff.contains("mesh-proxy"), "{diff}");

    // A deploy that does change the Deployment (the port) keeps what the mesh added, and drops
    // only wharf's old port.
    let out = env.deploy(&["--set", "web.port=9090"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = web();
    assert_eq!(
        theirs(&after),
        (
            vec!["web".into(), "mesh-proxy".into()],
            vec!["MESH_ENABLED".into()]
        )
    );
    let ports: Vec<i64> = after["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [9090]);
    // `wharf config` goes through the same engine and keeps them too.
    let out = env.wharf(&["config", "web", "port=9191"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        theirs(&web()),
        (
            vec!["web".into(), "mesh-proxy".into()],
            vec!["MESH_ENABLED".into()]
        )
    );
    let status = env.status_json().await;
    assert_eq!(app(&status, "web")["status"], "active", "{status}");
    let out = env.deploy(&["--dry-run"]).await;
    let plan = text(&out.stdout);
    assert!(plan.contains("unchanged Deployment tiny/web"), "{plan}");
}

/// Waits until the simulated node's `status.images` names `image`: the node reports its store
/// every 100 ms, like a kubelet's status update (but faster), so a deploy right after an import
/// could still see the old list.
async fn until_the_node_lists(env: &Env, image: &str) {
    until(10, &format!("the node lists {image}"), || {
        let node = env.sim.get("v1", "Node", "", "sim-node").unwrap();
        node["status"]["images"].to_string().contains(image)
    })
    .await;
}
