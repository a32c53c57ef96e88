//! `pods/exec`: the websocket endpoint `kubectl exec` and kube-rs's `Api::<Pod>::exec` speak, at
//! `/api/v1/namespaces/{ns}/pods/{name}/exec` (GET or POST with a websocket upgrade), with the
//! `v5.channel.k8s.io` and `v4.channel.k8s.io` subprotocols: each binary message starts with its
//! channel (0 stdin, 1 stdout, 2 stderr, 3 the exit `Status` as JSON; in v5, `[255, 0]` closes
//! stdin). Authorization is `create` on `pods/exec`, as the apiserver checks for a websocket exec
//! since 1.30.
//!
//! There is no container runtime: the command runs as a local process, and only in a container on
//! wharf's own image (`wharf.local/wharf:*`), whose binary is `Config::wharf_binary`. A claim the
//! container mounts is a directory kube-sim owns (one per bound volume, `Simulator::claim_dir`);
//! each argument that is a mount path, or under one, is rewritten to that directory. Exec in any
//! other container is refused with a 400 that says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Path as UrlPath, RawQuery, State as AxState};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Shared;
use crate::error::{ApiError, ApiResult};
use crate::rbac::Attributes;

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const CLOSE: u8 = 255;

/// The image whose containers exec runs commands in (as local processes of `wharf_binary`).
pub const WHARF_IMAGE: &str = "wharf.local/wharf:";

pub(crate) fn router() -> axum::Router<Arc<Shared>> {
    axum::Router::new().route(
        "/api/v1/namespaces/{ns}/pods/{name}/exec",
        axum::routing::get(handle).post(handle),
    )
}

/// What an exec request asks for, from its query string (`command` repeats, one per argument).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecRequest {
    pub command: Vec<String>,
    pub container: Option<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

pub fn parse_query(query: &str) -> ApiResult<ExecRequest> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?;
    let mut req = ExecRequest::default();
    let flag = |v: &str| v == "true" || v == "1";
    for (k, v) in pairs {
        match k.as_str() {
            "command" => req.command.push(v),
            "container" => req.container = Some(v).filter(|c| !c.is_empty()),
            "stdin" => req.stdin = flag(&v),
            "stdout" => req.stdout = flag(&v),
            "stderr" => req.stderr = flag(&v),
            "tty" => req.tty = flag(&v),
            _ => {}
        }
    }
    if req.command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    if !(req.stdin || req.stdout || req.stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    Ok(req)
}

/// How the command runs here: the program and its arguments, mount paths rewritten.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Decide how `req` runs in `pod` (pure: `claim_dir` gives a bound claim's directory). Errors are
/// what the client sees before the upgrade.
pub fn plan(
    pod: &Value,
    req: &ExecRequest,
    binary: Option<&Path>,
    claim_dir: impl Fn(&str) -> Option<PathBuf>,
) -> ApiResult<Plan> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    if pod["status"]["phase"] != "Running" {
        return Err(ApiError::bad_request(format!(
            "pod {name} is not running (phase {}): exec needs a running container",
            pod["status"]["phase"].as_str().unwrap_or("unknown")
        )));
    }
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let container = match &req.container {
        Some(c) => containers
            .iter()
            .find(|x| x["name"] == c.as_str())
            .ok_or_else(|| {
                ApiError::bad_request(format!("container {c} is not valid for pod {name}"))
            })?,
        None if containers.len() == 1 => &containers[0],
        None => {
            let names: Vec<&str> = containers
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect();
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let image = container["image"].as_str().unwrap_or_default();
    let cname = container["name"].as_str().unwrap_or_default();
    let Some(binary) = binary.filter(|_| image.starts_with(WHARF_IMAGE)) else {
        return Err(ApiError::bad_request(format!(
            "kube-sim runs exec only in containers on wharf's own image ({WHARF_IMAGE}*, as the \
             test's wharf binary, Config::wharf_binary{}): container {cname} of pod {name} runs \
             {image}",
            if binary.is_none() {
                ", which is not set"
            } else {
                ""
            }
        )));
    };
    if req.tty {
        return Err(ApiError::bad_request(
            "kube-sim does not emulate a tty for exec",
        ));
    }
    // mountPath -> the claim's directory, longest first so /data/x wins over /data.
    let volumes = pod["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let Some(volume) = volumes.iter().find(|v| v["name"] == m["name"]) else {
            continue;
        };
        let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() else {
            continue;
        };
        let path = m["mountPath"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('/');
        if m["subPath"].as_str().is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::bad_request(format!(
                "kube-sim does not map a claim mounted with subPath ({cname}: {path})"
            )));
        }
        let dir = claim_dir(claim).ok_or_else(|| {
            ApiError::bad_request(format!("claim {claim} of pod {name} is not bound"))
        })?;
        mounts.push((path.to_string(), dir));
    }
    mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let program = match req.command[0].rsplit('/').next() {
        Some("wharf") => binary.to_path_buf(),
        // Not pre-upgrade for real either: the runtime reports it on the error channel.
        _ => PathBuf::new(),
    };
    let args = req.command[1..]
        .iter()
        .map(|a| rewrite(a, &mounts))
        .collect();
    let env = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?.into(), e["value"].as_str()?.into())))
        .collect();
    Ok(Plan { program, args, env })
}

