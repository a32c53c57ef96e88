//! Plain object semantics through kube-rs: selectors, pagination, optimistic concurrency,
//! validation errors, finalizers, owner garbage collection and namespace deletion.

mod common;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

#[tokio::test]
async fn list_with_label_and_field_selectors_and_pages() {
    let sim = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(common::client(&sim, None).await, "default");
    let pp = PostParams::default();
    api.create(&pp, &cm("a", json!({"app": "web", "tier": "front"})))
        .await
        .unwrap();
    api.create(&pp, &cm("b", json!({"app": "web", "tier": "back"})))
        .await
        .unwrap();
    api.create(&pp, &cm("c", json!({"app": "db"})))
        .await
        .unwrap();
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    for (sel, want) in [
        ("app=web", vec!["a", "b"]),
        ("app!=web", vec!["c"]),
        ("tier in (front,back)", vec!["a", "b"]),
        ("tier notin (front)", vec!["b", "c"]),
        ("tier", vec!["a", "b"]),
        ("!tier", vec!["c"]),
    ] {
        assert_eq!(
            names(api.list(&ListParams::default().labels(sel)).await.unwrap()),
            want,
            "{sel}"
        );
    }
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .unwrap()
        ),
        vec!["b"]
    );
    let page = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let rest = api
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(page.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(names(rest), vec!["c"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn stale_resource_version_is_409_conflict() {
    let sim = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(common::client(&sim, None).await, "default");
    let first = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let mut newer = first.clone();
    newer.data = Some([("k".to_string(), "2".to_string())].into());
    api.replace("a", &PostParams::default(), &newer)
        .await
        .unwrap();
    let mut stale = first;
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    let err = common::api_err(api.replace("a", &PostParams::default(), &stale).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_match_the_apiserver() {
    let sim = common::start().await;
    let client = common::client(&sim, None).await;
    let pp = PostParams::default();
    // Missing namespace: 404 naming it.
    let err = common::api_err(
        Api::<ConfigMap>::namespaced(client.clone(), "nope")
            .create(&pp, &cm("a", json!({})))
            .await,
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&pp, &cm("a", json!({}))).await.unwrap();
    let err = common::api_err(api.create(&pp, &cm("a", json!({}))).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    let err = common::api_err(api.create(&pp, &cm("Bad_Name", json!({}))).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(err.message.contains("metadata.name"), "{}", err.message);
    let err = common::api_err(api.get("missing").await);
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "configmaps \"missing\" not found")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn immutable_fields_are_422() {
    let sim = common::start().await;
    let client = common::client(&sim, None).await;
    let deploy: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d = |app: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": app}}, "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    };
    deploy
        .patch("web", &PatchParams::apply("wharf"), &Patch::Apply(d("a")))
        .await
        .unwrap();
    let err = common::api_err(
        deploy
            .patch("web", &PatchParams::apply("wharf"), &Patch::Apply(d("b")))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message
            .starts_with("Deployment.apps \"web\" is invalid: spec.selector"),
        "{}",
        err.message
    );
    assert!(
        err.message.ends_with("field is immutable"),
        "{}",
        err.message
    );

    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let j = |image: &str| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": image}]}}}})
    };
    let created = jobs
        .patch("j", &PatchParams::apply("wharf"), &Patch::Apply(j("a")))
        .await
        .unwrap();
    let labels = created
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    assert_eq!(
        labels.get("job-name").map(String::as_str),
        Some("j"),
        "the apiserver labels Job pods"
    );
    jobs.patch("j", &PatchParams::apply("wharf"), &Patch::Apply(j("a")))
        .await
        .expect("re-applying the same Job is fine");
    let err = common::api_err(
        jobs.patch("j", &PatchParams::apply("wharf"), &Patch::Apply(j("b")))
            .await,
    );
    assert_eq!(err.code, 422);
    assert!(err.message.contains("spec.template"), "{}", err.message);

    let svcs: Api<Service> = Api::namespaced(client, "default");
    let s = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}});
    let svc = svcs
        .patch("s", &PatchParams::apply("wharf"), &Patch::Apply(&s))
        .await
        .unwrap();
    let ip = svc.spec.unwrap().cluster_ip.unwrap();
    assert!(ip.starts_with("10.152.183."), "{ip}");
    let err = common::api_err(
        svcs.patch(
            "s",
            &PatchParams::apply("wharf"),
            &Patch::Merge(json!({"spec": {"clusterIP": "10.152.183.200"}})),
        )
        .await,
    );
    assert_eq!(err.code, 422);
    sim.shutdown().await;
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let sim = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(common::client(&sim, None).await, "default");
    let mut c = cm("f", json!({}));
    c.metadata.finalizers = Some(vec!["wharf.dev/keep".into()]);
    api.create(&PostParams::default(), &c).await.unwrap();
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let marked = api.get("f").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(common::api_err(api.get("f").await).code, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn dependents_are_collected_when_their_owner_goes() {
    let sim = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(common::client(&sim, None).await, "default");
    let owner = api
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let mut child = cm("child", json!({}));
    child.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid: owner.metadata.uid.unwrap(),
            ..Default::default()
        },
    ]);
    api.create(&PostParams::default(), &child).await.unwrap();
    api.create(&PostParams::default(), &cm("bystander", json!({})))
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::default()).await.unwrap();
    assert_eq!(common::api_err(api.get("child").await).code, 404);
    api.get("bystander").await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents() {
    let sim = common::start().await;
    let client = common::client(&sim, None).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "kubeflow"}})).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kubeflow");
    cms.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kubeflow");
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}),
    )
    .unwrap();
    let s = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(
        s.data.unwrap()["password"].0,
        b"hunter2",
        "stringData is folded into data"
    );
    nss.delete("kubeflow", &DeleteParams::default())
        .await
        .unwrap();
    // Not at once: the namespace controller deletes the contents, then the namespace.
    let ns = nss.get("kubeflow").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert_eq!(
        ns.spec.unwrap().finalizers,
        Some(vec!["kubernetes".to_string()])
    );
    assert_eq!(sim.list("v1", "ConfigMap", Some("kubeflow")).len(), 1);
    common::eventually("namespace gone", || async {
        nss.get_opt("kubeflow")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(sim.list("v1", "ConfigMap", Some("kubeflow")).is_empty());
    assert!(sim.list("v1", "Secret", Some("kubeflow")).is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn leases_support_create_and_guarded_replace() {
    let sim = common::start().await;
    let api: Api<Lease> = Api::namespaced(common::client(&sim, None).await, "default");
    let l: Lease = serde_json::from_value(json!({"metadata": {"name": "wharf-lock"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 30}})).unwrap();
    let created = api.create(&PostParams::default(), &l).await.unwrap();
    let mut mine = created.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("b".into());
    api.replace("wharf-lock", &PostParams::default(), &mine)
        .await
        .unwrap();
    let mut theirs = created;
    theirs.spec.as_mut().unwrap().holder_identity = Some("c".into());
    assert_eq!(
        common::api_err(
            api.replace("wharf-lock", &PostParams::default(), &theirs)
                .await
        )
        .code,
        409
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_namespace_waits_for_finalized_contents_and_refuses_new_ones() {
    let sim = common::start().await;
    let client = common::client(&sim, None).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "kf"}})).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kf");
    let mut held = cm("held", json!({}));
    held.metadata.finalizers = Some(vec!["wharf.dev/keep".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    nss.delete("kf", &DeleteParams::default()).await.unwrap();
    let ns = nss.get("kf").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    let err = common::api_err(
        cms.create(&PostParams::default(), &cm("late", json!({})))
            .await,
    );
    assert_eq!(err.code, 403);
    assert!(
        err.message.contains("because it is being terminated"),
        "{}",
        err.message
    );
    // The controller reports what holds the namespace, as the real one does.
    let why = common::eventually("finalizers reported", || async {
        let ns = nss.get("kf").await.unwrap();
        ns.status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "NamespaceFinalizersRemaining" && c.status == "True")
            .and_then(|c| c.message)
    })
    .await;
    assert_eq!(
        why,
        "Some content in the namespace has finalizers remaining: wharf.dev/keep in 1 resource instances"
    );
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(
        common::api_err(nss.get("kf").await).code,
        404,
        "the namespace goes with its last object"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn json_patches_as_kube_runtime_finalizer_sends_them() {
    use json_patch::{
        AddOperation, PatchOperation, RemoveOperation, TestOperation, jsonptr::PointerBuf,
    };
    let sim = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(common::client(&sim, None).await, "default");
    api.create(&PostParams::default(), &cm("f", json!({})))
        .await
        .unwrap();
    let ptr = |p: &str| PointerBuf::parse(p).unwrap();
    // Adding the first finalizer: test that there are none (the field is absent), then add.
    let add = json_patch::Patch(vec![
        PatchOperation::Test(TestOperation {
            path: ptr("/metadata/finalizers"),
            value: serde_json::Value::Null,
        }),
        PatchOperation::Add(AddOperation {
            path: ptr("/metadata/finalizers"),
            value: json!(["wharf.dev/cleanup"]),
        }),
    ]);
    let with = api
        .patch(
            "f",
            &PatchParams::default(),
            &Patch::Json::<()>(add.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        with.metadata.finalizers,
        Some(vec!["wharf.dev/cleanup".to_string()])
    );
    // Now the test fails: finalizers exist.
    assert_eq!(
        common::api_err(
            api.patch("f", &PatchParams::default(), &Patch::Json::<()>(add))
                .await
        )
        .code,
        422
    );
    api.delete("f", &DeleteParams::default()).await.unwrap();
    // Removing it by index after testing its value completes the deletion.
    let remove = json_patch::Patch(vec![
        PatchOperation::Test(TestOperation {
            path: ptr("/metadata/finalizers/0"),
            value: json!("wharf.dev/cleanup"),
        }),
        PatchOperation::Remove(RemoveOperation {
            path: ptr("/metadata/finalizers/0"),
        }),
    ]);
    api.patch("f", &PatchParams::default(), &Patch::Json::<()>(remove))
        .await
        .unwrap();
    assert_eq!(common::api_err(api.get("f").await).code, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn large_objects_up_to_the_apiserver_limit_are_accepted() {
    let sim = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(common::client(&sim, None).await, "default");
    // 2.5 MB: above axum's 2 MB default, below the apiserver's 3 MiB request limit.
    let big: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "big"}, "data": {"blob": "x".repeat(2_500_000)}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &big).await.unwrap();
    let huge: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "huge"}, "data": {"blob": "x".repeat(4_000_000)}}),
    )
    .unwrap();
    assert!(
        api.create(&PostParams::default(), &huge).await.is_err(),
        "over 3 MiB is refused"
    );
    sim.shutdown().await;
}

/// `metadata.generation` only where the real apiserver keeps one: a Deployment and a custom
/// resource get 1 and a bump on a spec change; a ConfigMap, Secret or Service never get one.
#[tokio::test]
async fn generation_only_on_kinds_that_have_one() {
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    let sim = common::start().await;
    let client = common::client(&sim, None).await;
    let pp = PatchParams::apply("test");
    let apply = |api: &Api<DynamicObject>, obj: serde_json::Value| {
        let api = api.clone();
        let pp = pp.clone();
        async move {
            let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
            let obj: DynamicObject = serde_json::from_value(obj).unwrap();
            api.patch(&name, &pp, &Patch::Apply(&obj)).await.unwrap()
        }
    };
    let api_of = |group: &str, version: &str, kind: &str, plural: &str| {
        let ar = kube::discovery::ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() {
                version.into()
            } else {
                format!("{group}/{version}")
            },
            kind: kind.into(),
            plural: plural.into(),
        };
        Api::<DynamicObject>::namespaced_with(client.clone(), "default", &ar)
    };
    let cms = api_of("", "v1", "ConfigMap", "configmaps");
    let cm = apply(&cms, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})).await;
    assert_eq!(cm.metadata.generation, None);
    let cm = apply(&cms, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}})).await;
    assert_eq!(cm.metadata.generation, None, "still none after a change");
    let secrets = api_of("", "v1", "Secret", "secrets");
    let s = apply(&secrets, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "1"}})).await;
    assert_eq!(s.metadata.generation, None);
    let services = api_of("", "v1", "Service", "services");
    let svc = apply(
        &services,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
        "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    assert_eq!(svc.metadata.generation, None);

    let deployments = api_of("apps", "v1", "Deployment", "deployments");
    let d = |image: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}},
                 "spec": {"containers": [{"name": "c", "image": image}]}}}})
    };
    assert_eq!(
        apply(&deployments, d("a")).await.metadata.generation,
        Some(1)
    );
    assert_eq!(
        apply(&deployments, d("b")).await.metadata.generation,
        Some(2)
    );

    // A custom resource without a /status subresource: a status change is a change too.
    sim.put(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "things", "singular": "thing", "kind": "Thing"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                     "type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}))
    .unwrap();
    let things = api_of("example.com", "v1", "Thing", "things");
    let t = |v: i64| json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, "status": {"v": v}});
    let first = common::eventually("things served", || async {
        let obj: DynamicObject = serde_json::from_value(t(1)).unwrap();
        things.patch("t", &pp, &Patch::Apply(&obj)).await.ok()
    })
    .await;
    assert_eq!(first.metadata.generation, Some(1));
    assert_eq!(apply(&things, t(2)).await.metadata.generation, Some(2));
}

