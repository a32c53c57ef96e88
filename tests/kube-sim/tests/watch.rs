//! Watches through kube-runtime's `watcher` (list, then watch with bookmarks) and a raw watch
//! resumed from a resourceVersion.

mod common;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

fn cm(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": app}}, "data": {"k": "v"}}),
    )
    .unwrap()
}

#[tokio::test]
async fn kube_runtime_watcher_sees_adds_updates_and_deletes() {
    let sim = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(common::client(&sim, None).await, "default");
    api.create(&PostParams::default(), &cm("before", "web"))
        .await
        .unwrap();
    let mut stream = watcher(api.clone(), watcher::Config::default().labels("app=web")).boxed();

    // The initial list arrives as Init / InitApply / InitDone.
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(1), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitApply(o) => initial.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, vec!["before"]);

    api.create(&PostParams::default(), &cm("other", "db"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("new", "web"))
        .await
        .unwrap();
    api.patch(
        "new",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .unwrap();
    api.delete("new", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(1), stream.try_next())
            .await
            .expect("event in time")
            .unwrap()
            .unwrap();
        match ev {
            watcher::Event::Apply(o) => seen.push(format!(
                "apply {} {}",
                o.metadata.name.unwrap(),
                o.data.unwrap()["k"]
            )),
            watcher::Event::Delete(o) => seen.push(format!("delete {}", o.metadata.name.unwrap())),
            _ => {}
        }
    }
    assert_eq!(
        seen,
        vec!["apply new v", "apply new 2", "delete new"],
        "the db-labelled object is filtered out"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version_and_times_out() {
    let sim = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(common::client(&sim, None).await, "default");
    let a = api
        .create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.unwrap();
    api.create(&PostParams::default(), &cm("b", "x"))
        .await
        .unwrap();
    let mut s = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap()
        .boxed();
    match s.try_next().await.unwrap().unwrap() {
        WatchEvent::Added(o) => assert_eq!(
            o.metadata.name.as_deref(),
            Some("b"),
            "only events after rv"
        ),
        other => panic!("unexpected {other:?}"),
    }
    // timeoutSeconds=1 ends the stream.
    let end = tokio::time::timeout(Duration::from_millis(1800), async {
        while s.try_next().await.unwrap().is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the watch ended at its timeout");
    sim.shutdown().await;
}

#[tokio::test]
async fn applied_objects_stream_works_with_bookmarks() {
    let sim = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(common::client(&sim, None).await, "default");
    let stream = watcher(api.clone(), watcher::Config::default().any_semantic()).applied_objects();
    let creator = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        api.create(&PostParams::default(), &cm("late", "x"))
            .await
            .unwrap();
    };
    let first = async {
        futures::pin_mut!(stream);
        stream.try_next().await.unwrap().unwrap()
    };
    let (_, obj) = tokio::join!(creator, tokio::time::timeout(Duration::from_secs(1), first));
    assert_eq!(obj.unwrap().metadata.name.as_deref(), Some("late"));
    sim.shutdown().await;
}

#[tokio::test]
async fn metadata_only_requests_work() {
    let sim = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(common::client(&sim, None).await, "default");
    api.create(&PostParams::default(), &cm("m", "x"))
        .await
        .unwrap();
    let meta = api.get_metadata("m").await.unwrap();
    assert_eq!(meta.metadata.name.as_deref(), Some("m"));
    let list = api
        .list_metadata(&kube::api::ListParams::default().labels("app=x"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        list.items[0].types.as_ref().unwrap().kind,
        "PartialObjectMetadata"
    );
    let meta_api: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::namespaced(common::client(&sim, None).await, "default");
    let mut s = watcher(meta_api, watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(1), s.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("m"));
    assert_eq!(
        first.types.unwrap().kind,
        "PartialObjectMetadata",
        "metadata-only, not the whole ConfigMap"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_then_changes() {
    let sim = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(common::client(&sim, None).await, "default");
    api.create(&PostParams::default(), &cm("one", "x"))
        .await
        .unwrap();
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(1), stream.try_next())
            .await
            .expect("initial events in time")
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitApply(o) => initial.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, vec!["one"]);
    api.create(&PostParams::default(), &cm("two", "x"))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(1), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev, watcher::Event::Apply(ref o) if o.metadata.name.as_deref() == Some("two")),
        "{ev:?}"
    );
    sim.shutdown().await;
}
