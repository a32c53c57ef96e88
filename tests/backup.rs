//! Backup and restore against kube-sim, the real binary, with moto standing in for MinIO's S3 API:
//! a namespace deleted and brought back with its objects and data identical, a fresh cluster,
//! history and rollback after a restore, operator-owned objects never restored, `--existing`,
//! wrong keys, tampering, secrets never in the clear, killed backups, the backup before an
//! upgrade, the scheduled backup's RBAC, and a committed backup of format 1.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use futures::TryStreamExt;
use object_store::{ObjectStore, PutPayload};
use serde_json::{Value, json};
use wharf::backup::s3::{S3Access, attributes_to_map, map_to_attributes};
use wharf_model::moto::Moto;

const PASSPHRASE: &str = "correct horse battery staple";
/// A distinctive secret option value: a grep for it cannot match by chance.
const PASSWORD: &str = "Sw0rdf1sh-backup-4Rq";
const BUCKET: &str = "wharf";

fn backup_bundle() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/backup/bundle.yaml")
        .display()
        .to_string()
}

struct World {
    env: Env,
    moto: Moto,
    backups: PathBuf,
}

impl World {
    async fn wharf(&self, args: &[&str]) -> Output {
        self.run(args, Some(PASSPHRASE)).await
    }

    async fn run(&self, args: &[&str], passphrase: Option<&str>) -> Output {
        let mut cmd = self.env.command(args);
        cmd.env_remove("WHARF_BACKUP_PASSPHRASE")
            .env("HOME", self.env.dir.path());
        if let Some(p) = passphrase {
            cmd.env("WHARF_BACKUP_PASSPHRASE", p);
        }
        cmd.output().await.expect("run wharf")
    }

    fn to(&self) -> String {
        self.backups.display().to_string()
    }

    async fn backup(&self, name: &str) -> Output {
        let to = self.to();
        let out = self
            .wharf(&[
                "backup",
                "create",
                name,
                "--to",
                &to,
                "--s3-endpoint",
                &self.moto.endpoint,
            ])
            .await;
        assert!(out.status.success(), "backup: {}", text(&out.stderr));
        out
    }

    async fn restore(&self, name: &str, extra: &[&str]) -> Output {
        let to = self.to();
        let mut args = vec![
            "restore",
            name,
            "--from",
            &to,
            "--s3-endpoint",
            &self.moto.endpoint,
        ];
        args.extend_from_slice(extra);
        self.wharf(&args).await
    }

    fn store(&self) -> std::sync::Arc<dyn ObjectStore> {
        s3(&self.moto).store(BUCKET).unwrap()
    }
}

fn s3(moto: &Moto) -> S3Access {
    S3Access {
        access_key_id: "any".into(),
        secret_access_key: "any-secret".into(),
        endpoint: moto.endpoint.clone(),
        region: "us-east-1".into(),
    }
}

/// The deployed model (with a user password), MinIO's bucket with data, a user's Greeting in
/// `team-a` with an operator-made Job and an operator-made Greeting beside it, and Dex's objects.
async fn world() -> World {
    let env = start(fast()).await;
    let moto = Moto::start().expect("moto_server (scripts/test.sh installs it)");
    moto.create_bucket(BUCKET);
    let backups = env.dir.path().join("backups");
    let w = World { env, moto, backups };
    let bundle = backup_bundle();
    let out = w
        .wharf(&[
            "deploy",
            &bundle,
            "--set",
            &format!("store.password={PASSWORD}"),
        ])
        .await;
    assert!(out.status.success(), "deploy: {}", text(&out.stderr));
    seed_data(&w.store()).await;
    seed_objects(&w.env);
    w
}

/// (key, content, attributes) of an object the tests put in the bucket.
type Seeded = (
    &'static str,
    Vec<u8>,
    &'static [(&'static str, &'static str)],
);

