//! `wharf status` against kube-sim: the header and tables, JSON output, charm-declared status, and
//! the InferenceServices' request rates from the monitoring charm's Prometheus.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_header_applications_and_units() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let out = env.wharf(&["status"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    for want in [
        "Model",
        "tiny",
        &env.sim.url(),
        "1.33",
        "App",
        "Version",
        "Status",
        "Scale",
        "Charm",
        "Rev",
        "Address",
        "Message",
        "Unit",
        "Workload",
        "web/0",
        "store/0",
        "active",
    ] {
        assert!(s.contains(want), "status lacks {want}:\n{s}");
    }
    let json = env.status_json().await;
    let web = app(&json, "web");
    assert_eq!(web["charm"], "web");
    assert_eq!(web["version"], "2.0.0");
    assert_eq!(web["rev"], 1);
    assert_eq!(web["scale"], 1);
    // The LoadBalancer address from the simulator's pool.
    assert!(
        web["address"].as_str().unwrap().starts_with("10.64.140."),
        "{web}"
    );
    let yaml = env.wharf(&["status", "--output", "yaml"]).await;
    assert!(text(&yaml.stdout).contains("applications:"));
    // No Prometheus in the model: nothing about request rates, in any output.
    assert!(
        json.get("models").is_none() && json.get("models_note").is_none(),
        "{json}"
    );
    assert!(!s.contains("Req/s"), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charm_declared_condition_makes_the_application_blocked() {
    let env = start(fast()).await;
    assert!(
        env.deploy(&["--set", "web.greeting="])
            .await
            .status
            .success()
    );
    let json = env.status_json().await;
    let web = app(&json, "web");
    assert_eq!(web["status"], "blocked", "{web}");
    assert_eq!(web["message"], "set greeting");
    assert_eq!(app(&json, "store")["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_an_empty_model_says_how_to_deploy() {
    let env = start(fast()).await;
    let out = env.wharf(&["status"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("no applications"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_redraws_until_interrupted() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let child = env
        .command(&["status", "--watch", "--interval", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "Ctrl-C ends --watch cleanly");
    let s = text(&out.stdout);
    assert!(s.matches("App ").count() >= 2, "at least two redraws:\n{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_prints_the_gateways_url() {
    let env = start(fast()).await;
    // No gateway and no public URL: say where else the dashboard is.
    let out = env.wharf(&["dashboard"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("wharf dashboard --serve"),
        "{}",
        text(&out.stderr)
    );
    // The public URL `wharf deploy --public-url` keeps: the gateway serves the dashboard at `/`.
    env.sim
        .put(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": MODEL}}))
        .unwrap();
    env.sim
        .put(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "wharf-platform", "namespace": MODEL},
            "data": {"public-url": "http://10.64.140.43.nip.io"}}))
        .unwrap();
    // A browser that writes down what it was asked to open.
    let opened = env.dir.path().join("opened");
    let browser = env.dir.path().join("browser");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\necho \"$1\" >> {}\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        &browser,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = env
        .command(&["dashboard"])
        .env("BROWSER", &browser)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "http://10.64.140.43.nip.io/\n");
    // Not a terminal (a script reading the URL): nothing is opened unless asked.
    assert!(!opened.exists(), "a browser was opened for a script");
    let out = env
        .command(&["dashboard", "--open"])
        .env("BROWSER", format!("{}:firefox", browser.display()))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !opened.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the browser was not started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut asked = String::new();
    while !asked.ends_with('\n') {
        asked = std::fs::read_to_string(&opened).unwrap();
    }
    assert_eq!(asked, "http://10.64.140.43.nip.io/\n");
    // No browser anywhere: the URL is still printed, with a note, and the command succeeds.
    let out = env
        .command(&["dashboard", "--open"])
        .env("BROWSER", "")
        .env("PATH", env.dir.path())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "http://10.64.140.43.nip.io/\n");
    assert!(
        text(&out.stderr).contains("no browser found"),
        "{}",
        text(&out.stderr)
    );
}

/// The dashboard in a real browser (issue 17): `wharf dashboard --serve` against kube-sim with the
/// fixture bundle deployed, a real wharf-server behind the InferenceService `fashion`, and
/// tests/dashboard/dashboard.test.mjs driving Debian's chromium through playwright-core. It writes
/// screenshots of each page (under target/, or where WHARF_DASHBOARD_SCREENSHOTS says) and prints first render and page weight.
///
/// Needs node, chromium and `npm ci` in tests/dashboard (scripts/test.sh and .ci/run do both);
/// WHARF_SKIP_BROWSER_TESTS=1 skips it loudly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_browser() {
    use std::path::Path;
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, BufReader};

    if std::env::var("WHARF_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
        eprintln!(
            "SKIPPED: WHARF_SKIP_BROWSER_TESTS=1 (the dashboard was NOT tested in a browser)"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script_dir = root.join("tests/dashboard");
    assert!(
        script_dir.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in {} (scripts/test.sh does), or WHARF_SKIP_BROWSER_TESTS=1 to skip this test",
        script_dir.display()
    );
    let chromium = std::env::var("WHARF_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} not found: apt-get install chromium (or set WHARF_CHROMIUM), or \
         WHARF_SKIP_BROWSER_TESTS=1 to skip this test"
    );
    // The server and the trainer are other packages' binaries, built beside wharf's.
    let bins = Path::new(env!("CARGO_BIN_EXE_wharf")).parent().unwrap();
    let wharf_server = bins.join("wharf-server");
    for bin in ["wharf-server", "wharf-trainer"] {
        assert!(
            bins.join(bin).exists(),
            "{} not found: `cargo build -p {bin}` first (`cargo test --workspace` builds it)",
            bins.join(bin).display()
        );
    }

    // The cluster: the fixture bundle, and the CRDs the trainer and server charms install.
    let config = fast();
    let token = config.admin_token.clone();
    let env = start(config).await;
    let deployed = env.deploy(&[]).await;
    assert!(deployed.status.success(), "{}", text(&deployed.stderr));
    for crd in [
        "charms/trainer/templates/crd.yaml",
        "charms/server/templates/crd.yaml",
        // The profile pages' kinds (the script makes their objects in PROFILE_NAMESPACE), and
        // Profiles themselves.
        "charms/workspaces/templates/crd.yaml",
        "charms/workspaces/templates/notebook-crd.yaml",
        "charms/trainer/templates/optimizationjob-crd.yaml",
        "tests/fixtures/pipeline/workflow-crd.yaml",
    ] {
        let yaml = std::fs::read_to_string(root.join(crd)).unwrap();
        let crd: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        env.sim.put(crd).unwrap();
    }
    env.sim
        .put(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "alice"}}))
        .unwrap();

    // A real wharf-server serving a real model as `fashion`: wharf-trainer's MLP, one epoch on the
    // first 3000 Fashion-MNIST images (about a second).
    let repo = env.dir.path().join("models");
    let trained = tokio::process::Command::new(bins.join("wharf-trainer"))
        .args([
            "train",
            "--epochs",
            "1",
            "--train-limit",
            "3000",
            "--test-limit",
            "500",
        ])
        .arg("--out")
        .arg(repo.join("fashion"))
        .output()
        .await
        .unwrap();
    assert!(
        trained.status.success(),
        "wharf-trainer train (needs `apt-get install dataset-fashion-mnist`): {}",
        text(&trained.stderr)
    );
    let mut server = tokio::process::Command::new(&wharf_server)
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--grpc-port",
            "0",
        ])
        .arg("--model-repository")
        .arg(&repo)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = BufReader::new(server.stderr.take().unwrap()).lines();
    let server_addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = log.next_line().await.unwrap() {
            if let Some(rest) = line.split("addr=").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("wharf-server exited without saying where it listens")
    })
    .await
    .expect("wharf-server logs its address within 20 s");
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    let server_url = format!("http://{server_addr}/");
    // The CRD becomes Established after a delay; the InferenceService is written once it is.
    let isvc = serde_json::json!({
        "apiVersion": "wharf.dev/v1alpha1", "kind": "InferenceService",
        "metadata": {"name": "fashion", "namespace": MODEL},
        "spec": {"model": {"name": "fashion", "storageUri": "pvc://models/fashion"},
            "minReplicas": 1, "maxReplicas": 2},
    });
    put_when_served(&env, isvc).await;
    // The status the server operator would write (through the status subresource, as it does).
    let status = serde_json::json!({"status": {"url": server_url, "servedVersion": 1,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
            "message": format!("serving at {server_url}"),
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    let patched = reqwest::Client::new()
        .patch(format!(
            "{}/apis/wharf.dev/v1alpha1/namespaces/{MODEL}/inferenceservices/fashion/status",
            env.sim.url()
        ))
        .bearer_auth(&token)
        .header("content-type", "application/merge-patch+json")
        .body(status.to_string())
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success(), "{:?}", patched.text().await);
    let status = env.status_json().await;
    let status_file = env.dir.path().join("status.json");
    std::fs::write(&status_file, serde_json::to_vec(&status).unwrap()).unwrap();

    // The dashboard, on a free loopback port it prints.
    let mut dashboard = env.command(&["dashboard", "--serve", "--port", "0"]);
    let mut dashboard = dashboard
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(dashboard.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), out.next_line())
        .await
        .expect("the dashboard prints its URL within 20 s")
        .unwrap()
        .expect("the dashboard printed nothing");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in `{first}`"))
        .trim_end_matches('/')
        .to_owned();

    // Screenshots go under target/ unless asked for elsewhere: the ports in them change on every
    // run, so writing the committed docs/dashboard/*.png each time would dirty every checkout.
    // `WHARF_DASHBOARD_SCREENSHOTS=docs/dashboard` refreshes the README's images.
    let shots = match std::env::var_os("WHARF_DASHBOARD_SCREENSHOTS") {
        Some(dir) => root.join(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots"),
    };
    std::fs::create_dir_all(&shots).unwrap();
    eprintln!("dashboard screenshots: {}", shots.display());
    let started = std::time::Instant::now();
    let run = tokio::process::Command::new("node")
        .arg(script_dir.join("dashboard.test.mjs"))
        .current_dir(&script_dir)
        .env("DASHBOARD_URL", &url)
        .env("KUBE_URL", env.sim.url())
        .env("KUBE_TOKEN", &token)
        .env("NAMESPACE", MODEL)
        .env("STATUS_JSON", &status_file)
        .env("SERVER_URL", &server_url)
        .env("SAMPLES", root.join("src/dashboard/assets/samples.u8"))
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .env("PROFILE_NAMESPACE", "alice")
        .kill_on_drop(true)
        .output();
    let run = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser test finishes within 180 s")
        .expect("run node (apt-get install nodejs)");
    let stdout = text(&run.stdout);
    eprintln!("{stdout}{}", text(&run.stderr));
    assert!(run.status.success(), "the browser test failed (above)");
    for page in [
        "overview",
        "training",
        "models",
        "notebooks",
        "tuning",
        "pipelines",
    ] {
        assert!(
            stdout.contains(&format!("ok {page}")),
            "no `ok {page}` line"
        );
    }
    // The dashboard's memory at idle (after the browser left), for the issue's closing note.
    let rss = std::fs::read_to_string(format!("/proc/{}/status", dashboard.id().unwrap()))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .unwrap();
    eprintln!(
        "browser test took {:.1} s; dashboard resident memory at idle: {rss} kB",
        started.elapsed().as_secs_f64()
    );
    let _ = server.start_kill();
}

/// The dashboard acts with its user's rights (issue 17): a user who may not read the model's
/// TrainJobs sees why, and none of them; the overview says it may not read the model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_nothing_its_user_may_not_read() {
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, BufReader};

    let env = start(fast()).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("charms/trainer/templates/crd.yaml")).unwrap();
    env.sim
        .put(serde_saphyr::from_str::<serde_json::Value>(&yaml).unwrap())
        .unwrap();
    env.sim
        .put(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": MODEL}}))
        .unwrap();
    let job = serde_json::json!({"apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob",
        "metadata": {"name": "private-run", "namespace": MODEL},
        "spec": {"model": "mlp", "dataset": {"uri": "file:///d"}, "output": {"uri": "pvc://m/x"}}});
    put_when_served(&env, job).await;

    // A user with no rights in the model (a service account of another namespace, no bindings).
    let kubeconfig = env.dir.path().join("nobody.kubeconfig");
    let token = env.sim.token_for_service_account("elsewhere", "nobody");
    env.sim.write_kubeconfig(&kubeconfig, Some(&token)).unwrap();
    let mut dashboard = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args([
            "dashboard",
            "--serve",
            "--port",
            "0",
            "-m",
            MODEL,
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(dashboard.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), out.next_line())
        .await
        .expect("the dashboard prints its URL within 20 s")
        .unwrap()
        .expect("the dashboard printed nothing");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let http = reqwest::Client::new();

    // The watch fails with 403; the page says so once it has (bounded wait), and lists nothing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let training = loop {
        let body = http
            .get(format!("{url}/training"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if body.contains("forbidden (403)") {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the training page never said the user may not watch TrainJobs:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(training.contains("role=\"alert\""), "{training}");
    assert!(!training.contains("private-run"), "{training}");

    // The navigation lists the pages whose kinds this cluster serves: only TrainJobs so far.
    let nav = |page: &str| {
        let start = page.find("<nav").expect("a navigation");
        page[start..start + page[start..].find("</nav>").unwrap()].to_owned()
    };
    let listed = nav(&training);
    assert!(listed.contains("href=\"/training\""), "{listed}");
    for hidden in ["/models", "/notebooks", "/tuning", "/runs", "/profiles"] {
        assert!(!listed.contains(&format!("href=\"{hidden}\"")), "{listed}");
    }
    // Notebooks get installed while the dashboard runs: their page appears at the next look.
    let yaml = std::fs::read_to_string(root.join("charms/workspaces/templates/notebook-crd.yaml"))
        .unwrap();
    env.sim
        .put(serde_saphyr::from_str::<serde_json::Value>(&yaml).unwrap())
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let page = http.get(format!("{url}/training")).send().await.unwrap();
        let listed = nav(&page.text().await.unwrap());
        if listed.contains("href=\"/notebooks\"") {
            assert!(!listed.contains("href=\"/profiles\""), "{listed}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Notebooks page never appeared after its CRD was installed:\n{listed}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let overview = http.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(overview.status(), 502);
    let overview = overview.text().await.unwrap();
    assert!(overview.contains("forbidden (403)"), "{overview}");

    // Nor can it write there: the create is refused by the cluster, and the page says why.
    let create = http
        .post(format!("{url}/training"))
        .header("origin", &url)
        .form(&[
            ("name", "sneaky"),
            ("model", "mlp"),
            ("epochs", "1"),
            ("batch_size", ""),
            ("learning_rate", ""),
            ("dataset", "file:///d"),
            ("output", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), 502);
    assert!(create.text().await.unwrap().contains("forbidden (403)"));
    assert!(
        env.sim
            .get("wharf.dev/v1alpha1", "TrainJob", MODEL, "sneaky")
            .is_none()
    );
}

/// The in-cluster dashboard (`--trust-proxy-headers`, as the dashboard charm runs it) acts as the
/// user the gateway's login names, by impersonation: its own ServiceAccount may impersonate and
/// watch, nothing else. Alice, bound to a Role in the model, sees and creates TrainJobs; Bob, with
/// no binding, sees why not and creates nothing, though the dashboard itself may watch them; a
/// request without the headers (it did not come through the gateway) is refused, and so is a
/// `system:` group. The gateway's public host name passes the Host guard; another name does not.
/// kube-sim checks impersonation as the API server does: without `impersonate` the SA is 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_cluster_dashboard_acts_as_the_user_behind_the_gateway() {
    use serde_json::json;
    use std::time::Duration;

    let env = start(fast()).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("charms/trainer/templates/crd.yaml")).unwrap();
    env.sim
        .put(serde_saphyr::from_str::<serde_json::Value>(&yaml).unwrap())
        .unwrap();
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MODEL}}))
        .unwrap();
    let job = json!({"apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob",
        "metadata": {"name": "private-run", "namespace": MODEL},
        "spec": {"model": "mlp", "dataset": {"uri": "file:///d"}, "output": {"uri": "pvc://m/x"}}});
    put_when_served(&env, job).await;
    // The dashboard charm's own RBAC, as wharf would apply it.
    let kinds = put_template(&env, "dashboard", "00-rbac.yaml");
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding"
        ]
    );
    // Alice may read and create TrainJobs in the model; Bob has no binding.
    env.sim
        .put(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "trainer", "namespace": MODEL},
            "rules": [{"apiGroups": ["wharf.dev"], "resources": ["trainjobs"],
                       "verbs": ["get", "list", "watch", "create"]}]}),
        )
        .unwrap();
    env.sim
        .put(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "alice-trains", "namespace": MODEL},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "trainer"},
            "subjects": [{"kind": "User", "name": "alice@example.com"}]}),
        )
        .unwrap();

    // kube-sim: a ServiceAccount without `impersonate` cannot act as Alice.
    let plain = env.sim.token_for_service_account(MODEL, "plain");
    let refused = reqwest::Client::new()
        .get(format!(
            "{}/apis/wharf.dev/v1alpha1/namespaces/{MODEL}/trainjobs",
            env.sim.url()
        ))
        .bearer_auth(&plain)
        .header("Impersonate-User", "alice@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let refused = refused.text().await.unwrap();
    assert!(
        refused.contains("cannot impersonate resource \\\"users\\\""),
        "{refused}"
    );

    let (_dashboard, url) = serve_behind_the_gateway(&env, &[]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let as_user = |path: &str, user: Option<&str>| {
        let mut r = http
            .get(format!("{url}{path}"))
            .header("host", "wharf.example.test");
        if let Some(u) = user {
            r = r.header("x-auth-request-email", u);
        }
        r
    };

    // Alice sees the TrainJob once the dashboard's watch has it (bounded wait).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = as_user("/training", Some("alice@example.com"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if body.contains("private-run") {
            assert!(!body.contains("role=\"alert\""), "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Alice never saw her model's TrainJob:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Bob does not, though the dashboard's own watch holds it: the page says why.
    for path in ["/training", "/training/events"] {
        let mut resp = as_user(path, Some("bob@example.com")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        // The event stream stays open: read its first event only.
        let mut body = String::new();
        while !body.contains("</p>") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
                .await
                .expect("a first event within 10 s")
                .unwrap()
                .expect("the stream ended early");
            body.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(body.contains("forbidden (403)"), "{path}: {body}");
        assert!(body.contains("bob@example.com"), "{path}: {body}");
        assert!(!body.contains("private-run"), "{path}: {body}");
    }
    let overview = as_user("/", Some("bob@example.com")).send().await.unwrap();
    assert_eq!(overview.status(), 502);

    // No login headers: it did not come through the gateway. A system: group is refused too.
    let anonymous = as_user("/training", None).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let masters = as_user("/training", Some("alice@example.com"))
        .header("x-auth-request-groups", "system:masters")
        .send()
        .await
        .unwrap();
    assert_eq!(masters.status(), 401);
    // Another host name is refused (DNS rebinding); the gateway's public one passed above.
    let rebound = http
        .get(format!("{url}/training"))
        .header("host", "evil.example")
        .header("x-auth-request-email", "alice@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 421);

    // Writes: as Bob the cluster refuses; as Alice, from the public origin, it is created.
    let form = |name: &'static str| {
        vec![
            ("name", name),
            ("model", "mlp"),
            ("epochs", "1"),
            ("batch_size", ""),
            ("learning_rate", ""),
            ("dataset", "file:///d"),
            ("output", ""),
        ]
    };
    let post = |user: &str, name: &'static str| {
        http.post(format!("{url}/training"))
            .header("host", "wharf.example.test")
            .header("origin", "https://wharf.example.test")
            .header("x-auth-request-email", user)
            .form(&form(name))
            .send()
    };
    let bob = post("bob@example.com", "bobs-run").await.unwrap();
    assert_eq!(bob.status(), 502);
    assert!(bob.text().await.unwrap().contains("forbidden (403)"));
    assert!(
        env.sim
            .get("wharf.dev/v1alpha1", "TrainJob", MODEL, "bobs-run")
            .is_none()
    );
    let alice = post("alice@example.com", "alices-run").await.unwrap();
    assert_eq!(alice.status(), 303, "{:?}", alice.text().await);
    assert!(
        env.sim
            .get("wharf.dev/v1alpha1", "TrainJob", MODEL, "alices-run")
            .is_some()
    );
}

/// Puts the objects of `charm`'s template `file` into the simulator as wharf renders them with the
/// charm's defaults (the application named like the charm, in the model), for templates whose only
/// tags are comments, the application's names and `{% if config[...] %}` on options that default
/// to true. The kinds, in order.
fn put_template(env: &Env, charm: &str, file: &str) -> Vec<String> {
    use serde_json::json;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(root.join("charms").join(charm).join("templates").join(file))
            .unwrap()
            .replace("{{ app.name }}", charm)
            .replace("{{ app.namespace }}", MODEL);
    // Drop `{#- … -#}` comments and `{%- … %}` lines (conditions on true-by-default options).
    let mut yaml = String::new();
    let mut in_comment = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("{#") {
            in_comment = !t.contains("#}");
            continue;
        }
        if in_comment {
            in_comment = !t.contains("#}");
            continue;
        }
        if t.starts_with("{%") {
            continue;
        }
        assert!(
            !line.contains("{{"),
            "{file}: a template tag this test cannot fill: {line}"
        );
        yaml.push_str(line);
        yaml.push('\n');
    }
    let mut kinds = Vec::new();
    for doc in yaml.split("\n---\n").filter(|d| !d.trim().is_empty()) {
        let mut obj: serde_json::Value = serde_saphyr::from_str(doc).unwrap();
        kinds.push(obj["kind"].as_str().unwrap().to_owned());
        if !obj["kind"].as_str().unwrap().starts_with("Cluster") {
            obj["metadata"]["namespace"] = json!(MODEL);
        }
        env.sim.put(obj).unwrap();
    }
    kinds
}

/// `wharf dashboard --serve --trust-proxy-headers` as the charm runs it, authenticated as the
/// charm's ServiceAccount (its RBAC must be in the simulator), with `extra` flags. The process
/// (killed on drop) and its URL.
async fn serve_behind_the_gateway(env: &Env, extra: &[&str]) -> (tokio::process::Child, String) {
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, BufReader};
    let kubeconfig = env.dir.path().join("dashboard.kubeconfig");
    let token = env.sim.token_for_service_account(MODEL, "dashboard");
    env.sim.write_kubeconfig(&kubeconfig, Some(&token)).unwrap();
    let mut dashboard = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args([
            "dashboard",
            "--serve",
            "--port",
            "0",
            "--trust-proxy-headers",
        ])
        .args(["--public-url", "https://wharf.example.test/", "-m", MODEL])
        .args(extra)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(dashboard.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), out.next_line())
        .await
        .expect("the dashboard prints its URL within 20 s")
        .unwrap()
        .expect("the dashboard printed nothing");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    (dashboard, url)
}