/// An argument that is a mount path, or under one, as the claim directory's path.
fn rewrite(arg: &str, mounts: &[(String, PathBuf)]) -> String {
    for (path, dir) in mounts {
        if arg == path {
            return dir.display().to_string();
        }
        if let Some(rest) = arg.strip_prefix(&format!("{path}/")) {
            return dir.join(rest).display().to_string();
        }
    }
    arg.to_string()
}

/// The exit `Status` the kubelet sends on channel 3.
pub fn exit_status(command: &[String], code: Option<i32>) -> Value {
    match code {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        _ => {
            let code = code.unwrap_or(137);
            json!({"metadata": {}, "status": "Failure",
                "message": format!("command terminated with non-zero exit code: error executing \
                    command [{}], exit code {code}", command.join(" ")),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
        }
    }
}

async fn handle(
    AxState(shared): AxState<Arc<Shared>>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match prepare(
        &shared,
        &ns,
        &name,
        query.as_deref().unwrap_or(""),
        &headers,
        ws,
    ) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn prepare(
    shared: &Arc<Shared>,
    ns: &str,
    name: &str,
    query: &str,
    headers: &HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let user = crate::server::authenticate(shared, headers)?;
    if user != crate::server::ADMIN_USER && shared.config.rbac {
        let attrs = Attributes {
            verb: "create".into(),
            group: String::new(),
            resource: "pods".into(),
            subresource: Some("exec".into()),
            namespace: ns.into(),
            name: Some(name.into()),
        };
        shared.lock().authorize(&user, &attrs)?;
    }
    let req = parse_query(query)?;
    let pod = {
        let st = shared.lock();
        let rt = st
            .catalog
            .find("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("no pods"))?;
        st.op_get(&rt, ns, name)?
    };
    let plan = plan(&pod, &req, shared.config.wharf_binary.as_deref(), |claim| {
        crate::volumes::claim_dir(shared, ns, claim)
    })?;
    let ws = ws.map_err(|_| ApiError::bad_request("Upgrade request required"))?;
    let offered: Vec<String> = ws
        .requested_protocols()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(',').map(|p| p.trim().to_string()))
        .collect();
    let protocol = [V5, V4]
        .into_iter()
        .find(|p| offered.iter().any(|o| o == p))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "kube-sim speaks {V5} and {V4} only; the client offered [{}]",
                offered.join(", ")
            ))
        })?;
    let ws = ws.protocols([protocol]);
    let v5 = protocol == V5;
    Ok(ws
        .on_upgrade(move |socket| run(socket, v5, plan, req))
        .into_response())
}

/// How long the output a process wrote may keep coming after it exited (a process it left behind
/// may hold its pipes), and how long a client gets to read the exit status and go before the
/// socket is dropped.
const GRACE: Duration = Duration::from_secs(5);