/// ResourceQuota and LimitRange (what the workspaces operator writes into a profile namespace)
/// are served, applied with their list types, have no generation, and go with their namespace.
#[tokio::test]
async fn quotas_and_limit_ranges_are_stored_and_go_with_their_namespace() {
    use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
    let sim = common::start().await;
    let client = common::client(&sim, None).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "alice"}})).unwrap(),
        )
        .await
        .unwrap();
    let pp = PatchParams::apply("test");
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "alice");
    let quota = quotas
        .patch(
            "q",
            &pp,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": "q"}, "spec": {"hard": {"cpu": "2", "memory": "4Gi"}}})),
        )
        .await
        .unwrap();
    assert_eq!(quota.metadata.generation, None);
    assert_eq!(quota.spec.unwrap().hard.unwrap()["memory"].0, "4Gi");
    let limits: Api<LimitRange> = Api::namespaced(client.clone(), "alice");
    let limit = limits
        .patch(
            "l",
            &pp,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "LimitRange",
                "metadata": {"name": "l"}, "spec": {"limits": [{"type": "Container",
                "defaultRequest": {"cpu": "100m"}, "default": {"cpu": "1"}}]}})),
        )
        .await
        .unwrap();
    assert_eq!(limit.metadata.generation, None);
    assert_eq!(limit.spec.unwrap().limits[0].type_, "Container");

    namespaces
        .delete("alice", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually("the namespace and its contents gone", || async {
        sim.get("v1", "Namespace", "", "alice")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(sim.list("v1", "ResourceQuota", Some("alice")).is_empty());
    assert!(sim.list("v1", "LimitRange", Some("alice")).is_empty());
}