/// A first login gets a workspace (issue 15): the in-cluster dashboard with `--create-profiles`
/// and the charm's RBAC (create, never update or delete, Profiles) makes a Profile owned by the
/// signed-in email, named after its local part, once; a second user with the same local part gets
/// the next free name; someone who owns a Profile already gets no other; the overview names the
/// workspace, even to a user who may not read the platform's model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_login_gets_a_profile_named_after_the_email_once() {
    use serde_json::json;

    let env = start(fast()).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("charms/workspaces/templates/crd.yaml")).unwrap();
    env.sim
        .put(serde_saphyr::from_str::<serde_json::Value>(&yaml).unwrap())
        .unwrap();
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MODEL}}))
        .unwrap();
    put_template(&env, "dashboard", "00-rbac.yaml");
    assert_eq!(
        put_template(&env, "dashboard", "01-profiles-rbac.yaml"),
        ["ClusterRole", "ClusterRoleBinding"]
    );
    // Carol has a profile already, under another name; the Profile CRD takes a moment.
    let carols = json!({"apiVersion": "kubeflow.org/v1", "kind": "Profile",
        "metadata": {"name": "carol-team"}, "spec": {"owner": {"kind": "User", "name": "carol@example.com"}}});
    put_when_served(&env, carols).await;

    let (_dashboard, url) = serve_behind_the_gateway(&env, &["--create-profiles"]).await;
    let http = reqwest::Client::new();
    let visit = |email: &str| {
        http.get(format!("{url}/"))
            .header("host", "wharf.example.test")
            .header("x-auth-request-email", email)
            .send()
    };
    let owners = || -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = env
            .sim
            .list("kubeflow.org/v1", "Profile", None)
            .iter()
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap().to_owned(),
                    p["spec"]["owner"]["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        all.sort();
        all
    };

    let page = visit("Alice@Example.com")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Your workspace: namespace <code>alice</code>"),
        "{page}"
    );
    visit("Alice@Example.com").await.unwrap();
    visit("alice@other.example").await.unwrap();
    let page = visit("carol@example.com")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<code>carol-team</code>"), "{page}");
    assert_eq!(
        owners(),
        [
            ("alice".to_owned(), "Alice@Example.com".to_owned()),
            ("alice-2".to_owned(), "alice@other.example".to_owned()),
            ("carol-team".to_owned(), "carol@example.com".to_owned()),
        ]
    );
    // Without the gateway's headers nothing is made.
    let anonymous = http
        .get(format!("{url}/"))
        .header("host", "wharf.example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(owners().len(), 3);
}