/// Run the command, relaying its stdin, stdout and stderr, then send its exit status and close.
///
/// The close lingers, as an HTTP server's does: after the status and the Close frame the socket
/// is still read (what arrives is dropped) until the client goes, for at most [`GRACE`]. A
/// client is often still sending stdin when the process ends (wharf's restore, when the agent
/// refuses a claim that is not empty); dropping the socket with its data unread makes the
/// kernel reset the connection, and the client then fails writing stdin instead of reading the
/// status it was sent (kube-rs ends its exec with that error and no status).
async fn run(socket: WebSocket, v5: bool, plan: Plan, req: ExecRequest) {
    let (mut sink, source) = socket.split();
    let spawned = if plan.program.as_os_str().is_empty() {
        Err(std::io::Error::other(format!(
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{}\": \
             executable file not found in $PATH: unknown",
            req.command[0]
        )))
    } else {
        let pipe = |on: bool| {
            if on {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            }
        };
        tokio::process::Command::new(&plan.program)
            .args(&plan.args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .envs(plan.env.iter().cloned())
            .stdin(pipe(req.stdin))
            .stdout(pipe(req.stdout))
            .stderr(pipe(req.stderr))
            .kill_on_drop(true)
            .spawn()
    };
    // One writer owns the socket; the output pumps and the status go through it in order.
    let (out, mut outbox) = tokio::sync::mpsc::channel::<Message>(8);
    let writer = tokio::spawn(async move {
        while let Some(m) = outbox.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let status = json!({"metadata": {}, "status": "Failure", "message": e.to_string(),
                "reason": "InternalError", "code": 500});
            let _ = out
                .send(channel(ERROR, status.to_string().as_bytes()))
                .await;
            drop(out);
            linger(writer, drain(source, None, v5)).await;
            return;
        }
    };
    let reader = drain(source, child.stdin.take(), v5);
    let pumps = [
        pump(child.stdout.take().map(boxed), STDOUT, out.clone()),
        pump(child.stderr.take().map(boxed), STDERR, out.clone()),
    ];
    let mut outputs = tokio::spawn(futures::future::join_all(pumps));
    let code = child.wait().await.ok().and_then(|s| {
        use std::os::unix::process::ExitStatusExt;
        s.code().or_else(|| s.signal().map(|sig| 128 + sig))
    });
    // What the process wrote comes before its status, however long a process it left holding
    // the pipes lives.
    if tokio::time::timeout(GRACE, &mut outputs).await.is_err() {
        outputs.abort();
    }
    let status = exit_status(&req.command, code);
    let _ = tokio::time::timeout(
        GRACE,
        out.send(channel(ERROR, status.to_string().as_bytes())),
    )
    .await;
    drop(out);
    linger(writer, reader).await;
}

/// Read the client's messages until it goes: stdin goes to the process while it has one (and
/// reads it), everything else is dropped. Ends when the client closes or the socket breaks.
fn drain(
    mut source: futures::stream::SplitStream<WebSocket>,
    mut stdin: Option<tokio::process::ChildStdin>,
    v5: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(Ok(m)) = source.next().await {
            match m {
                Message::Binary(b) if b.first() == Some(&STDIN) => {
                    if let Some(w) = stdin.as_mut()
                        && w.write_all(&b[1..]).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Message::Binary(b) if v5 && b[..] == [CLOSE, STDIN] => stdin = None,
                Message::Close(_) => break,
                _ => {}
            }
        }
        // The client went or closed the socket (v4's only way to end stdin): stdin ends.
        drop(stdin);
    })
}

/// The lingering close: once the writer is done (status and Close frame sent; a writer stuck on
/// a client that reads nothing is given up after [`GRACE`]), keep reading for at most [`GRACE`]
/// so the client can read all of it and go.
async fn linger(mut writer: tokio::task::JoinHandle<()>, mut reader: tokio::task::JoinHandle<()>) {
    if tokio::time::timeout(GRACE, &mut writer).await.is_err() {
        writer.abort();
    }
    if tokio::time::timeout(GRACE, &mut reader).await.is_err() {
        reader.abort();
    }
}

type Output = Box<dyn tokio::io::AsyncRead + Unpin + Send>;

fn boxed(r: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Output {
    Box::new(r)
}

/// Relay one of the process's outputs to the socket, a message per read, until it ends.
async fn pump(r: Option<Output>, ch: u8, out: tokio::sync::mpsc::Sender<Message>) {
    let Some(mut r) = r else { return };
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 || out.send(channel(ch, &buf[..n])).await.is_err() {
            return;
        }
    }
}

