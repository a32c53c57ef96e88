//! wharf's images for real: built from the musl binaries scripts/test.sh builds (their
//! directories in WHARF_IMAGE_BINARIES_AMD64 and WHARF_IMAGE_BINARIES_ARM64), read by skopeo,
//! imported into a real containerd (Debian's 1.6, started here with its own root, state and
//! socket) and run with `ctr run` — the trainer trains, the server answers V2 inferences —, the
//! arm64 server run under qemu-aarch64-static, and pushed to a real OCI registry
//! (`docker-registry`) and pulled back with skopeo.
//!
//! Nothing here is skipped silently: a missing tool or binary fails the test with what to install
//! or build. The containerd test needs root; WHARF_SKIP_CONTAINERD=1 skips it with a loud line.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = "wharf.local/wharf-server:0.1.0";
const TRAINER: &str = "wharf.local/wharf-trainer:0.1.0";
const WHARF: &str = "wharf.local/wharf:0.1.0";
const WORKSPACES: &str = "wharf.local/wharf-workspaces:0.1.0";

fn binaries(arch: &str) -> PathBuf {
    let var = format!("WHARF_IMAGE_BINARIES_{}", arch.to_uppercase());
    let dir = std::env::var_os(&var)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "{var} is not set: scripts/test.sh builds the musl binaries and sets it \
             (or build them yourself: cargo build --target {} -p wharf-server -p wharf-trainer \
             -p wharf-workspaces)",
                if arch == "amd64" {
                    "x86_64-unknown-linux-musl"
                } else {
                    "aarch64-unknown-linux-musl"
                }
            )
        });
    assert!(
        dir.join("wharf-server").is_file(),
        "{var}={}: no wharf-server there",
        dir.display()
    );
    dir
}

fn tool(name: &str, package: &str) -> PathBuf {
    which(name)
        .unwrap_or_else(|| panic!("`{name}` not found: apt-get install {package} (.ci/run does)"))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn wharf() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
}

/// `wharf images build` of every image for the given arches into `out`; returns its JSON report.
fn build(out: &Path, arches: &[&str]) -> serde_json::Value {
    build_images(
        out,
        arches,
        &["wharf-server", "wharf-trainer", "wharf-workspaces", "wharf"],
    )
}