/// The Notebooks page (issues 15 and 17) acts as the signed-in user: Alice, who may edit in her
/// profile's namespace (a RoleBinding to `edit`, which reaches Notebooks through the workspaces
/// charm's aggregated ClusterRole, as the profile operator makes it), lists, starts (as the
/// profile's default-editor, like `wharf notebook create`) and deletes notebooks there; Bob gets
/// the cluster's refusal and changes nothing; a bad name is refused before any write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notebooks_page_lists_starts_and_deletes_with_the_users_rights() {
    use serde_json::json;
    use std::time::Duration;

    let env = start(fast()).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("charms/workspaces/templates/notebook-crd.yaml"))
        .unwrap();
    env.sim
        .put(serde_saphyr::from_str::<serde_json::Value>(&yaml).unwrap())
        .unwrap();
    put_template(&env, "workspaces", "05-user-roles.yaml");
    for ns in [MODEL, "alice"] {
        env.sim
            .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
    }
    env.sim
        .put(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "namespace-admin", "namespace": "alice"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice@example.com"}]}))
        .unwrap();
    put_template(&env, "dashboard", "00-rbac.yaml");
    let (_dashboard, url) = serve_behind_the_gateway(&env, &[]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |user: &str| {
        http.get(format!("{url}/notebooks?namespace=alice"))
            .header("host", "wharf.example.test")
            .header("x-auth-request-email", user)
            .send()
    };
    let post = |user: &str, path: &str, form: Vec<(&'static str, &'static str)>| {
        http.post(format!("{url}{path}"))
            .header("host", "wharf.example.test")
            .header("origin", "https://wharf.example.test")
            .header("x-auth-request-email", user)
            .form(&form)
            .send()
    };
    let notebook = |name: &str| env.sim.get("kubeflow.org/v1", "Notebook", "alice", name);

    // The CRD is served after a moment: until then the page says Notebooks are not served.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = get("alice@example.com")
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if page.contains("id=\"no-notebooks\"") {
            assert!(
                page.contains("<label for=\"nb-name\">Name</label>"),
                "{page}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = post(
        "alice@example.com",
        "/notebooks",
        vec![("namespace", "alice"), ("name", "nb"), ("image", "minimal")],
    )
    .await
    .unwrap();
    assert_eq!(started.status(), 303, "{:?}", started.text().await);
    let made = notebook("nb").expect("the notebook was created");
    let pod = &made["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "default-editor");
    assert_eq!(pod["containers"][0]["image"], "minimal");
    let page = get("alice@example.com")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<a href=\"/notebook/alice/nb/\">nb</a>"),
        "{page}"
    );

    // Bob may not: the cluster's 403 is shown, nothing changes.
    let bob = post(
        "bob@example.com",
        "/notebooks",
        vec![("namespace", "alice"), ("name", "bobs"), ("image", "scipy")],
    )
    .await
    .unwrap();
    assert_eq!(bob.status(), 502);
    assert!(bob.text().await.unwrap().contains("forbidden (403)"));
    assert!(notebook("bobs").is_none());
    let bob = post(
        "bob@example.com",
        "/notebooks/delete",
        vec![("namespace", "alice"), ("name", "nb"), ("confirm", "yes")],
    )
    .await
    .unwrap();
    assert_eq!(bob.status(), 502);
    assert!(notebook("nb").is_some());
    let page = get("bob@example.com").await.unwrap().text().await.unwrap();
    assert!(
        page.contains("forbidden (403)") && !page.contains("data-notebook"),
        "{page}"
    );

    // A name that cannot name a Service is refused before any write.
    let bad = post(
        "alice@example.com",
        "/notebooks",
        vec![
            ("namespace", "alice"),
            ("name", "Bad_Name"),
            ("image", "scipy"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("Bad_Name"));

    let deleted = post(
        "alice@example.com",
        "/notebooks/delete",
        vec![("namespace", "alice"), ("name", "nb"), ("confirm", "yes")],
    )
    .await
    .unwrap();
    assert_eq!(deleted.status(), 303);
    assert!(notebook("nb").is_none());
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

/// A stand-in for Prometheus' HTTP API: `/api/v1/query` answers the monitoring charm's two
/// recording rules (as Prometheus would, `NaN` for a quantile without requests) and records
/// every query it was asked.
async fn fake_prometheus() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use axum::extract::{Query, State};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/api/v1/query",
            axum::routing::get(
                |State(asked): State<Arc<Mutex<Vec<String>>>>,
                 Query(q): Query<HashMap<String, String>>| async move {
                    let query = q.get("query").cloned().unwrap_or_default();
                    asked.lock().unwrap().push(query.clone());
                    let vector = |fashion: &str, idle: &str| {
                        serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": [
                            {"metric": {"namespace": MODEL, "inferenceservice": "fashion"}, "value": [1.7e9, fashion]},
                            {"metric": {"namespace": MODEL, "inferenceservice": "idle"}, "value": [1.7e9, idle]},
                        ]}})
                    };
                    axum::Json(match query.as_str() {
                        "inferenceservice:requests:rate5m" => vector("12.5", "0"),
                        "inferenceservice:request_duration_seconds:p99_5m" => vector("0.0042", "NaN"),
                        _ => serde_json::json!({"status": "error", "errorType": "bad_data", "error": "unexpected query"}),
                    })
                },
            ),
        )
        .with_state(asked.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, asked)
}

