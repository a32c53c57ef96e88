//! pods/exec as kube-rs's own client speaks it (`Api::<Pod>::exec`, websocket, v5 then v4
//! offered), and as a bare v4 client does: stdin in, stdout and stderr out, the exit status on
//! the error channel, claims mapped to kube-sim's directories, RBAC on `pods/exec` (create), and
//! a clear refusal for containers not on wharf's image.

mod common;

use std::path::{Path, PathBuf};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, Patch, PatchParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A stand-in for the wharf binary: a few verbs a test can check from outside.
fn fake_wharf(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("wharf");
    std::fs::write(
        &path,
        "#!/bin/sh\ncase \"$1\" in\n  cat) exec cat ;;\n  fail) echo went wrong >&2; exit 3 ;;\n  \
         write) cat > \"$2\" ;;\n  env) echo \"$GREETING\" ;;\n  \
         refuse) echo not empty >&2; exit 2 ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

async fn start(bin: &Path) -> kube_sim::Simulator {
    kube_sim::Simulator::start(kube_sim::Config {
        wharf_binary: Some(bin.to_path_buf()),
        ..common::fast_config()
    })
    .await
    .unwrap()
}

/// A pod on `image` mounting claim `data` at /data, once it runs.
async fn running_pod(client: &kube::Client, name: &str, image: &str) -> Api<Pod> {
    let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(client.clone(), "default");
    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    pvcs.patch("data", &PatchParams::apply("test"), &Patch::Apply(&pvc))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "containers": [{"name": "agent", "image": image,
            "env": [{"name": "GREETING", "value": "hello from the pod"}],
            "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}});
    pods.patch(name, &PatchParams::apply("test"), &Patch::Apply(&pod))
        .await
        .unwrap();
    common::eventually("the pod runs", || async {
        let p = pods.get(name).await.ok()?;
        (p.status?.phase? == "Running").then_some(())
    })
    .await;
    pods
}

/// The API error an exec was refused with.
fn refused(r: Result<kube::api::AttachedProcess, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        Err(e) => panic!("expected an API error, got {e}"),
        Ok(_) => panic!("exec was allowed"),
    }
}

fn params(stdin: bool) -> AttachParams {
    AttachParams::default()
        .stdin(stdin)
        .stdout(true)
        .stderr(true)
        .max_stdout_buf_size(64 * 1024)
}

#[tokio::test]
async fn exec_relays_stdin_stdout_stderr_and_the_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&fake_wharf(dir.path())).await;
    let client = common::client(&sim, None).await;
    let pods = running_pod(&client, "agent", "wharf.local/wharf:0.1.0").await;

    // stdin to stdout, byte for byte (1 MiB + 3: many messages each way), then EOF ends it.
    let payload: Vec<u8> = (0..(1 << 20) + 3).map(|i| (i % 251) as u8).collect();
    let mut p = pods
        .exec("agent", ["/usr/local/bin/wharf", "cat"], &params(true))
        .await
        .unwrap();
    let mut stdin = p.stdin().unwrap();
    let mut stdout = p.stdout().unwrap();
    let status = p.take_status().unwrap();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        stdin.write_all(&sent).await.unwrap();
        stdin.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    stdout.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    assert!(got == payload, "stdout is stdin ({} bytes back)", got.len());
    assert_eq!(status.await.unwrap().status.as_deref(), Some("Success"));

    // A failure: stderr, and the kubelet's NonZeroExitCode status with the code.
    let mut p = pods
        .exec("agent", ["wharf", "fail"], &params(false))
        .await
        .unwrap();
    let mut stderr = p.stderr().unwrap();
    let status = p.take_status().unwrap();
    let mut err = String::new();
    stderr.read_to_string(&mut err).await.unwrap();
    assert_eq!(err, "went wrong\n");
    let s = status.await.unwrap();
    assert_eq!(s.status.as_deref(), Some("Failure"));
    assert_eq!(s.reason.as_deref(), Some("NonZeroExitCode"));
    let causes = s.details.unwrap().causes.unwrap();
    assert_eq!(causes[0].message.as_deref(), Some("3"));

    // The container's env; a program the image does not have fails on the error channel.
    let mut p = pods
        .exec("agent", ["wharf", "env"], &params(false))
        .await
        .unwrap();
    let mut out = String::new();
    p.stdout().unwrap().read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "hello from the pod\n");
    let mut p = pods
        .exec("agent", ["sh", "-c", "id"], &params(false))
        .await
        .unwrap();
    let s = p.take_status().unwrap().await.unwrap();
    assert!(
        s.message.unwrap().contains("executable file not found"),
        "no shell in wharf's image"
    );
    sim.shutdown().await;
}