/// `wharf images build --image …` for the given arches into `out`; returns its JSON report.
fn build_images(out: &Path, arches: &[&str], images: &[&str]) -> serde_json::Value {
    let mut cmd = wharf();
    cmd.args(["--output", "json", "images", "build", "-o"])
        .arg(out);
    cmd.arg("--arch").arg(arches.join(","));
    cmd.arg("--image").arg(images.join(","));
    for a in arches {
        cmd.arg("--binaries")
            .arg(format!("{a}={}", binaries(a).display()));
    }
    let started = Instant::now();
    let out = run(&mut cmd);
    eprintln!(
        "wharf images build --arch {}: {:.1}s",
        arches.join(","),
        started.elapsed().as_secs_f64()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn digest_of(report: &serde_json::Value, reference: &str) -> String {
    report
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == reference)
        .unwrap_or_else(|| panic!("{reference} not in {report}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child (a server, containerd, a registry) when the test ends, however it ends.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_http(url: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ureq_get(url).is_some_and(|s| s < 500) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what} did not answer {url} within 30s");
}

/// A GET's status code, with curl (no HTTP client among wharf's dev-dependencies' blocking APIs).
fn ureq_get(url: &str) -> Option<u16> {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .parse()
        .ok()
        .filter(|c| *c != 0)
}

/// One V2 inference of a Fashion-MNIST-shaped input; returns the response's outputs.
fn infer(port: u16) -> serde_json::Value {
    let data: Vec<f32> = (0..784).map(|i| ((i * 37) % 255) as f32 / 255.0).collect();
    let body = serde_json::json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": data}]});
    let out = run(Command::new("curl").args([
        "-sf",
        "-H",
        "content-type: application/json",
        "--data-binary",
        &body.to_string(),
        &format!("http://127.0.0.1:{port}/v2/models/fashion/infer"),
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model_name"], "fashion", "{v}");
    let probs: Vec<f64> = v["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(probs.len(), 10, "{v}");
    assert!(
        (probs.iter().sum::<f64>() - 1.0).abs() < 1e-4,
        "probabilities sum to 1: {v}"
    );
    let argmax = probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(
        v["outputs"][1]["data"][0], argmax,
        "class is the argmax: {v}"
    );
    v["outputs"].clone()
}

/// A model repository `<dir>/fashion/1/` trained by the host's amd64 trainer (1 epoch on a slice).
fn train_on_host(dir: &Path) {
    run(Command::new(binaries("amd64").join("wharf-trainer"))
        .args([
            "train",
            "--epochs",
            "1",
            "--train-limit",
            "2000",
            "--test-limit",
            "500",
            "--out",
        ])
        .arg(dir.join("fashion")));
}

/// `wharf-server serve` run directly (or under a wrapper such as qemu), until dropped.
fn serve(wrapper: Option<&Path>, binary: &Path, repo: &Path, port: u16) -> Guard {
    let mut cmd = match wrapper {
        Some(w) => {
            let mut c = Command::new(w);
            c.arg(binary);
            c
        }
        None => Command::new(binary),
    };
    cmd.args([
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        // Tests run side by side: gRPC on a free port, not the shared default 8081.
        "--grpc-port",
        "0",
        "--model-repository",
    ])
    .arg(repo)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let guard = Guard(cmd.spawn().unwrap());
    wait_http(
        &format!("http://127.0.0.1:{port}/v2/models/fashion/ready"),
        "wharf-server",
    );
    guard
}

#[test]
fn the_archive_has_each_architecture_and_the_same_inputs_give_the_same_digests() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    // wharf's own image for arm64 needs an arm64 build of all of wharf, which CI leaves out for
    // time (scripts/build-release.sh builds it); the amd64 one is checked below.
    let two = ["wharf-server", "wharf-trainer", "wharf-workspaces"];
    let ra = build_images(&a, &["amd64", "arm64"], &two);
    let rb = build_images(&b, &["amd64", "arm64"], &two);
    assert_eq!(
        ra, rb,
        "two builds of the same binaries report the same digests"
    );
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "and write the same bytes"
    );
    let skopeo = tool("skopeo", "skopeo");
    for reference in [SERVER, TRAINER, WORKSPACES] {
        for arch in ["amd64", "arm64"] {
            let out = run(Command::new(&skopeo)
                .args(["inspect", "--override-os", "linux", "--override-arch", arch])
                .arg(format!("oci-archive:{}:{reference}", a.display())));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["Architecture"], arch, "{reference}: {v}");
            assert_eq!(v["Digest"], digest_of(&ra, reference), "{reference}");
            assert_eq!(v["Labels"]["org.opencontainers.image.version"], "0.1.0");
            assert_eq!(
                v["Labels"]["org.opencontainers.image.licenses"],
                "Apache-2.0"
            );
            let out = run(Command::new(&skopeo)
                .args([
                    "inspect",
                    "--config",
                    "--override-os",
                    "linux",
                    "--override-arch",
                    arch,
                ])
                .arg(format!("oci-archive:{}:{reference}", a.display())));
            let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(
                c["config"]["User"], "65532:65532",
                "the charms' non-root user"
            );
            let name = reference
                .split('/')
                .nth(1)
                .unwrap()
                .split(':')
                .next()
                .unwrap();
            assert_eq!(
                c["config"]["Entrypoint"][0],
                format!("/usr/local/bin/{name}")
            );
            assert_eq!(c["created"], "1970-01-01T00:00:00Z");
        }
    }
    // umoci unpacks what skopeo copies out: the file system is what the config says.
    let umoci = tool("umoci", "umoci");
    let layout = dir.path().join("layout");
    run(Command::new(&skopeo)
        .args(["copy", "--override-arch", "arm64", "--override-os", "linux"])
        .arg(format!("oci-archive:{}:{TRAINER}", a.display()))
        .arg(format!("oci:{}:trainer", layout.display())));
    let bundle = dir.path().join("bundle");
    run(Command::new(&umoci)
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:trainer", layout.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    assert!(
        rootfs
            .join("usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
            .is_file()
    );
    assert!(
        std::fs::read_to_string(rootfs.join("etc/passwd"))
            .unwrap()
            .contains(":65532:65532:")
    );
    let bin = std::fs::read(rootfs.join("usr/local/bin/wharf-trainer")).unwrap();
    assert_eq!(
        u16::from_le_bytes([bin[18], bin[19]]),
        183,
        "the arm64 image holds the aarch64 binary"
    );
}

/// wharf's own image (the backup agent's Jobs and the scheduled backups run it): reproducible
/// like the others, the non-root user, and the static binary in it runs the CLI that the
/// rendered CronJob and the agent call.
#[test]
fn the_wharf_image_holds_the_static_wharf_binary_that_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    let ra = build(&a, &["amd64"]);
    let rb = build(&b, &["amd64"]);
    assert_eq!(digest_of(&ra, WHARF), digest_of(&rb, WHARF), "reproducible");
    let skopeo = tool("skopeo", "skopeo");
    let out = run(Command::new(&skopeo)
        .args(["inspect", "--config", "--override-os", "linux"])
        .args(["--override-arch", "amd64"])
        .arg(format!("oci-archive:{}:{WHARF}", a.display())));
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["config"]["User"], "65532:65532", "{c}");
    assert_eq!(c["config"]["Entrypoint"][0], "/usr/local/bin/wharf", "{c}");
    assert_eq!(
        c["config"]["Labels"]["org.opencontainers.image.title"],
        "wharf"
    );
    let umoci = tool("umoci", "umoci");
    let layout = dir.path().join("layout");
    run(Command::new(&skopeo)
        .args(["copy", "--override-arch", "amd64", "--override-os", "linux"])
        .arg(format!("oci-archive:{}:{WHARF}", a.display()))
        .arg(format!("oci:{}:wharf", layout.display())));
    let bundle = dir.path().join("bundle");
    run(Command::new(&umoci)
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:wharf", layout.display()))
        .arg(&bundle));
    let bin = bundle.join("rootfs/usr/local/bin/wharf");
    let bytes = std::fs::read(&bin).unwrap();
    assert_eq!(
        bytes,
        std::fs::read(binaries("amd64").join("wharf")).unwrap(),
        "the image holds the musl binary given"
    );
    let version = run(Command::new(&bin).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        "wharf 0.1.0"
    );
    let help = run(Command::new(&bin).args(["backup", "agent", "--help"]));
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("stream"),
        "the agent the backup Jobs run is in the image"
    );
}

#[test]
fn a_changed_input_changes_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let a = build(&dir.path().join("a.tar"), &["amd64"]);
    let mut cmd = wharf();
    cmd.args([
        "--output",
        "json",
        "images",
        "build",
        "--arch",
        "amd64",
        "--source-date-epoch",
        "1700000000",
        "-o",
    ])
    .arg(dir.path().join("b.tar"))
    .arg("--binaries")
    .arg(format!("amd64={}", binaries("amd64").display()));
    let b: serde_json::Value = serde_json::from_slice(&run(&mut cmd).stdout).unwrap();
    assert_ne!(digest_of(&a, SERVER), digest_of(&b, SERVER));
}