/// The shipped `full` bundle runs the monitoring charm: `wharf status` finds its Prometheus
/// Service and asks it, through the API server's service proxy, for each InferenceService's
/// request rate and p99 (the charm's recording rules), shown as a table and in JSON. While
/// Prometheus has no ready endpoint, status still succeeds and says why the rates are missing.
/// (`--set monitoring.grafana=true` adds Grafana, which the deploy waits for like the rest.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_each_inferenceservices_rate_and_p99_from_prometheus() {
    let env = start(fast()).await;
    let args = [
        &["deploy", "full", "--timeout", "120s"][..],
        &["--set", "monitoring.grafana=true"],
        &LOGIN,
    ]
    .concat();
    let out = env.command_shipped(&args).output().await.unwrap();
    assert!(out.status.success(), "deploy full: {}", text(&out.stderr));
    // With Grafana (the deploy waited for it to be ready).
    let grafana = env
        .sim
        .get("apps/v1", "Deployment", MODEL, "monitoring-grafana")
        .expect("Grafana's Deployment");
    assert_eq!(grafana["status"]["readyReplicas"], 1, "{grafana}");

    // The Service exists, but nothing answers behind it (kube-sim: no backend set).
    let out = env.wharf(&["status"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("no request rates") && s.contains("no endpoints available for service"),
        "{s}"
    );
    assert!(!s.contains("Req/s"), "{s}");

    let (addr, asked) = fake_prometheus().await;
    env.sim.set_service_backend(MODEL, "monitoring", addr);
    let out = env.wharf(&["status"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    let table: Vec<&str> = s
        .lines()
        .skip_while(|l| !l.starts_with("InferenceService"))
        .collect();
    assert_eq!(
        table,
        [
            "InferenceService  Namespace  Req/s  p99",
            "fashion           tiny       12.50  4.20 ms",
            "idle              tiny       0.00   -",
        ],
        "{s}"
    );
    // The two recording rules, asked side by side.
    let mut queries = asked.lock().unwrap().clone();
    queries.sort();
    assert_eq!(
        queries,
        [
            "inferenceservice:request_duration_seconds:p99_5m",
            "inferenceservice:requests:rate5m"
        ]
    );
    let json = env.status_json().await;
    assert_eq!(json["models"][0]["inferenceservice"], "fashion", "{json}");
    assert_eq!(json["models"][0]["requests_per_second"], 12.5);
    assert_eq!(json["models"][0]["p99_seconds"], 0.0042);
    assert!(json["models"][1]["p99_seconds"].is_null(), "{json}");
    assert!(json.get("models_note").is_none(), "{json}");
}

/// The Tuning and Pipelines pages (issue 17) show a profile namespace's OptimizationJobs (the
/// `wharf tuning` rows and each job's trials, best marked) and Argo Workflows (phase, steps, a link
/// to Argo's page behind /pipelines/) to its owner, who reaches both kinds only through the
/// trainer's and argo charms' aggregated roles; another user gets the cluster's 403 and no rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tuning_and_pipelines_pages_show_a_profiles_runs_to_its_owner_only() {
    use serde_json::json;

    let env = start(fast()).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for crd in [
        "charms/trainer/templates/optimizationjob-crd.yaml",
        "tests/fixtures/pipeline/workflow-crd.yaml",
    ] {
        let yaml = std::fs::read_to_string(root.join(crd)).unwrap();
        env.sim
            .put(serde_saphyr::from_str::<serde_json::Value>(&yaml).unwrap())
            .unwrap();
    }
    put_template(&env, "trainer", "05-user-roles.yaml");
    put_template(&env, "argo", "05-user-roles.yaml");
    for ns in [MODEL, "alice"] {
        env.sim
            .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
    }
    env.sim
        .put(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "namespace-admin", "namespace": "alice"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice@example.com"}]}))
        .unwrap();
    put_template(&env, "dashboard", "00-rbac.yaml");
    // An OptimizationJob two trials in, and a Workflow whose first step has finished, with the
    // statuses their controllers write (the CRDs take a moment to be served).
    let oj = json!({"apiVersion": "wharf.dev/v1alpha1", "kind": "OptimizationJob",
        "metadata": {"name": "fashion-tuning", "namespace": "alice"},
        "spec": {"objectives": [{"metric": "accuracy", "direction": "maximize"}],
            "searchAlgorithm": {"name": "tpe", "seed": 42},
            "parameters": [{"name": "learningRate", "distribution": "logUniform", "min": 0.0001, "max": 0.01}],
            "numTrials": 4, "parallelTrials": 1,
            "trainJobTemplate": {"model": "mlp", "epochs": 2,
                "dataset": {"uri": "file:///usr/share/datasets/fashion-mnist"},
                "output": {"uri": "s3://wharf/models/alice/tuned"}}}});
    let wf = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": "train-predict-x7k2p", "namespace": "alice"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]}});
    put_when_served(&env, oj).await;
    put_when_served(&env, wf).await;
    let http = reqwest::Client::new();
    let status = |path: &str, body: serde_json::Value| {
        http.patch(format!("{}{path}", env.sim.url()))
            .bearer_auth("admin-token")
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string())
            .send()
    };
    let patched = status(
        "/apis/wharf.dev/v1alpha1/namespaces/alice/optimizationjobs/fashion-tuning/status",
        json!({"status": {"state": "Running", "progress": "2/4",
            "trials": [
                {"name": "fashion-tuning-trial-0", "index": 0, "state": "Succeeded",
                 "parameters": {"learningRate": 0.001}, "value": 0.81},
                {"name": "fashion-tuning-trial-1", "index": 1, "state": "Succeeded",
                 "parameters": {"learningRate": 0.004}, "value": 0.84}],
            "result": {"trialName": "fashion-tuning-trial-1", "trainJob": "fashion-tuning-trial-1",
                "parameters": {"learningRate": 0.004}, "value": 0.84}}}),
    )
    .await
    .unwrap();
    assert!(patched.status().is_success(), "{:?}", patched.text().await);
    let patched = http
        .patch(format!(
            "{}/apis/argoproj.io/v1alpha1/namespaces/alice/workflows/train-predict-x7k2p",
            env.sim.url()
        ))
        .bearer_auth("admin-token")
        .header("content-type", "application/merge-patch+json")
        .body(
            json!({"status": {"phase": "Running", "startedAt": "2026-12-02T10:00:00Z",
                "nodes": {
                    "a": {"type": "Pod", "displayName": "train", "phase": "Succeeded"},
                    "b": {"type": "Pod", "displayName": "predict", "phase": "Running"}}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success(), "{:?}", patched.text().await);

    let (_dashboard, url) = serve_behind_the_gateway(&env, &[]).await;
    let get = |path: &str, user: &str| {
        http.get(format!("{url}{path}?namespace=alice"))
            .header("host", "wharf.example.test")
            .header("x-auth-request-email", user)
            .send()
    };
    let tuning = get("/tuning", "alice@example.com").await.unwrap();
    assert_eq!(tuning.status(), 200);
    let tuning = tuning.text().await.unwrap();
    for want in [
        "<td>fashion-tuning</td><td>Running</td><td>2/4</td><td>tpe</td><td>accuracy (maximize)</td><td>0.84</td><td>fashion-tuning-trial-1</td>",
        "<td>fashion-tuning-trial-1</td><td>Succeeded</td><td>0.004</td><td>0.84</td><td>*</td>",
        "<td>fashion-tuning-trial-0</td><td>Succeeded</td><td>0.001</td><td>0.81</td><td></td>",
        "aria-label=\"Delete OptimizationJob fashion-tuning and its trials (asks first)\"",
    ] {
        assert!(tuning.contains(want), "no `{want}` in:\n{tuning}");
    }
    let runs = get("/runs", "alice@example.com")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        "<a href=\"/pipelines/workflows/alice/train-predict-x7k2p\">",
        "<td class=\"phase\">Running</td><td>1 of 2 succeeded</td>",
        "aria-label=\"Delete pipeline run train-predict-x7k2p (asks first)\"",
    ] {
        assert!(runs.contains(want), "no `{want}` in:\n{runs}");
    }
    for path in ["/tuning", "/runs"] {
        let page = get(path, "bob@example.com")
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("forbidden (403)"), "{path}: {page}");
        assert!(
            !page.contains("fashion-tuning") && !page.contains("x7k2p"),
            "{path}: {page}"
        );
    }

    // Create and delete from the pages, with the user's rights (POSTs come from the gateway's
    // origin; redirects are looked at, not followed).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |user: &str, path: &str, form: Vec<(&str, String)>| {
        http.post(format!("{url}{path}"))
            .header("host", "wharf.example.test")
            .header("origin", "https://wharf.example.test")
            .header("x-auth-request-email", user)
            .form(&form)
            .send()
    };
    let alice = "alice@example.com";
    let tuning_form = |name: &str, lr_max: &str| {
        [
            ("namespace", "alice"),
            ("name", name),
            ("model", "mlp"),
            ("algorithm", "random"),
            ("trials", "4"),
            ("parallel", "2"),
            ("lr_min", "0.001"),
            ("lr_max", lr_max),
            ("batch_sizes", "32, 64"),
            ("epochs", "2"),
            ("dataset", "file:///usr/share/datasets/fashion-mnist"),
            ("output", ""),
        ]
        .map(|(k, v)| (k, v.to_owned()))
        .to_vec()
    };
    let oj = |name: &str| {
        env.sim
            .get("wharf.dev/v1alpha1", "OptimizationJob", "alice", name)
    };
    // A bad field is named and nothing is created.
    let bad = post(alice, "/tuning", tuning_form("quick", "0.0001"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let bad = bad.text().await.unwrap();
    assert!(
        bad.contains("Learning rate to: 0.0001 is not above the lower end 0.001"),
        "{bad}"
    );
    assert!(oj("quick").is_none());
    let created = post(alice, "/tuning", tuning_form("quick", "0.01"))
        .await
        .unwrap();
    assert_eq!(created.status(), 303, "{:?}", created.text().await);
    let quick = oj("quick").expect("the form created the OptimizationJob");
    assert_eq!(quick["spec"]["searchAlgorithm"]["name"], "random");
    assert_eq!(quick["spec"]["parameters"][1]["values"], json!([32, 64]));
    assert_eq!(quick["spec"]["numTrials"], 4);
    assert_eq!(
        quick["spec"]["trainJobTemplate"]["output"]["uri"],
        "pvc://models/quick"
    );
    // Bob may not create in Alice's namespace: the cluster's 403, nothing written.
    let refused = post("bob@example.com", "/tuning", tuning_form("bobs", "0.01"))
        .await
        .unwrap();
    assert_eq!(refused.status(), 502);
    assert!(refused.text().await.unwrap().contains("forbidden (403)"));
    assert!(oj("bobs").is_none());
    // Delete asks first, naming the trials that go; unconfirmed, nothing is deleted.
    let ask = http
        .get(format!("{url}/tuning/delete?namespace=alice&name=quick"))
        .header("host", "wharf.example.test")
        .header("x-auth-request-email", alice)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ask.contains("quick-trial-"), "{ask}");
    let which = || {
        vec![
            ("namespace", "alice".to_owned()),
            ("name", "quick".to_owned()),
        ]
    };
    let unconfirmed = post(alice, "/tuning/delete", which()).await.unwrap();
    assert_eq!(unconfirmed.status(), 422);
    assert!(oj("quick").is_some(), "deleted without a confirmation");
    let mut yes = which();
    yes.push(("confirm", "yes".to_owned()));
    let deleted = post(alice, "/tuning/delete", yes).await.unwrap();
    assert_eq!(deleted.status(), 303);
    assert!(oj("quick").is_none(), "not deleted");

    // A pipeline run from the pasted YAML, compiled as `wharf pipeline run` compiles it.
    let example =
        std::fs::read_to_string(root.join("examples/pipelines/fashion-mnist-train-predict.yaml"))
            .unwrap();
    let run_form = |params: &str| {
        vec![
            ("namespace", "alice".to_owned()),
            ("pipeline", example.clone()),
            ("params", params.to_owned()),
        ]
    };
    let workflows = || {
        env.sim
            .list("argoproj.io/v1alpha1", "Workflow", Some("alice"))
    };
    let bad = post(alice, "/runs", run_form("epochs=two")).await.unwrap();
    assert_eq!(bad.status(), 422);
    let bad = bad.text().await.unwrap();
    assert!(bad.contains("epochs=two"), "{bad}");
    assert_eq!(workflows().len(), 1);
    let submitted = post(alice, "/runs", run_form("epochs=1\nmodel=cnn"))
        .await
        .unwrap();
    assert_eq!(submitted.status(), 303, "{:?}", submitted.text().await);
    let runs = workflows();
    let run = runs
        .iter()
        .find(|w| w["metadata"]["name"] != "train-predict-x7k2p")
        .expect("the form submitted a Workflow");
    let arguments = run["spec"]["arguments"]["parameters"].to_string();
    assert!(
        arguments.contains(r#"{"name":"epochs","value":"1"}"#)
            && arguments.contains(r#"{"name":"model","value":"cnn"}"#),
        "{arguments}"
    );
    let refused = post("bob@example.com", "/runs", run_form(""))
        .await
        .unwrap();
    assert_eq!(refused.status(), 502);
    assert_eq!(workflows().len(), 2);
    let gone = vec![
        ("namespace", "alice".to_owned()),
        ("name", "train-predict-x7k2p".to_owned()),
        ("confirm", "yes".to_owned()),
    ];
    let deleted = post(alice, "/runs/delete", gone).await.unwrap();
    assert_eq!(deleted.status(), 303);
    assert_eq!(workflows().len(), 1);
}

/// The next server-sent event of `stream` (its `data:` lines joined), waiting at most 10 s.
/// `buffer` keeps what arrived after it for the next call.
async fn next_event(stream: &mut reqwest::Response, buffer: &mut String) -> String {
    let read = async {
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|l| l.strip_prefix(' ').unwrap_or(l))
                    .collect();
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return data.join("\n");
            }
            let chunk = stream.chunk().await.unwrap().expect("the stream ended");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("an event within 10 s")
}

/// Live updates on the profile pages (issue 17): the Notebooks, Tuning and Pipelines pages' event
/// streams, fed by the dashboard's shared per-namespace watches (its ServiceAccount's rights from
/// the charm's 02-live-rbac.yaml), deliver a change to a Notebook, an OptimizationJob and a
/// Workflow in Alice's namespace to Alice, and only that namespace's objects; Bob, who may not list
/// there, is refused with the cluster's 403 and receives nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_pages_stream_changes_to_those_who_may_list_them() {
    use serde_json::json;
    use std::time::Duration;

    let env = start(fast()).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for crd in [
        "charms/workspaces/templates/notebook-crd.yaml",
        "charms/trainer/templates/optimizationjob-crd.yaml",
        "tests/fixtures/pipeline/workflow-crd.yaml",
    ] {
        let yaml = std::fs::read_to_string(root.join(crd)).unwrap();
        env.sim
            .put(serde_saphyr::from_str::<serde_json::Value>(&yaml).unwrap())
            .unwrap();
    }
    for charm in ["workspaces", "trainer", "argo"] {
        put_template(&env, charm, "05-user-roles.yaml");
    }
    for ns in [MODEL, "alice"] {
        env.sim
            .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
    }
    env.sim
        .put(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "namespace-admin", "namespace": "alice"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice@example.com"}]}))
        .unwrap();
    put_template(&env, "dashboard", "00-rbac.yaml");
    assert_eq!(
        put_template(&env, "dashboard", "02-live-rbac.yaml"),
        ["ClusterRole", "ClusterRoleBinding"]
    );

    // Per page: its path, a first object in Alice's namespace, and the change made while Alice's
    // stream is open (a new object of the kind).
    let notebook = |ns: &str, name: &str| {
        json!({"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"spec": {"containers": [{"name": name, "image": "minimal"}]}}}})
    };
    let optimizationjob = |ns: &str, name: &str| {
        json!({"apiVersion": "wharf.dev/v1alpha1", "kind": "OptimizationJob",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"objectives": [{"metric": "accuracy", "direction": "maximize"}],
                "searchAlgorithm": {"name": "tpe", "seed": 42},
                "parameters": [{"name": "learningRate", "distribution": "logUniform", "min": 0.0001, "max": 0.01}],
                "numTrials": 2, "parallelTrials": 1,
                "trainJobTemplate": {"model": "mlp", "epochs": 1,
                    "dataset": {"uri": "file:///usr/share/datasets/fashion-mnist"},
                    "output": {"uri": "s3://wharf/models/alice/tuned"}}}})
    };
    let workflow = |ns: &str, name: &str| {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]}})
    };
    type Make = dyn Fn(&str, &str) -> serde_json::Value;
    let pages: [(&str, &Make); 3] = [
        ("/notebooks", &notebook),
        ("/tuning", &optimizationjob),
        ("/runs", &workflow),
    ];
    // The CRDs take a moment to be served. The model's namespace gets one of each too: no stream
    // of Alice's namespace may show them.
    for (_, make) in pages {
        put_when_served(&env, make("alice", "first-in-alice")).await;
        env.sim.put(make(MODEL, "not-alices")).unwrap();
    }

    let (_dashboard, url) = serve_behind_the_gateway(&env, &[]).await;
    let http = reqwest::Client::new();
    let stream = |path: &str, user: &str| {
        http.get(format!("{url}{path}/events?namespace=alice"))
            .header("host", "wharf.example.test")
            .header("x-auth-request-email", user)
            .send()
    };
    for (path, make) in pages {
        // The page itself holds the live region the script follows.
        let page = http
            .get(format!("{url}{path}?namespace=alice"))
            .header("host", "wharf.example.test")
            .header("x-auth-request-email", "alice@example.com")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains(&format!("data-live=\"{path}/events?namespace=alice\"")),
            "{path}: no live region in\n{page}"
        );

        let mut alice = stream(path, "alice@example.com").await.unwrap();
        assert_eq!(alice.status(), 200, "{path}");
        assert_eq!(
            alice.headers()["content-type"],
            "text/event-stream",
            "{path}"
        );
        let mut buffer = String::new();
        let first = next_event(&mut alice, &mut buffer).await;
        assert!(first.contains("first-in-alice"), "{path}: {first}");
        assert!(!first.contains("not-alices"), "{path}: {first}");
        assert!(!first.contains("role=\"alert\""), "{path}: {first}");

        env.sim.put(make("alice", "made-while-watching")).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let event = next_event(&mut alice, &mut buffer).await;
            assert!(!event.contains("not-alices"), "{path}: {event}");
            if event.contains("made-while-watching") {
                assert!(event.contains("first-in-alice"), "{path}: {event}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path}: the change never arrived; last event:\n{event}"
            );
        }

        // Bob may not list there: the cluster's 403, and not a byte of Alice's namespace.
        let bob = stream(path, "bob@example.com").await.unwrap();
        assert_eq!(bob.status(), 403, "{path}");
        assert_ne!(
            bob.headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("text/event-stream"),
            "{path}"
        );
        let refusal = bob.text().await.unwrap();
        assert!(refusal.contains("forbidden (403)"), "{path}: {refusal}");
        assert!(
            !refusal.contains("first-in-alice") && !refusal.contains("made-while-watching"),
            "{path}: {refusal}"
        );
        // Nor without the gateway's login.
        let anonymous = http
            .get(format!("{url}{path}/events?namespace=alice"))
            .header("host", "wharf.example.test")
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
    }
}