fn channel(ch: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(ch);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

/// The query string of a request, for tests.
#[cfg(test)]
fn query_of(pairs: &[(&str, &str)]) -> String {
    let map: Vec<(&str, &str)> = pairs.to_vec();
    serde_urlencoded::to_string(map).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(image: &str, phase: &str) -> Value {
        json!({"metadata": {"name": "agent"},
            "spec": {"containers": [{"name": "agent", "image": image,
                "env": [{"name": "A", "value": "1"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true},
                                 {"name": "tmp", "mountPath": "/tmp"}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "store-data"}},
                            {"name": "tmp", "emptyDir": {}}]},
            "status": {"phase": phase}})
    }

    fn req(command: &[&str]) -> ExecRequest {
        ExecRequest {
            command: command.iter().map(|s| s.to_string()).collect(),
            stdout: true,
            ..Default::default()
        }
    }

    #[test]
    fn the_query_names_the_command_argument_by_argument() {
        let q = query_of(&[
            ("stdout", "true"),
            ("stdin", "true"),
            ("container", "agent"),
            ("command", "/usr/local/bin/wharf"),
            ("command", "backup"),
            ("command", "a b&c"),
        ]);
        let r = parse_query(&q).unwrap();
        assert_eq!(r.command, ["/usr/local/bin/wharf", "backup", "a b&c"]);
        assert!(r.stdin && r.stdout && !r.stderr && !r.tty);
        assert_eq!(r.container.as_deref(), Some("agent"));
        assert!(
            parse_query("stdout=true")
                .unwrap_err()
                .message
                .contains("at least 1 command")
        );
        assert!(
            parse_query("command=x")
                .unwrap_err()
                .message
                .contains("stdin, stdout")
        );
    }

    #[test]
    fn mount_paths_in_arguments_become_the_claims_directory() {
        let dir = PathBuf::from("/sim/volumes/pvc-1");
        let p = plan(
            &pod("wharf.local/wharf:0.1.0", "Running"),
            &req(&[
                "/usr/local/bin/wharf",
                "backup",
                "agent",
                "stream",
                "/data",
                "/data/sub",
                "/datax",
            ]),
            Some(Path::new("/bin/wharf")),
            |c| (c == "store-data").then(|| dir.clone()),
        )
        .unwrap();
        assert_eq!(p.program, PathBuf::from("/bin/wharf"));
        assert_eq!(
            p.args,
            [
                "backup",
                "agent",
                "stream",
                "/sim/volumes/pvc-1",
                "/sim/volumes/pvc-1/sub",
                "/datax"
            ]
        );
        assert_eq!(p.env, [("A".to_string(), "1".to_string())]);
    }

    #[test]
    fn exec_is_refused_where_kube_sim_cannot_run_it() {
        let wharf = Some(Path::new("/bin/wharf"));
        let bound = |_: &str| Some(PathBuf::from("/d"));
        let cmd = req(&["wharf", "version"]);
        for (pod, binary, want) in [
            (pod("busybox:1.36", "Running"), wharf, "runs busybox:1.36"),
            (
                pod("wharf.local/wharf:0.1.0", "Running"),
                None,
                "which is not set",
            ),
            (
                pod("wharf.local/wharf:0.1.0", "Pending"),
                wharf,
                "is not running",
            ),
        ] {
            let e = plan(&pod, &cmd, binary, bound).unwrap_err();
            assert_eq!(e.code, 400);
            assert!(e.message.contains(want), "{}", e.message);
        }
        let unbound = plan(
            &pod("wharf.local/wharf:0.1.0", "Running"),
            &cmd,
            wharf,
            |_| None,
        );
        assert!(
            unbound
                .unwrap_err()
                .message
                .contains("store-data of pod agent is not bound")
        );
        let mut other = cmd.clone();
        other.container = Some("sidecar".into());
        let e = plan(
            &pod("wharf.local/wharf:0.1.0", "Running"),
            &other,
            wharf,
            bound,
        )
        .unwrap_err();
        assert_eq!(e.message, "container sidecar is not valid for pod agent");
        // Another program in wharf's image is not there: reported after the upgrade, as real.
        let sh = plan(
            &pod("wharf.local/wharf:0.1.0", "Running"),
            &req(&["sh"]),
            wharf,
            bound,
        );
        assert_eq!(sh.unwrap().program, PathBuf::new());
    }

    #[test]
    fn the_exit_status_is_the_kubelets() {
        assert_eq!(exit_status(&[], Some(0))["status"], "Success");
        let failed = exit_status(&["wharf".into(), "x".into()], Some(3));
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
        assert!(
            failed["message"]
                .as_str()
                .unwrap()
                .contains("[wharf x], exit code 3")
        );
    }
}