#[test]
fn a_missing_dataset_or_a_dynamic_binary_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = wharf()
        .args([
            "images",
            "build",
            "--arch",
            "amd64",
            "--dataset",
            "/nonexistent",
            "-o",
        ])
        .arg(dir.path().join("x.tar"))
        .arg("--binaries")
        .arg(format!("amd64={}", binaries("amd64").display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("apt-get install dataset-fashion-mnist")
            && err.contains("train-images-idx3-ubyte"),
        "{err}"
    );
    // A dynamically linked (glibc) program standing in for each binary: the system's `true`
    // (the tests' own binaries are static: scripts/test.sh builds them for musl).
    let dynamic = Path::new("/bin/true");
    assert!(dynamic.is_file(), "this test needs /bin/true (coreutils)");
    let fake = dir.path().join("bin");
    std::fs::create_dir(&fake).unwrap();
    for name in ["wharf-server", "wharf-trainer", "wharf-workspaces", "wharf"] {
        std::fs::copy(dynamic, fake.join(name)).unwrap();
    }
    let out = wharf()
        .args(["images", "build", "--arch", "amd64", "-o"])
        .arg(dir.path().join("x.tar"))
        .arg("--binaries")
        .arg(format!("amd64={}", fake.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("dynamically linked") && err.contains("scripts/build-release.sh"),
        "{err}"
    );
    assert!(
        !dir.path().join("x.tar").exists(),
        "no archive is left behind"
    );
}

/// containerd with its own root, state and socket under a temporary directory.
struct Containerd {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    _process: Guard,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("containerd.sock");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{1}\"\n",
                dir.path().display(),
                socket.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let process = Guard(
            Command::new(tool("containerd", "containerd"))
                .arg("--config")
                .arg(&config)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let c = Containerd {
            _dir: dir,
            socket,
            _process: process,
        };
        while Instant::now() < deadline {
            if c.ctr(&["version"]).status.success() {
                return c;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("containerd did not start within 20s");
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new(tool("ctr", "containerd"))
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "k8s.io"])
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn real_containerd_imports_the_images_and_runs_the_trainer_and_the_server() {
    if std::env::var_os("WHARF_SKIP_CONTAINERD").is_some_and(|v| v == "1") {
        eprintln!(
            "\n!!!!!!!! SKIPPED: WHARF_SKIP_CONTAINERD=1 — the images were NOT run in containerd !!!!!!!!\n"
        );
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "containerd needs root: run the tests as root (CI does), or set WHARF_SKIP_CONTAINERD=1 to skip this one loudly"
    );
    tool("runc", "runc");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("images.tar");
    let report = build(&archive, &["amd64"]);
    let ctd = Containerd::start();
    let started = Instant::now();
    ctd.ok(&["images", "import", archive.to_str().unwrap()]);
    eprintln!("ctr images import: {:.1}s", started.elapsed().as_secs_f64());
    // What `wharf up` reads to decide whether to import: the real `ctr images ls`, parsed by wharf.
    let listed = wharf::host::microk8s::parse_images_ls(&ctd.ok(&["images", "ls"]));
    for reference in [SERVER, TRAINER] {
        assert_eq!(
            listed.get(reference),
            Some(&digest_of(&report, reference)),
            "{listed:?}"
        );
    }

    // The trainer's image trains on its own copy of Fashion-MNIST, as the non-root user.
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    run(Command::new("chmod")
        .arg("0777")
        .arg(&models)
        .arg(dir.path()));
    let mount = |dst: &str, mode: &str| {
        format!(
            "type=bind,src={},dst={dst},options=rbind:{mode}",
            models.display()
        )
    };
    let out = ctd.ok(&[
        "run",
        "--rm",
        "--net-host",
        "--mount",
        &mount("/models", "rw"),
        TRAINER,
        "train-test",
        "/usr/local/bin/wharf-trainer",
        "train",
        "--epochs",
        "1",
        "--train-limit",
        "2000",
        "--test-limit",
        "500",
        "--out",
        "/models/fashion",
    ]);
    assert!(out.contains("\"test_accuracy\""), "{out}");
    let model_json = models.join("fashion/1/model.json");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&model_json).unwrap().uid(),
        65532,
        "written as the image's user"
    );

    // The server's image serves it from a read-only mount, on the host's loopback.
    let port = free_port();
    ctd.ok(&[
        "run",
        "-d",
        "--net-host",
        "--mount",
        &mount("/models", "ro"),
        SERVER,
        "serve-test",
        "/usr/local/bin/wharf-server",
        "serve",
        "--model-repository",
        "/models",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--grpc-port",
        "0",
    ]);
    struct Task<'a>(&'a Containerd);
    impl Drop for Task<'_> {
        fn drop(&mut self) {
            let _ = self.0.ctr(&["task", "kill", "-s", "SIGKILL", "serve-test"]);
            std::thread::sleep(Duration::from_millis(300));
            let _ = self.0.ctr(&["task", "delete", "serve-test"]);
            let _ = self.0.ctr(&["containers", "rm", "serve-test"]);
        }
    }
    let _task = Task(&ctd);
    wait_http(
        &format!("http://127.0.0.1:{port}/v2/models/fashion/ready"),
        "wharf-server in containerd",
    );
    let in_container = infer(port);
    // The same binary outside the container, on the same model, answers the same.
    let host_port = free_port();
    let _host = serve(
        None,
        &binaries("amd64").join("wharf-server"),
        &models,
        host_port,
    );
    assert_eq!(in_container, infer(host_port));
}