/// Waits (at most 10 s) until `put` of `obj` succeeds: a CRD's kind is served a moment after it.
async fn put_when_served(env: &Env, obj: serde_json::Value) {
    use std::time::Duration;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = env.sim.put(obj.clone()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never accepted: {e:#}\n{obj}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Profiles page (issue 17) as the signed-in user: Alice, who may list, create and delete
/// Profiles (an administrator), sees all of them with owner, namespace and state, and links to each
/// one's pages; Bob, who may not list Profiles, still sees his own (the cluster lets him read his
/// namespace, where the workspaces operator bound him to `edit`) and no one else's, and may neither
/// create nor delete; Carol, whose profile has no namespace, sees none. A refused name is a 422
/// naming the field before any write. Deleting asks first — the confirmation lists the namespace,
/// the notebooks and the volumes that go, and needs the name typed — and nothing changes without
/// it; confirmed, the Profile goes and its namespace with everything in it. The Notebooks page's
/// Delete asks first too (its workspace volume is kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profiles_page_lists_creates_and_deletes_with_the_users_rights() {
    use serde_json::json;
    use std::time::Duration;

    let env = start(fast()).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for crd in ["crd.yaml", "notebook-crd.yaml"] {
        let yaml =
            std::fs::read_to_string(root.join("charms/workspaces/templates").join(crd)).unwrap();
        env.sim
            .put(serde_saphyr::from_str::<serde_json::Value>(&yaml).unwrap())
            .unwrap();
    }
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MODEL}}))
        .unwrap();
    put_template(&env, "workspaces", "05-user-roles.yaml");
    put_template(&env, "dashboard", "00-rbac.yaml");
    // Alice administers Profiles (and may read and edit every namespace); Bob and Carol have no
    // rights on Profiles.
    env.sim
        .put(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "profile-admin"},
            "rules": [{"apiGroups": ["kubeflow.org"], "resources": ["profiles"],
                       "verbs": ["get", "list", "create", "delete"]}]}),
        )
        .unwrap();
    for role in ["profile-admin", "edit"] {
        env.sim
            .put(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": format!("alice-{role}")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice@example.com"}]}))
            .unwrap();
    }
    // Bob's profile as the workspaces operator leaves it: the namespace it owns, Bob's `edit`
    // there, a notebook and its workspace volume. Carol's profile has no namespace (yet).
    for (name, owner) in [("bob", "bob@example.com"), ("carol", "carol@example.com")] {
        put_when_served(
            &env,
            json!({"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": name},
                "spec": {"owner": {"kind": "User", "name": owner}}}),
        )
        .await;
    }
    let uid = env
        .sim
        .get("kubeflow.org/v1", "Profile", "", "bob")
        .unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    env.sim
        .put(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bob",
            "labels": {"wharf.dev/profile": "bob"}, "annotations": {"owner": "bob@example.com"},
            "ownerReferences": [{"apiVersion": "kubeflow.org/v1", "kind": "Profile", "name": "bob",
                "uid": uid, "controller": true, "blockOwnerDeletion": true}]}}),
        )
        .unwrap();
    env.sim
        .put(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "namespace-admin", "namespace": "bob"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob@example.com"}]}))
        .unwrap();
    put_when_served(
        &env,
        json!({"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
            "metadata": {"name": "nb", "namespace": "bob"},
            "spec": {"template": {"spec": {"containers": [{"name": "nb", "image": "minimal"}]}}}}),
    )
    .await;
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "workspace-nb", "namespace": "bob"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}}))
        .unwrap();

    let (_dashboard, url) = serve_behind_the_gateway(&env, &[]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, user: &str| {
        http.get(format!("{url}{path}"))
            .header("host", "wharf.example.test")
            .header("x-auth-request-email", user)
            .send()
    };
    let post = |user: &str, path: &str, form: Vec<(&'static str, &'static str)>| {
        http.post(format!("{url}{path}"))
            .header("host", "wharf.example.test")
            .header("origin", "https://wharf.example.test")
            .header("x-auth-request-email", user)
            .form(&form)
            .send()
    };
    let page = async |path: &str, user: &str| -> (u16, String) {
        let r = get(path, user).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let profiles = || -> Vec<String> {
        let mut names: Vec<String> = env
            .sim
            .list("kubeflow.org/v1", "Profile", None)
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let notebook = || env.sim.get("kubeflow.org/v1", "Notebook", "bob", "nb");

    // Alice sees every profile, with the words of `wharf profile list`, and the links.
    let (status, alice) = page("/profiles", "alice@example.com").await;
    assert_eq!(status, 200, "{alice}");
    for want in [
        "<a href=\"/profiles\" aria-current=\"page\">Profiles</a>",
        "<tr data-profile=\"bob\"><th scope=\"row\">bob</th><td class=\"owner\">bob@example.com</td>\
         <td class=\"namespace\">bob</td><td class=\"ready\">Unknown</td><td class=\"reason\">Pending</td>",
        "<tr data-profile=\"carol\"><th scope=\"row\">carol</th><td class=\"owner\">carol@example.com</td>",
        "<a href=\"/notebooks?namespace=bob\" aria-label=\"Notebooks of bob\">Notebooks</a>",
        "<a href=\"/tuning?namespace=bob\"",
        "<a href=\"/runs?namespace=bob\"",
        "<form method=\"get\" action=\"/profiles/delete\"><input type=\"hidden\" name=\"name\" value=\"bob\">",
        // The owner of a new profile defaults to the signed-in user.
        "<input id=\"pf-owner\" name=\"owner\" value=\"alice@example.com\"",
    ] {
        assert!(alice.contains(want), "no `{want}` in:\n{alice}");
    }
    assert!(!alice.contains("id=\"own-only\""), "{alice}");

    // Bob may not list Profiles: he sees his own, from the namespace the cluster lets him read.
    let (status, bob) = page("/profiles", "bob@example.com").await;
    assert_eq!(status, 200, "{bob}");
    assert!(
        bob.contains("id=\"own-only\"") && bob.contains("forbidden (403)"),
        "{bob}"
    );
    assert!(
        bob.contains(
            "<tr data-profile=\"bob\"><th scope=\"row\">bob</th><td class=\"owner\">bob@example.com</td>\
             <td class=\"namespace\">bob</td><td class=\"ready\">Unknown</td>\
             <td class=\"reason\">namespace Active; you may not read the Profile itself</td>"
        ),
        "{bob}"
    );
    assert!(
        !bob.contains("data-profile=\"carol\"") && !bob.contains("action=\"/profiles/delete\""),
        "{bob}"
    );
    let (_, carol) = page("/profiles", "carol@example.com").await;
    assert!(
        carol.contains("No profile of yours was found") && !carol.contains("data-profile"),
        "{carol}"
    );

    // Create: a refused name is a 422 naming the field, before any write; Bob is refused by the
    // cluster; Alice's becomes `wharf profile create`'s body.
    let bad = post(
        "alice@example.com",
        "/profiles",
        vec![("name", "Bad_Name"), ("owner", "dana@example.com")],
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), 422);
    let bad = bad.text().await.unwrap();
    assert!(bad.contains("Name: profile name `Bad_Name`"), "{bad}");
    assert!(
        bad.contains("value=\"Bad_Name\""),
        "the form keeps what was typed: {bad}"
    );
    let refused = post(
        "bob@example.com",
        "/profiles",
        vec![("name", "bobs-second"), ("owner", "bob@example.com")],
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 502);
    assert!(refused.text().await.unwrap().contains("forbidden (403)"));
    assert_eq!(profiles(), ["bob", "carol"]);
    let made = post(
        "alice@example.com",
        "/profiles",
        vec![
            ("name", "team"),
            ("owner", "dana@example.com"),
            ("cpu", "2"),
            ("memory", "4Gi"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(made.status(), 303, "{:?}", made.text().await);
    let team = env
        .sim
        .get("kubeflow.org/v1", "Profile", "", "team")
        .unwrap();
    assert_eq!(
        team["spec"],
        json!({"owner": {"kind": "User", "name": "dana@example.com"},
            "resourceQuotaSpec": {"hard": {"requests.cpu": "2", "requests.memory": "4Gi"}}})
    );

    // The Notebooks page's Delete asks first; unconfirmed, nothing goes.
    let (status, confirm) =
        page("/notebooks/delete?namespace=bob&name=nb", "bob@example.com").await;
    assert_eq!(status, 200);
    assert!(
        confirm.contains("<h2 id=\"confirm-title\">Delete notebook nb?</h2>")
            && confirm.contains("its workspace volume (your files)")
            && confirm.contains("<input type=\"hidden\" name=\"confirm\" value=\"yes\">"),
        "{confirm}"
    );
    let (_, list) = page("/notebooks?namespace=bob", "bob@example.com").await;
    assert!(
        list.contains("<form method=\"get\" action=\"/notebooks/delete\">"),
        "{list}"
    );
    let unconfirmed = post(
        "bob@example.com",
        "/notebooks/delete",
        vec![("namespace", "bob"), ("name", "nb")],
    )
    .await
    .unwrap();
    assert_eq!(unconfirmed.status(), 422);
    assert!(unconfirmed.text().await.unwrap().contains("Not confirmed"));
    assert!(notebook().is_some());

    // The profile's confirmation says what goes, as Alice may read it; a GET deletes nothing.
    let (status, confirm) = page("/profiles/delete?name=bob", "alice@example.com").await;
    assert_eq!(status, 200, "{confirm}");
    for want in [
        "<h2 id=\"confirm-title\">Delete profile bob?</h2>",
        "<li>the profile bob (owner bob@example.com)</li>",
        "<li>the namespace bob and everything in it: notebooks, TrainJobs, InferenceServices, pipeline runs, secrets</li>",
        "<li>its notebooks: nb</li>",
        "<li>its volumes and the files on them (notebook workspaces: your files): workspace-nb (5Gi)</li>",
        "<label for=\"confirm\">Type <code>bob</code> to confirm</label>",
    ] {
        assert!(confirm.contains(want), "no `{want}` in:\n{confirm}");
    }
    // Carol's has no namespace: only the Profile goes.
    let (_, carols) = page("/profiles/delete?name=carol", "alice@example.com").await;
    assert!(
        carols.contains("no namespace carol exists") && !carols.contains("its notebooks"),
        "{carols}"
    );
    // Bob may not read the Profile: no form, the cluster's refusal.
    let (status, bobs) = page("/profiles/delete?name=bob", "bob@example.com").await;
    assert_eq!(status, 502);
    assert!(
        bobs.contains("forbidden (403)") && !bobs.contains("confirm-form"),
        "{bobs}"
    );
    // Without the name typed, or with another, nothing is deleted; nor as Bob.
    for form in [
        vec![("name", "bob")],
        vec![("name", "bob"), ("confirm", "yes")],
        vec![("name", "bob"), ("confirm", "carol")],
    ] {
        let r = post("alice@example.com", "/profiles/delete", form)
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("Not confirmed"));
    }
    let r = post(
        "bob@example.com",
        "/profiles/delete",
        vec![("name", "bob"), ("confirm", "bob")],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("forbidden (403)"));
    assert_eq!(profiles(), ["bob", "carol", "team"]);
    assert!(env.sim.get("v1", "Namespace", "", "bob").is_some());

    // The notebook, confirmed: Carol may not; Bob may.
    let carols = post(
        "carol@example.com",
        "/notebooks/delete",
        vec![("namespace", "bob"), ("name", "nb"), ("confirm", "yes")],
    )
    .await
    .unwrap();
    assert_eq!(carols.status(), 502);
    assert!(notebook().is_some());
    let gone = post(
        "bob@example.com",
        "/notebooks/delete",
        vec![("namespace", "bob"), ("name", "nb"), ("confirm", "yes")],
    )
    .await
    .unwrap();
    assert_eq!(gone.status(), 303);
    assert!(notebook().is_none());

    // Confirmed by Alice: the Profile goes, and its namespace with the volume in it.
    let deleted = post(
        "alice@example.com",
        "/profiles/delete",
        vec![("name", "bob"), ("confirm", " bob ")],
    )
    .await
    .unwrap();
    assert_eq!(deleted.status(), 303, "{:?}", deleted.text().await);
    assert_eq!(profiles(), ["carol", "team"]);
    // Garbage collection takes the namespace (Terminating: the namespace controller is deleting
    // its contents; kube-sim's unbound claim keeps its protection finalizer, so it stays marked).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ns = env.sim.get("v1", "Namespace", "", "bob");
        let claim = env
            .sim
            .get("v1", "PersistentVolumeClaim", "bob", "workspace-nb");
        let going = |o: &Option<serde_json::Value>| {
            o.as_ref()
                .is_none_or(|o| !o["metadata"]["deletionTimestamp"].is_null())
        };
        if going(&ns) && going(&claim) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the profile's namespace was never deleted: {ns:?} {claim:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, after) = page("/profiles?deleted=bob", "alice@example.com").await;
    assert!(
        after.contains("Profile bob deleted") && !after.contains("data-profile=\"bob\""),
        "{after}"
    );
}

/// The Training page's log tail and the Models page's request rates (issue 17), as the user: Alice,
/// who may read the model's pods and their logs, gets the last 100 lines of a TrainJob's pod log
/// with the pod's name (the page holds the link the script fills); Carol, who may list pods but
/// not read logs, and Bob, who may do neither, get the cluster's 403 and no line. The Models page
/// shows `wharf status`'s Req/s and p99 beside the InferenceServices Alice may list — "no
/// Prometheus" before the monitoring charm's Service exists, "unavailable" and why while it has no
/// endpoint, then the numbers from a fake Prometheus behind kube-sim's services proxy, only for
/// the listed services; Bob, who may not list them, gets no number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_tail_and_the_request_rates_follow_the_users_rights() {
    use serde_json::json;
    use std::time::Duration;

    let env = start(fast()).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for crd in [
        "charms/trainer/templates/crd.yaml",
        "charms/server/templates/crd.yaml",
    ] {
        let yaml = std::fs::read_to_string(root.join(crd)).unwrap();
        env.sim
            .put(serde_saphyr::from_str::<serde_json::Value>(&yaml).unwrap())
            .unwrap();
    }
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MODEL}}))
        .unwrap();
    put_template(&env, "dashboard", "00-rbac.yaml");
    let role = |name: &str, rules: serde_json::Value, user: &str| {
        env.sim
            .put(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": name, "namespace": MODEL}, "rules": rules}),
            )
            .unwrap();
        env.sim
            .put(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": MODEL},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "User", "name": user}]}),
            )
            .unwrap();
    };
    role(
        "alice",
        json!([{"apiGroups": ["wharf.dev"], "resources": ["trainjobs", "inferenceservices"],
                "verbs": ["get", "list", "watch"]},
               {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
               {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]),
        "alice@example.com",
    );
    role(
        "carol",
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]),
        "carol@example.com",
    );
    put_when_served(
        &env,
        json!({"apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": "fashion-run", "namespace": MODEL},
            "spec": {"model": "mlp", "dataset": {"uri": "file:///d"}, "output": {"uri": "pvc://m/x"}}}),
    )
    .await;
    for name in ["fashion", "quiet"] {
        put_when_served(
            &env,
            json!({"apiVersion": "wharf.dev/v1alpha1", "kind": "InferenceService",
                "metadata": {"name": name, "namespace": MODEL},
                "spec": {"model": {"name": name, "storageUri": "pvc://models/x"}}}),
        )
        .await;
    }
    // The TrainJob's pod, as the trainer operator's Job makes it, and what it printed: 120 lines.
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "fashion-run-x2k9q", "namespace": MODEL,
                "labels": {"wharf.dev/trainjob": "fashion-run", "job-name": "fashion-run"}},
            "spec": {"restartPolicy": "Never",
                "containers": [{"name": "trainer", "image": "wharf.local/trainer:1"}]}}))
        .unwrap();
    let printed: String = (1..=120).map(|i| format!("line {i}\n")).collect();

    let (_dashboard, url) = serve_behind_the_gateway(&env, &[]).await;
    let http = reqwest::Client::new();
    let page = async |path: &str, user: &str| -> (u16, String) {
        let r = http
            .get(format!("{url}{path}"))
            .header("host", "wharf.example.test")
            .header("x-auth-request-email", user)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };

    // The pod starts after a moment (kube-sim's kubelet); then its log is there to read.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let tail = loop {
        if env
            .sim
            .list("v1", "Pod", Some(MODEL))
            .iter()
            .any(|p| p["status"]["phase"] == "Running")
            && env
                .sim
                .append_pod_log(MODEL, "fashion-run-x2k9q", "trainer", &printed)
                == 1
        {
            let (status, tail) =
                page("/training/fashion-run/log?part=1", "alice@example.com").await;
            if tail.contains("line 120") {
                assert_eq!(status, 200, "{tail}");
                break tail;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "the pod never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let last_100: String = (21..=120).map(|i| format!("line {i}\n")).collect();
    assert!(
        tail.contains(&format!(
            "The last 100 lines of the log of pod <code class=\"pod\">fashion-run-x2k9q</code>\
             </figcaption><pre tabindex=\"0\" aria-labelledby=\"log-fashion-run-title\">{last_100}</pre>"
        )),
        "{tail}"
    );
    assert!(!tail.contains("line 20\n"), "{tail}");
    // Without the script: the log's own page.
    let (status, own) = page("/training/fashion-run/log", "alice@example.com").await;
    assert_eq!(status, 200);
    assert!(
        own.contains("<h2>Log of TrainJob fashion-run</h2>") && own.contains(&last_100),
        "{own}"
    );
    // The Training page holds the placeholder the script fills (once the watch has the job).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, training) = page("/training", "alice@example.com").await;
        if training.contains("data-job=\"fashion-run\"") {
            assert!(
                training.contains(
                    "<div class=\"log-tail\" data-log=\"/training/fashion-run/log?part=1\"><p>\
                     <a href=\"/training/fashion-run/log\">"
                ),
                "{training}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{training}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Carol may list pods but not read their logs; Bob may do neither.
    let (status, carol) = page("/training/fashion-run/log?part=1", "carol@example.com").await;
    assert_eq!(status, 502);
    assert!(
        carol.contains("read the log of pod fashion-run-x2k9q")
            && carol.contains("forbidden (403)"),
        "{carol}"
    );
    assert!(!carol.contains("line 1"), "{carol}");
    let (status, bob) = page("/training/fashion-run/log?part=1", "bob@example.com").await;
    assert_eq!(status, 502);
    assert!(
        bob.contains("forbidden (403)") && !bob.contains("line 1") && !bob.contains("x2k9q"),
        "{bob}"
    );

    // Models: no Prometheus yet — the columns say so, not zeros (once the watch has the services).
    let row = |page: &str, name: &str| -> String {
        let start = page
            .find(&format!("<tr data-service=\"{name}\">"))
            .unwrap_or_else(|| panic!("no row {name} in:\n{page}"));
        page[start..start + page[start..].find("</tr>").unwrap()].to_owned()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let models = loop {
        let (_, models) = page("/models", "alice@example.com").await;
        if models.contains("data-service=\"quiet\"") {
            break models;
        }
        assert!(tokio::time::Instant::now() < deadline, "{models}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        models.contains("<th scope=\"col\">Req/s</th><th scope=\"col\">p99</th>"),
        "{models}"
    );
    assert!(
        row(&models, "fashion")
            .ends_with("<td class=\"rate\">no Prometheus</td><td class=\"p99\">no Prometheus</td>"),
        "{models}"
    );
    assert!(models.contains("this model runs no Prometheus"), "{models}");
    // The monitoring charm's Service, nothing behind it yet: unavailable, and why.
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "monitoring", "namespace": MODEL,
                "labels": {"wharf.dev/serves": "prometheus-api"}},
            "spec": {"ports": [{"name": "web", "port": 9090}]}}))
        .unwrap();
    let (_, models) = page("/models", "alice@example.com").await;
    assert!(
        row(&models, "fashion")
            .ends_with("<td class=\"rate\">unavailable</td><td class=\"p99\">unavailable</td>"),
        "{models}"
    );
    assert!(
        models.contains("no request rates") && models.contains("no endpoints available"),
        "{models}"
    );
    // Prometheus answers: `wharf status`'s cells, for the listed services only.
    let (addr, asked) = fake_prometheus().await;
    env.sim.set_service_backend(MODEL, "monitoring", addr);
    let (_, models) = page("/models", "alice@example.com").await;
    assert!(
        row(&models, "fashion")
            .ends_with("<td class=\"rate\">12.50</td><td class=\"p99\">4.20 ms</td>"),
        "{models}"
    );
    assert!(
        row(&models, "quiet").ends_with("<td class=\"rate\">-</td><td class=\"p99\">-</td>"),
        "{models}"
    );
    assert!(
        !models.contains("idle"),
        "not an InferenceService here: {models}"
    );
    let mut queries = asked.lock().unwrap().clone();
    queries.sort();
    queries.dedup();
    assert_eq!(
        queries,
        [
            "inferenceservice:request_duration_seconds:p99_5m",
            "inferenceservice:requests:rate5m"
        ]
    );
    // Bob may not list the InferenceServices: the cluster's 403, no numbers.
    let (_, bob) = page("/models", "bob@example.com").await;
    assert!(bob.contains("forbidden (403)"), "{bob}");
    assert!(
        !bob.contains("12.50") && !bob.contains("data-service") && !bob.contains("Req/s"),
        "{bob}"
    );
}