async fn seed_data(store: &std::sync::Arc<dyn ObjectStore>) {
    let mut big = vec![0u8; 2 * 1024 * 1024 + 5];
    for (i, b) in big.iter_mut().enumerate() {
        *b = (i * 7 % 253) as u8;
    }
    let objects: [Seeded; 3] = [
        (
            "datasets/iris.csv",
            b"sepal,petal\n1,2\n".to_vec(),
            &[("content-type", "text/csv"), ("meta:owner", "alice")],
        ),
        ("models/iris/1/model.safetensors", big, &[]),
        ("empty", vec![], &[("content-type", "application/x-empty")]),
    ];
    for (key, bytes, attrs) in objects {
        let map: BTreeMap<String, String> = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        store
            .put_opts(
                &key.into(),
                PutPayload::from(bytes),
                object_store::PutOptions {
                    attributes: map_to_attributes(&map),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
}

fn seed_objects(env: &Env) {
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}))
        .unwrap();
    let user = env
        .sim
        .put(
            json!({"apiVersion": "tiny.wharf.dev/v1alpha1", "kind": "Greeting",
            "metadata": {"name": "mine", "namespace": "team-a", "labels": {"team": "a"}},
            "spec": {"text": "made by a user"}}),
        )
        .unwrap();
    let owner = json!([{"apiVersion": "tiny.wharf.dev/v1alpha1", "kind": "Greeting",
        "name": "mine", "uid": user["metadata"]["uid"], "controller": true}]);
    env.sim
        .put(
            json!({"apiVersion": "tiny.wharf.dev/v1alpha1", "kind": "Greeting",
            "metadata": {"name": "mine-child", "namespace": "team-a", "ownerReferences": owner},
            "spec": {"text": "made by the operator"}}),
        )
        .unwrap();
    env.sim
        .put(json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "mine-run", "namespace": "team-a", "ownerReferences": owner},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "example.org/run:1"}]}}}}))
        .unwrap();
    env.sim
        .put(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "passwords.dex.coreos.com"},
            "spec": {"group": "dex.coreos.com", "scope": "Namespaced",
                "names": {"plural": "passwords", "singular": "password", "kind": "Password",
                          "listKind": "PasswordList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true}}}]}}),
        )
        .unwrap();
    env.sim
        .put(
            json!({"apiVersion": "dex.coreos.com/v1", "kind": "Password",
            "metadata": {"name": "mfsw6ylsnrxxe", "namespace": MODEL},
            "email": "admin@example.com", "hash": "JDJhJDEwJHNvbWVoYXNo", "username": "admin"}),
        )
        .unwrap();
}

/// Every object in the bucket: key → (bytes, attributes).
async fn bucket(
    store: &std::sync::Arc<dyn ObjectStore>,
) -> BTreeMap<String, (Vec<u8>, BTreeMap<String, String>)> {
    let metas: Vec<object_store::ObjectMeta> = store.list(None).try_collect().await.unwrap();
    let mut out = BTreeMap::new();
    for m in metas {
        let got = store.get(&m.location).await.unwrap();
        let attrs = attributes_to_map(&got.attributes);
        out.insert(
            m.location.to_string(),
            (got.bytes().await.unwrap().to_vec(), attrs),
        );
    }
    out
}

async fn empty_bucket(store: &std::sync::Arc<dyn ObjectStore>) {
    let metas: Vec<object_store::ObjectMeta> = store.list(None).try_collect().await.unwrap();
    for m in metas {
        store.delete(&m.location).await.unwrap();
    }
}

/// The parts of the objects a restore must bring back identical.
fn snapshot(env: &Env) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut add = |key: String, v: Value| {
        out.insert(key, v);
    };
    for name in ["store", "web", "minio"] {
        let d = env.sim.get("apps/v1", "Deployment", MODEL, name).unwrap();
        add(format!("Deployment/{name}"), d["spec"].clone());
    }
    for name in ["store-auth", "minio-credentials"] {
        let s = env.sim.get("v1", "Secret", MODEL, name).unwrap();
        add(format!("Secret/{name}"), s["data"].clone());
    }
    for name in ["store-data", "minio-data"] {
        let p = env
            .sim
            .get("v1", "PersistentVolumeClaim", MODEL, name)
            .unwrap();
        add(format!("PVC/{name}"), p["spec"]["resources"].clone());
    }
    let cm = env.sim.get("v1", "ConfigMap", MODEL, "web-config").unwrap();
    add("ConfigMap/web-config".into(), cm["data"].clone());
    for (ns, name) in [(MODEL, "web"), ("team-a", "mine")] {
        let g = env
            .sim
            .get("tiny.wharf.dev/v1alpha1", "Greeting", ns, name)
            .unwrap_or_else(|| panic!("no Greeting {ns}/{name}"));
        add(
            format!("Greeting/{ns}/{name}"),
            json!([g["spec"], g["metadata"]["labels"]]),
        );
    }
    let p = env
        .sim
        .get("dex.coreos.com/v1", "Password", MODEL, "mfsw6ylsnrxxe")
        .expect("Dex's password");
    add(
        "Password".into(),
        json!([p["email"], p["hash"], p["username"]]),
    );
    for name in ["wharf-inputs", "wharf-generated"] {
        let s = env.sim.get("v1", "Secret", MODEL, name).unwrap();
        add(format!("Secret/{name}"), s["data"].clone());
    }
    out
}