#[test]
fn the_arm64_server_runs_under_qemu_and_infers_like_amd64() {
    let qemu = tool("qemu-aarch64-static", "qemu-user-static");
    let arm = binaries("arm64").join("wharf-server");
    let out = run(Command::new(&qemu).arg(&arm).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "wharf-server 0.1.0"
    );
    let dir = tempfile::tempdir().unwrap();
    train_on_host(dir.path());
    let (p_arm, p_amd) = (free_port(), free_port());
    let _arm = serve(Some(&qemu), &arm, dir.path(), p_arm);
    let _amd = serve(
        None,
        &binaries("amd64").join("wharf-server"),
        dir.path(),
        p_amd,
    );
    let (arm, amd) = (infer(p_arm), infer(p_amd));
    assert_eq!(arm[1]["data"], amd[1]["data"], "the same class on both");
    for (a, b) in arm[0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .zip(amd[0]["data"].as_array().unwrap())
    {
        assert!(
            (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-5,
            "{arm} vs {amd}"
        );
    }
}

#[test]
fn push_to_a_real_registry_and_pull_back_the_same_digest() {
    let registry = tool("docker-registry", "docker-registry");
    let skopeo = tool("skopeo", "skopeo");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        ),
    )
    .unwrap();
    let _registry = Guard(
        Command::new(registry)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_http(&format!("http://127.0.0.1:{port}/v2/"), "docker-registry");
    let archive = dir.path().join("images.tar");
    // CI builds no arm64 wharf binary (scripts/build-release.sh does): push the two workload
    // images for both architectures.
    let report = build_images(
        &archive,
        &["amd64", "arm64"],
        &["wharf-server", "wharf-trainer"],
    );
    let target = format!("127.0.0.1:{port}");
    let push = || {
        let out = run(wharf()
            .args(["--output", "json", "images", "push", &target, "--archive"])
            .arg(&archive));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = push();
    assert!(first[0]["uploaded"].as_u64().unwrap() > 0, "{first}");
    let again = push();
    assert!(
        again.as_array().unwrap().iter().all(|p| p["uploaded"] == 0),
        "a second push uploads nothing: {again}"
    );
    for reference in [SERVER, TRAINER] {
        let repo = reference.split('/').nth(1).unwrap();
        let pulled = dir.path().join(format!("{}.tar", repo.replace(':', "_")));
        run(Command::new(&skopeo)
            .args(["copy", "--all", "--src-tls-verify=false"])
            .arg(format!("docker://{target}/{repo}"))
            .arg(format!("oci-archive:{}:{reference}", pulled.display())));
        let out = run(Command::new(&skopeo)
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}:{reference}", pulled.display())));
        assert_eq!(
            wharf::images::oci::sha256(&out.stdout),
            digest_of(&report, reference),
            "{reference}"
        );
    }
    // wharf pulls through the same API: `images export --upstream --mirror` against a registry
    // that holds the bundle's upstream images (here stand-ins: wharf's server image copied under
    // each upstream name, as nothing upstream is reachable from CI) gives one air-gap archive.
    let out = run(wharf().args(["--output", "json", "images", "list", "--bundle", "lite"]));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let upstream: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "upstream")
        .map(|r| r["reference"].as_str().unwrap())
        .collect();
    assert!(
        upstream.len() >= 4,
        "dex, oauth2-proxy, minio, nginx: {upstream:?}"
    );
    for reference in &upstream {
        let path = reference.split_once('/').unwrap().1;
        run(Command::new(&skopeo)
            .args(["copy", "--all", "--dest-tls-verify=false"])
            .arg(format!("oci-archive:{}:{SERVER}", archive.display()))
            .arg(format!("docker://{target}/{path}")));
    }
    // The air-gap archive carries wharf's own image too, which CI builds for amd64 only.
    let local = dir.path().join("amd64.tar");
    let local_report = build(&local, &["amd64"]);
    let lite = dir.path().join("lite.tar");
    run(wharf()
        .args([
            "images",
            "export",
            "--bundle",
            "lite",
            "--upstream",
            "--mirror",
            &target,
            "--archive",
        ])
        .arg(&local)
        .arg("-o")
        .arg(&lite));
    let out = run(wharf()
        .args(["--output", "json", "images", "list", "--archive"])
        .arg(&lite));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4 + upstream.len(), "{rows:?}");
    for row in rows {
        let want = if row["source"] == "wharf" {
            digest_of(&local_report, row["reference"].as_str().unwrap())
        } else {
            digest_of(&report, SERVER)
        };
        assert_eq!(row["digest"], want.as_str(), "{row}");
    }
}