/// The exit status reaches a client that is still writing stdin when the process ends without
/// reading it (wharf's restore into a claim that is not empty). kube-sim must close as a server
/// should: a socket dropped with unread stdin is reset by the kernel, kube-rs then fails
/// sending stdin and ends the exec without the status, its stderr never ending. Twenty rounds:
/// whether the reset wins depends on timing.
#[tokio::test]
async fn the_exit_status_reaches_a_client_still_writing_stdin() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&fake_wharf(dir.path())).await;
    let client = common::client(&sim, None).await;
    let pods = running_pod(&client, "agent", "wharf.local/wharf:0.1.0").await;
    for round in 0..20 {
        let mut p = pods
            .exec(
                "agent",
                ["wharf", "refuse"],
                &params(true).max_stdin_buf_size(64 * 1024),
            )
            .await
            .unwrap();
        let mut stdin = p.stdin().unwrap();
        let mut stderr = p.stderr().unwrap();
        let status = p.take_status().unwrap();
        // Writes until kube-rs stops taking bytes (then it waits: it is aborted below).
        let writer = tokio::spawn(async move {
            let chunk = vec![7u8; 64 * 1024];
            while stdin.write_all(&chunk).await.is_ok() {}
        });
        let s = tokio::time::timeout(Duration::from_secs(20), status)
            .await
            .unwrap_or_else(|_| panic!("round {round}: no exit status within 20 s"))
            .unwrap_or_else(|| panic!("round {round}: the exec ended without its exit status"));
        assert_eq!(s.reason.as_deref(), Some("NonZeroExitCode"), "{s:?}");
        let mut err = String::new();
        tokio::time::timeout(Duration::from_secs(5), stderr.read_to_string(&mut err))
            .await
            .unwrap_or_else(|_| panic!("round {round}: stderr did not end"))
            .unwrap();
        assert_eq!(err, "not empty\n");
        writer.abort();
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_mount_path_is_the_claims_directory() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&fake_wharf(dir.path())).await;
    let client = common::client(&sim, None).await;
    let pods = running_pod(&client, "agent", "wharf.local/wharf:0.1.0").await;
    let mut p = pods
        .exec("agent", ["wharf", "write", "/data/f.txt"], &params(true))
        .await
        .unwrap();
    let mut stdin = p.stdin().unwrap();
    stdin.write_all(b"kept in the volume").await.unwrap();
    stdin.shutdown().await.unwrap();
    drop(stdin);
    let s = p.take_status().unwrap().await.unwrap();
    assert_eq!(s.status.as_deref(), Some("Success"), "{s:?}");
    let volume = sim.claim_dir("default", "data").expect("bound");
    assert_eq!(
        std::fs::read(volume.join("f.txt")).unwrap(),
        b"kept in the volume"
    );
    // A new claim of the same name is a new, empty volume.
    let pvc = sim
        .get("v1", "PersistentVolumeClaim", "default", "data")
        .unwrap();
    assert!(
        volume.ends_with(pvc["spec"]["volumeName"].as_str().unwrap()),
        "{}",
        volume.display()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn exec_needs_create_on_pods_exec_and_wharfs_image() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&fake_wharf(dir.path())).await;
    let admin = common::client(&sim, None).await;
    let pods = running_pod(&admin, "agent", "wharf.local/wharf:0.1.0").await;

    // A ServiceAccount that may do anything with pods but exec in them.
    sim.put(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "pods", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["*"]}]}),
    )
    .unwrap();
    sim.put(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "pods", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods"},
        "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "default"}]}),
    )
    .unwrap();
    let token = sim.token_for_service_account("default", "sa");
    let sa: Api<Pod> = Api::namespaced(common::client(&sim, Some(&token)).await, "default");
    let s = refused(sa.exec("agent", ["wharf", "cat"], &params(false)).await);
    assert_eq!(s.code, 403);
    assert!(
        s.message.contains(
            "cannot create resource \"pods/exec\" in API group \"\" in the namespace \"default\""
        ),
        "{}",
        s.message
    );
    // Granted `create` on pods/exec, it may.
    sim.put(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "pods", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]},
                  {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]}),
    )
    .unwrap();
    let mut p = sa
        .exec("agent", ["wharf", "env"], &params(false))
        .await
        .unwrap();
    let s = p.take_status().unwrap().await.unwrap();
    assert_eq!(s.status.as_deref(), Some("Success"));

    // Any other image: refused before the upgrade, saying why.
    let other = running_pod(&admin, "busybox", "busybox:1.36").await;
    let s = refused(other.exec("busybox", ["ls"], &params(false)).await);
    assert_eq!(s.code, 400);
    assert!(
        s.message
            .contains("only in containers on wharf's own image")
            && s.message.contains("busybox:1.36"),
        "{}",
        s.message
    );
    drop(pods);
    sim.shutdown().await;
}

/// A client that offers only v4 (no close channel): stdin ends when it closes the socket, and
/// the status still arrives as JSON on channel 3.
#[tokio::test]
async fn a_v4_client_gets_its_output_and_a_json_status() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&fake_wharf(dir.path())).await;
    let client = common::client(&sim, None).await;
    running_pod(&client, "agent", "wharf.local/wharf:0.1.0").await;
    let url = format!(
        "{}/api/v1/namespaces/default/pods/agent/exec?command=wharf&command=env&stdout=true",
        sim.url().replace("http://", "ws://")
    );
    let mut req = url.into_client_request().unwrap();
    let h = req.headers_mut();
    h.insert(
        "authorization",
        HeaderValue::from_static("Bearer admin-token"),
    );
    h.insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("v4.channel.k8s.io"),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "v4.channel.k8s.io"
    );
    let mut stdout = Vec::new();
    let mut status = None;
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Binary(b) = m {
            match b[0] {
                1 => stdout.extend_from_slice(&b[1..]),
                3 => status = Some(serde_json::from_slice::<serde_json::Value>(&b[1..]).unwrap()),
                _ => {}
            }
        }
    }
    let _ = ws.close(None).await;
    assert_eq!(stdout, b"hello from the pod\n");
    assert_eq!(status.unwrap()["status"], "Success");
    sim.shutdown().await;
}
