//! `wharf status` against kube-sim: the header and tables, JSON output, and charm-declared status.

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