async fn delete_namespace(env: &Env, ns: &str) {
    let client = reqwest::Client::new();
    let r = client
        .delete(format!("{}/api/v1/namespaces/{ns}", env.sim.url()))
        .bearer_auth("admin-token")
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "delete namespace {ns}: {}",
        r.status()
    );
    until(10, "the namespace to go", || {
        env.sim.get("v1", "Namespace", "", ns).is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_delete_namespace_restore_objects_and_data_identical() {
    let w = world().await;
    let before = snapshot(&w.env);
    let data = bucket(&w.store()).await;
    assert_eq!(data.len(), 3);
    w.backup("b1").await;

    delete_namespace(&w.env, MODEL).await;
    delete_namespace(&w.env, "team-a").await;
    empty_bucket(&w.store()).await;
    assert!(
        w.env
            .sim
            .get("apps/v1", "Deployment", MODEL, "web")
            .is_none()
    );

    let out = w.restore("b1", &[]).await;
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("matches the backup's checksums"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(snapshot(&w.env), before);
    assert_eq!(
        bucket(&w.store()).await,
        data,
        "data, content types and metadata"
    );
    let status = w.env.status_json().await;
    for app in ["store", "web", "minio"] {
        assert_eq!(common::app(&status, app)["status"], "active", "{status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_fresh_cluster() {
    let w = world().await;
    let before = snapshot(&w.env);
    let data = bucket(&w.store()).await;
    w.backup("b1").await;

    // Another cluster and another MinIO, whose bucket Job has not made the bucket yet: the
    // restore creates it through the S3 API.
    let fresh = start(fast()).await;
    let moto = Moto::start().unwrap();
    let w2 = World {
        env: fresh,
        moto,
        backups: w.backups.clone(),
    };
    let out = w2.restore("b1", &[]).await;
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("created bucket `{BUCKET}`")),
        "{}",
        text(&out.stderr)
    );
    // The CRDs came from the records (wharf's) and from the backup (Dex's).
    assert_eq!(snapshot(&w2.env), before);
    assert_eq!(bucket(&w2.store()).await, data);
}

/// A backup never catches a deploy half-way: while another run holds the model lock it is
/// refused, naming the holder, and keeps nothing; once the lock is free it is made. (It reads the
/// lock and never takes it: the scheduled backup's ServiceAccount may only read.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_refuses_while_a_run_holds_the_model_lock() {
    let w = world().await;
    let lease = |holder: &str, seconds: i64| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "wharf-lock", "namespace": MODEL},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds,
                     "renewTime": jiff::Timestamp::now()
                        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()}})
    };
    w.env
        .sim
        .put(lease("alice@elsewhere pid 42", 3600))
        .unwrap();
    let to = w.to();
    let out = w
        .wharf(&[
            "backup",
            "create",
            "during-deploy",
            "--to",
            &to,
            "--no-data",
        ])
        .await;
    assert!(!out.status.success(), "a backup while a deploy runs");
    let err = text(&out.stderr);
    assert!(
        err.contains("locked by alice@elsewhere pid 42") && err.contains("again"),
        "{err}"
    );
    assert!(
        !w.backups.join("during-deploy").exists(),
        "nothing kept of a refused backup"
    );
    // The lock released (no holder): the same backup is made.
    w.env.sim.put(lease("", 15)).unwrap();
    let out = w
        .wharf(&[
            "backup",
            "create",
            "during-deploy",
            "--to",
            &to,
            "--no-data",
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
}

async fn history(w: &World, app: &str) -> Vec<(u64, String, String)> {
    let out = w.wharf(&["history", app, "--output", "json"]).await;
    assert!(out.status.success(), "history: {}", text(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
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

fn greeting(env: &Env) -> String {
    let cm = env.sim.get("v1", "ConfigMap", MODEL, "web-config").unwrap();
    cm["data"]["greeting"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_keeps_history_and_rollback_working() {
    let w = world().await;
    let out = w.wharf(&["config", "web", "greeting=bonjour"]).await;
    assert!(out.status.success(), "config: {}", text(&out.stderr));
    assert_eq!(greeting(&w.env), "bonjour");
    w.backup("b1").await;
    delete_namespace(&w.env, MODEL).await;

    let out = w.restore("b1", &["--no-data"]).await;
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    assert_eq!(greeting(&w.env), "bonjour");
    let h = history(&w, "web").await;
    assert_eq!(
        h.iter()
            .map(|(r, s, d)| (*r, s.as_str(), d.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, "superseded", "install"),
            (2, "superseded", "config: greeting"),
            (3, "deployed", "restore from b1"),
        ],
        "{h:?}"
    );
    let out = w.wharf(&["rollback", "web", "1"]).await;
    assert!(out.status.success(), "rollback: {}", text(&out.stderr));
    assert_eq!(greeting(&w.env), "hello");
    assert_eq!(history(&w, "web").await.last().unwrap().2, "rollback to 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_does_not_recreate_operator_owned_objects() {
    let w = world().await;
    w.backup("b1").await;
    delete_namespace(&w.env, "team-a").await;
    assert!(
        w.env
            .sim
            .get("batch/v1", "Job", "team-a", "mine-run")
            .is_none()
    );

    let out = w.restore("b1", &["--no-data"]).await;
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    let g = "tiny.wharf.dev/v1alpha1";
    let mine = w
        .env
        .sim
        .get(g, "Greeting", "team-a", "mine")
        .expect("the user's Greeting");
    assert_eq!(mine["spec"]["text"], "made by a user");
    assert!(mine["status"].is_null() && mine["metadata"]["ownerReferences"].is_null());
    assert!(
        w.env
            .sim
            .get(g, "Greeting", "team-a", "mine-child")
            .is_none(),
        "the operator's Greeting is its to make again"
    );
    assert!(
        w.env
            .sim
            .get("batch/v1", "Job", "team-a", "mine-run")
            .is_none(),
        "a Job is never in a backup"
    );
    // --namespace-mapping puts the user's objects elsewhere.
    let out = w
        .restore("b1", &["--no-data", "--namespace-mapping", "team-a=team-b"])
        .await;
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    assert!(w.env.sim.get(g, "Greeting", "team-b", "mine").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_existing_skip_vs_update() {
    let w = world().await;
    w.backup("b1").await;
    let g = "tiny.wharf.dev/v1alpha1";
    let mut mine = w.env.sim.get(g, "Greeting", "team-a", "mine").unwrap();
    mine["spec"]["text"] = json!("changed since");
    w.env.sim.put(mine).unwrap();
    let key = object_store::path::Path::from("datasets/iris.csv");
    w.store()
        .put(&key, PutPayload::from_static(b"changed since"))
        .await
        .unwrap();
    let text_of = |env: &Env| {
        env.sim.get(g, "Greeting", "team-a", "mine").unwrap()["spec"]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    let out = w.restore("b1", &["--existing", "skip"]).await;
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    assert_eq!(text_of(&w.env), "changed since");
    let got = w.store().get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], b"changed since");

    let out = w.restore("b1", &["--existing", "update"]).await;
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    assert_eq!(text_of(&w.env), "made by a user");
    let got = w.store().get(&key).await.unwrap();
    assert_eq!(attributes_to_map(&got.attributes)["meta:owner"], "alice");
    assert_eq!(&got.bytes().await.unwrap()[..], b"sepal,petal\n1,2\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_restores_nothing_with_clear_error() {
    let w = world().await;
    w.backup("b1").await;
    delete_namespace(&w.env, MODEL).await;
    let writes = w.env.sim.writes();
    let to = w.to();
    let out = w
        .run(
            &[
                "restore",
                "b1",
                "--from",
                &to,
                "--s3-endpoint",
                &w.moto.endpoint,
            ],
            Some("not the passphrase"),
        )
        .await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("wrong key") && err.contains("nothing was"),
        "{err}"
    );
    assert_eq!(w.env.sim.writes(), writes, "not one write");
    // Without any key and without a terminal: how to give one.
    let out = w
        .run(&["backup", "verify", "b1", "--from", &to], None)
        .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--passphrase-file"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_byte_fails_verify_naming_the_item() {
    let w = world().await;
    w.backup("b1").await;
    let to = w.to();
    let out = w.wharf(&["backup", "verify", "b1", "--from", &to]).await;
    assert!(out.status.success(), "verify: {}", text(&out.stderr));

    let file = w.backups.join("b1/items/000002.age");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();
    std::fs::remove_file(w.backups.join("b1/items/000004.age")).unwrap();
    let out = w.wharf(&["backup", "verify", "b1", "--from", &to]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("2 of"), "{err}");
    assert!(err.contains("item 2 (") && err.contains("altered"), "{err}");
    assert!(err.contains("item 4 (") && err.contains("missing"), "{err}");
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_in_backup_plaintext() {
    use base64::Engine;
    let w = world().await;
    let out = w.backup("b1").await;
    let generated = {
        let s = w
            .env
            .sim
            .get("v1", "Secret", MODEL, "minio-credentials")
            .unwrap();
        let b = s["data"]["secret-key"].as_str().unwrap();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap()
    };
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let needles = [
        PASSWORD.to_owned(),
        b64(PASSWORD),
        generated.clone(),
        b64(&generated),
        PASSPHRASE.to_owned(),
        "sepal,petal".to_owned(),
        "admin@example.com".to_owned(),
    ];
    let all = files(&w.backups);
    assert!(all.len() > 10, "{all:?}");
    for f in &all {
        let bytes = std::fs::read(f).unwrap();
        let haystack = String::from_utf8_lossy(&bytes);
        for n in &needles {
            assert!(
                !haystack.contains(n.as_str()),
                "{} holds a secret",
                f.display()
            );
        }
    }
    let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for n in &needles {
        assert!(!printed.contains(n.as_str()), "printed a secret: {printed}");
    }
    // Control: the same grep finds the secret in the cluster's own Secret.
    let s = w.env.sim.get("v1", "Secret", MODEL, "store-auth").unwrap();
    assert!(s.to_string().contains(&b64(PASSWORD)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backup_is_never_listed_complete() {
    let w = world().await;
    // Enough data that the backup is still writing items when it is killed.
    let store = w.store();
    for i in 0..60 {
        let bytes = vec![i as u8; 512 * 1024];
        store
            .put(&format!("bulk/{i:03}").into(), PutPayload::from(bytes))
            .await
            .unwrap();
    }
    let to = w.to();
    let mut cmd = w.env.command(&[
        "backup",
        "create",
        "killed",
        "--to",
        &to,
        "--s3-endpoint",
        &w.moto.endpoint,
    ]);
    cmd.env("WHARF_BACKUP_PASSPHRASE", PASSPHRASE);
    let mut child = cmd.spawn().unwrap();
    let items = w.backups.join("killed/items");
    until(60, "the backup to write items", || {
        items.is_dir() && std::fs::read_dir(&items).unwrap().count() >= 8
    })
    .await;
    child.start_kill().unwrap();
    let _ = child.wait().await;
    assert!(w.backups.join("killed").is_dir());
    assert!(!w.backups.join("killed/backup.json").exists());

    let out = w
        .wharf(&["backup", "list", "--from", &to, "--output", "json"])
        .await;
    assert!(out.status.success(), "list: {}", text(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["name"], "killed");
    assert_eq!(rows[0]["complete"], false, "{rows}");
    let out = w.restore("killed", &[]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no complete backup"),
        "{}",
        text(&out.stderr)
    );
    let out = w
        .wharf(&["backup", "delete", "killed", "--from", &to])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!w.backups.join("killed").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_renders_least_privilege_cronjob() {
    let w = world().await;
    let out = w
        .wharf(&[
            "backup",
            "schedule",
            "--cron",
            "0 3 * * *",
            "--keep",
            "7",
            "--to",
            "s3://backups/tiny",
            "--dry-run",
            "--output",
            "json",
        ])
        .await;
    assert!(out.status.success(), "schedule: {}", text(&out.stderr));
    let objs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "CronJob"
        ]
    );
    // Read verbs only, no wildcard verbs or groups, Secrets only in the model's namespace.
    for o in &objs {
        for rule in o["rules"].as_array().into_iter().flatten() {
            for verb in rule["verbs"].as_array().unwrap() {
                assert!(verb == "get" || verb == "list", "{rule}");
            }
            for group in rule["apiGroups"].as_array().unwrap() {
                assert_ne!(group, "*", "{rule}");
            }
            if o["kind"] == "ClusterRole" {
                assert!(!rule["resources"].to_string().contains("secrets"), "{rule}");
                assert_ne!(rule["resources"][0], "*", "{rule}");
            }
        }
    }
    let cron = &objs[5];
    assert_eq!(cron["spec"]["schedule"], "0 3 * * *");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "wharf-backup");
    // wharf's own image, whose only program is the static wharf: the command is one wharf
    // command line that wharf's real CLI accepts (kube-sim has no CronJob controller to run it).
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        wharf::images::Workload::Wharf.reference(),
        "{container}"
    );
    let command: Vec<String> = serde_json::from_value(container["command"].clone()).unwrap();
    assert_eq!(command[0], "/usr/local/bin/wharf", "{command:?}");
    let parsed = <wharf::cli::Cli as clap::Parser>::try_parse_from(&command)
        .unwrap_or_else(|e| panic!("the CronJob's command {command:?} is not wharf's: {e}"));
    let wharf::cli::Command::Backup(wharf::cli::BackupCommand::Create(create)) = parsed.command
    else {
        panic!("not `backup create`: {command:?}");
    };
    let options = create.options();
    assert_eq!(options.keep, Some(7), "retention after each success");
    assert_eq!(options.to.as_deref(), Some("s3://backups/tiny"));
    assert_eq!(options.reason, "scheduled");
    assert!(!options.data, "no --s3-endpoint: no data");
    assert_eq!(parsed.global.model, MODEL, "{command:?}");
    assert!(!command.concat().contains(PASSPHRASE));

    // With kube-sim's RBAC: that ServiceAccount can make the backup, and cannot change a thing.
    for o in &objs[..5] {
        w.env.sim.put(o.clone()).unwrap();
    }
    let token = w.env.sim.token_for_service_account(MODEL, "wharf-backup");
    let kubeconfig = w.env.dir.path().join("sa.kubeconfig");
    w.env
        .sim
        .write_kubeconfig(&kubeconfig, Some(&token))
        .unwrap();
    let to = w.to();
    let sa = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"));
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["-m", MODEL])
            .env("WHARF_CHARMS", &w.env.charms)
            .env("WHARF_BACKUP_PASSPHRASE", PASSPHRASE)
            .env_remove("KUBECONFIG");
        cmd
    };
    let out = sa(&["backup", "create", "by-sa", "--to", &to, "--no-data"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the SA's backup: {}",
        text(&out.stderr)
    );
    let bundle = backup_bundle();
    let out = sa(&["deploy", &bundle, "--set", "web.greeting=hijacked"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "the SA must not deploy");
    assert!(
        text(&out.stderr).contains("403")
            || text(&out.stderr).contains("forbidden")
            || text(&out.stderr).contains("cannot"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(greeting(&w.env), "hello");
}

/// Make the copied charm `app` look like a newer release.
fn bump(env: &Env, app: &str, version: &str) {
    let path = env.charms.join(app).join("metadata.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("version:") {
                format!("version: {version}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_makes_backup_first() {
    let w = world().await;
    bump(&w.env, "web", "2.1.0");
    let to = w.to();
    // No key and no terminal: refused before anything is written, saying how to go on.
    let writes = w.env.sim.writes();
    let out = w.run(&["upgrade", "--backup-to", &to], None).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("--no-backup") && err.contains("--passphrase-file"),
        "{err}"
    );
    assert_eq!(w.env.sim.writes(), writes);
    assert_eq!(w.env.records("web").len(), 1);

    let out = w
        .wharf(&[
            "upgrade",
            "--backup-to",
            &to,
            "--backup-data",
            "--s3-endpoint",
            &w.moto.endpoint,
        ])
        .await;
    assert!(out.status.success(), "upgrade: {}", text(&out.stderr));
    let out = w
        .wharf(&["backup", "list", "--from", &to, "--output", "json"])
        .await;
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["reason"], "before upgrade");
    assert_eq!(rows[0]["complete"], true);
    let name = rows[0]["name"].as_str().unwrap();

    let out = w.wharf(&["history", "web", "--output", "json"]).await;
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = h.as_array().unwrap().last().unwrap();
    assert_eq!(last["description"], "upgrade 2.0.0 → 2.1.0");
    assert_eq!(
        last["backup"], name,
        "the upgrade's record names its backup"
    );
    let out = w.wharf(&["backup", "verify", name, "--from", &to]).await;
    assert!(out.status.success(), "verify: {}", text(&out.stderr));
    let out = w
        .wharf(&[
            "backup", "describe", name, "--from", &to, "--output", "json",
        ])
        .await;
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["applications"]["web"], 1, "{d}");
    assert_eq!(d["contents"]["data"][0], 3, "--backup-data: {d}");
}

const FORMAT_1_PASSPHRASE: &str = "format-1 fixture passphrase";

fn format_1_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/backup/format-1")
}

/// Writes the committed fixture (run once, by hand, when format 1 was current:
/// `cargo test --test backup make_format_1_fixture -- --ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes tests/fixtures/backup/format-1"]
async fn make_format_1_fixture() {
    let w = world().await;
    let dir = format_1_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let to = dir.display().to_string();
    let out = w
        .run(
            &[
                "backup",
                "create",
                "tiny-format-1",
                "--to",
                &to,
                "--no-data",
            ],
            Some(FORMAT_1_PASSPHRASE),
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_backup_made_by_previous_format_version() {
    let info: Value = serde_json::from_slice(
        &std::fs::read(format_1_dir().join("tiny-format-1/backup.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(info["format"], 1, "the fixture is format 1 and stays so");
    let env = start(fast()).await;
    let moto = Moto::start().unwrap();
    let w = World {
        env,
        moto,
        backups: format_1_dir(),
    };
    let to = w.to();
    let out = w
        .run(
            &["backup", "verify", "tiny-format-1", "--from", &to],
            Some(FORMAT_1_PASSPHRASE),
        )
        .await;
    assert!(out.status.success(), "verify: {}", text(&out.stderr));
    let out = w
        .run(
            &["restore", "tiny-format-1", "--from", &to, "--no-data"],
            Some(FORMAT_1_PASSPHRASE),
        )
        .await;
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    let status = w.env.status_json().await;
    for app in ["store", "web", "minio"] {
        assert_eq!(common::app(&status, app)["status"], "active", "{status}");
    }
    assert!(
        w.env
            .sim
            .get("tiny.wharf.dev/v1alpha1", "Greeting", "team-a", "mine")
            .is_some()
    );
    assert!(
        w.env
            .sim
            .get("dex.coreos.com/v1", "Password", MODEL, "mfsw6ylsnrxxe")
            .is_some()
    );
    let h = history(&w, "web").await;
    assert_eq!(h.last().unwrap().2, "restore from tiny-format-1", "{h:?}");
}

// ---- Data volumes: the backup agent in its pod, through pods/exec -------------------------------

/// The deploy fixture with `store`'s claim declared as data (scaled to 0 while it is read), on a
/// kube-sim that runs exec in wharf's image as this wharf binary.
async fn volume_world() -> Env {
    let env = start(Config {
        wharf_binary: Some(PathBuf::from(env!("CARGO_BIN_EXE_wharf"))),
        ..fast()
    })
    .await;
    let meta = env.charms.join("store/metadata.yaml");
    let mut declared = std::fs::read_to_string(&meta).unwrap();
    declared.push_str("data:\n  - claim: \"{{ app.name }}-data\"\n    quiesce: scale-down\n");
    std::fs::write(&meta, declared).unwrap();
    let out = env.deploy(&[]).await;
    assert!(out.status.success(), "deploy: {}", text(&out.stderr));
    env
}

/// Files of every kind the agent keeps: nested directories, a big file, an empty one, modes, an
/// old mtime and a symlink.
fn fill_volume(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir.join("db/tables")).unwrap();
    let mut big = vec![0u8; 3 * 1024 * 1024 + 11];
    for (i, b) in big.iter_mut().enumerate() {
        *b = (i * 13 % 241) as u8;
    }
    std::fs::write(dir.join("db/tables/t1.dat"), &big).unwrap();
    std::fs::write(dir.join("db/empty"), b"").unwrap();
    std::fs::write(dir.join("secret.key"), b"k3y").unwrap();
    std::fs::set_permissions(
        dir.join("secret.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(dir.join("run.sh"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(dir.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(dir.join("db/empty"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::os::unix::fs::symlink("db/tables", dir.join("current")).unwrap();
}

/// path → (bytes, mode, symlink target, mtime of non-links): what "bit-identical" compares.
type Tree = BTreeMap<String, (Vec<u8>, u32, Option<String>, Option<i64>)>;

fn volume_tree(dir: &Path) -> Tree {
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, dir: &Path, out: &mut Tree) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let link = meta
                .file_type()
                .is_symlink()
                .then(|| std::fs::read_link(&path).unwrap().display().to_string());
            let bytes = if meta.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                vec![]
            };
            let mtime = link.is_none().then(|| meta.mtime());
            out.insert(rel, (bytes, meta.mode() & 0o7777, link, mtime));
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Tree::new();
    walk(dir, dir, &mut out);
    out
}

fn store_replicas(env: &Env) -> i64 {
    env.sim
        .get("apps/v1", "Deployment", MODEL, "store")
        .unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap_or(1)
}

fn agent_pods(env: &Env) -> Vec<String> {
    env.sim
        .list("v1", "Pod", Some(MODEL))
        .into_iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .filter(|n| n.starts_with("wharf-agent-"))
        .collect()
}

/// Run wharf while watching `store`'s replicas: the output and the fewest replicas seen.
async fn watching_replicas(env: &Env, args: &[&str]) -> (Output, i64) {
    let run = env.wharf(args);
    tokio::pin!(run);
    let mut fewest = i64::MAX;
    loop {
        tokio::select! {
            out = &mut run => return (out, fewest),
            _ = tokio::time::sleep(std::time::Duration::from_millis(5)) => {
                fewest = fewest.min(store_replicas(env));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_agent_streams_a_volume_directory_and_restores_it_bit_identical() {
    let env = volume_world().await;
    let dir = env
        .sim
        .claim_dir(MODEL, "store-data")
        .expect("store's claim is bound");
    fill_volume(&dir);
    let before = volume_tree(&dir);
    let backups = env.dir.path().join("backups");
    let to = backups.display().to_string();

    let (out, fewest) = watching_replicas(&env, &["backup", "create", "v1", "--to", &to]).await;
    assert!(out.status.success(), "backup: {}", text(&out.stderr));
    assert_eq!(fewest, 0, "store was scaled to 0 while its volume was read");
    assert_eq!(store_replicas(&env), 1, "and back to its replicas after");
    assert!(agent_pods(&env).is_empty(), "the agent pod is deleted");
    // The replicas are wharf's field again: a later deploy may change them without a conflict.
    let store = env
        .sim
        .get("apps/v1", "Deployment", MODEL, "store")
        .unwrap();
    for m in store["metadata"]["managedFields"].as_array().unwrap() {
        // (The controller's status writes own `status.replicas`; only `spec.replicas` matters.)
        if m["manager"] != "wharf" {
            assert!(
                m["fieldsV1"]["f:spec"]["f:replicas"].is_null(),
                "{} owns the replicas: {m}",
                m["manager"]
            );
        }
    }
    let out = env
        .wharf(&["backup", "describe", "v1", "--from", &to])
        .await;
    assert!(
        text(&out.stdout).contains("volume: 1 item(s)"),
        "{}",
        text(&out.stdout)
    );
    // The stream is encrypted: the volume's bytes appear nowhere in the backup.
    for f in files(&backups.join("v1")) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(10).any(|w| w == b"#!/bin/sh\n"),
            "{} holds plaintext",
            f.display()
        );
    }

    // Wipe the volume's files, then restore.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    assert!(volume_tree(&dir).is_empty());
    let (out, fewest) = watching_replicas(&env, &["restore", "v1", "--from", &to]).await;
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("store-data of `store`")
            && text(&out.stderr).contains("matches the backup's checksums"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        volume_tree(&dir),
        before,
        "bit-identical: content, modes, mtimes, links"
    );
    assert_eq!(
        fewest, 0,
        "store was scaled to 0 while its volume was written"
    );
    assert_eq!(store_replicas(&env), 1);
    assert!(agent_pods(&env).is_empty());
}

/// Without `create` on `pods/exec`, a backup with data fails naming the right (and `--no-data`),
/// keeps nothing, and leaves no agent pod and no workload scaled down behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_backup_without_pods_exec_is_refused_and_cleaned_up() {
    let env = volume_world().await;
    // Everything a backup with data needs, but pods/exec.
    let resources = [
        "secrets",
        "configmaps",
        "leases",
        "customresourcedefinitions",
        "greetings",
        "deployments",
        "statefulsets",
        "pods",
    ];
    env.sim
        .put(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "no-exec"},
            "rules": [{"apiGroups": ["*"], "resources": resources, "verbs": ["*"]}]}),
        )
        .unwrap();
    env.sim
        .put(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "no-exec"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "no-exec"},
            "subjects": [{"kind": "ServiceAccount", "name": "backup", "namespace": MODEL}]}),
        )
        .unwrap();
    let token = env.sim.token_for_service_account(MODEL, "backup");
    let kubeconfig = env.dir.path().join("sa.kubeconfig");
    env.sim.write_kubeconfig(&kubeconfig, Some(&token)).unwrap();
    let to = env.dir.path().join("backups").display().to_string();
    let as_sa = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"));
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["-m", MODEL])
            .env("WHARF_CHARMS", &env.charms)
            .env("WHARF_BACKUP_PASSPHRASE", PASSPHRASE)
            .env("HOME", env.dir.path())
            .env_remove("KUBECONFIG");
        cmd
    };
    let out = as_sa(&["backup", "create", "v1", "--to", &to])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "a backup without pods/exec");
    let err = text(&out.stderr);
    assert!(
        err.contains("pods/exec") && err.contains("--no-data") && err.contains("forbidden"),
        "{err}"
    );
    assert!(agent_pods(&env).is_empty(), "the agent pod is deleted");
    assert_eq!(store_replicas(&env), 1, "store has its replica back");
    assert!(!env.dir.path().join("backups/v1").exists(), "nothing kept");
    // --no-data needs no exec.
    let out = as_sa(&["backup", "create", "v2", "--to", &to, "--no-data"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A restore into a claim that is not empty fails in the agent (never mixing files), and the
/// agent pod is deleted and the application scaled back all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_volume_restore_deletes_the_agent_pod_and_scales_back() {
    let env = volume_world().await;
    let dir = env.sim.claim_dir(MODEL, "store-data").unwrap();
    fill_volume(&dir);
    let to = env.dir.path().join("backups").display().to_string();
    let out = env.wharf(&["backup", "create", "v1", "--to", &to]).await;
    assert!(out.status.success(), "backup: {}", text(&out.stderr));
    std::fs::write(dir.join("written-since"), b"new").unwrap();

    let (out, fewest) = watching_replicas(&env, &["restore", "v1", "--from", &to]).await;
    assert!(!out.status.success(), "a restore over files");
    let err = text(&out.stderr);
    assert!(
        err.contains("store-data") && err.contains("is not empty"),
        "{err}"
    );
    assert_eq!(fewest, 0);
    assert_eq!(store_replicas(&env), 1, "store has its replica back");
    assert!(agent_pods(&env).is_empty(), "the agent pod is deleted");
    assert_eq!(std::fs::read(dir.join("written-since")).unwrap(), b"new");
}

/// Throughput of a data volume's backup against `tar c DIR | cat >/dev/null` and `rclone copy DIR`
/// on the same machine (a measurement, not a check: run by hand,
/// `WHARF_BENCH_MIB=512 cargo test --release --test backup bench_volume_backup -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: prints MB/s"]
async fn bench_volume_backup() {
    let mib: usize = std::env::var("WHARF_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let env = volume_world().await;
    let dir = env.sim.claim_dir(MODEL, "store-data").unwrap();
    // Files of 4 MiB with varied bytes (incompressible enough), plus 1,000 small ones.
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut chunk = vec![0u8; 4 << 20];
    for i in 0..mib / 4 {
        for b in chunk.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        std::fs::create_dir_all(dir.join(format!("d{}", i % 8))).unwrap();
        std::fs::write(dir.join(format!("d{}/f{i}", i % 8)), &chunk).unwrap();
    }
    std::fs::create_dir_all(dir.join("small")).unwrap();
    for i in 0..1000 {
        std::fs::write(dir.join(format!("small/{i}")), format!("{i}").repeat(100)).unwrap();
    }
    let bytes: u64 = volume_tree(&dir).values().map(|v| v.0.len() as u64).sum();
    let mb = bytes as f64 / 1e6;
    let time = |mut cmd: std::process::Command| {
        let t = std::time::Instant::now();
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        t.elapsed().as_secs_f64()
    };
    let mut tar = std::process::Command::new("sh");
    tar.arg("-c").arg(format!(
        "tar cf - -C '{}' . | cat >/dev/null",
        dir.display()
    ));
    let tar_s = time(tar);
    let to = env.dir.path().join("backups").display().to_string();
    let t = std::time::Instant::now();
    let out = env.wharf(&["backup", "create", "bench", "--to", &to]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let wharf_s = t.elapsed().as_secs_f64();
    println!("volume: {mb:.1} MB in {} files", volume_tree(&dir).len());
    println!(
        "  tar c DIR | cat >/dev/null: {tar_s:6.2} s {:8.1} MB/s",
        mb / tar_s
    );
    println!(
        "  wharf backup create:        {wharf_s:6.2} s {:8.1} MB/s  ({:.2}x tar's time)",
        mb / wharf_s,
        wharf_s / tar_s
    );
    if which_rclone() {
        let mut rclone = std::process::Command::new("rclone");
        rclone
            .arg("copy")
            .arg(&dir)
            .arg(env.dir.path().join("rclone-copy"))
            .args(["--transfers", "4"]);
        let rclone_s = time(rclone);
        println!(
            "  rclone copy DIR DEST:       {rclone_s:6.2} s {:8.1} MB/s  (wharf takes {:.2}x rclone's time)",
            mb / rclone_s,
            wharf_s / rclone_s
        );
    } else {
        println!("  rclone: not installed (apt-get install rclone)");
    }
}

fn which_rclone() -> bool {
    std::process::Command::new("rclone")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}
