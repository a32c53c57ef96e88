//! Live data: one watch per kind (TrainJob, InferenceService) for the whole dashboard, kept in a
//! kube-runtime reflector store, and server-sent events that re-render a page's live part from the
//! store whenever its kind changes. A thousand open browsers cost the cluster one watch per kind,
//! not a thousand polling loops.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

use crate::kube::errors;

/// The custom resources the dashboard shows, as the wharf.dev CRDs name them.
pub fn trainjobs() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("wharf.dev", "v1alpha1", "TrainJob"),
        "trainjobs",
    )
}

pub fn inferenceservices() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("wharf.dev", "v1alpha1", "InferenceService"),
        "inferenceservices",
    )
}

/// One watched kind: its objects, a counter bumped on every change, and why the watch is failing
/// (shown on the page: "you may not list TrainJobs", "not installed").
pub struct Kind {
    pub store: Store<DynamicObject>,
    pub changes: watch::Receiver<u64>,
    error: Arc<Mutex<Option<String>>>,
}

impl Kind {
    pub fn error(&self) -> Option<String> {
        self.error.lock().expect("watch error lock").clone()
    }

    /// The objects, sorted by name (the store's order is a hash map's).
    pub fn objects(&self) -> Vec<Arc<DynamicObject>> {
        let mut all = self.store.state();
        all.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        all
    }
}

pub struct Live {
    pub trainjobs: Kind,
    pub inferenceservices: Kind,
}

impl Live {
    /// Start the watches (in the model's namespace) on the current runtime.
    pub fn start(client: &kube::Client, namespace: &str, server: &str) -> Live {
        let watch = |ar, what| watch_kind(client, namespace, server, ar, what);
        Live {
            trainjobs: watch(trainjobs(), "TrainJobs (the trainer charm)"),
            inferenceservices: watch(inferenceservices(), "InferenceServices (the server charm)"),
        }
    }
}

fn watch_kind(
    client: &kube::Client,
    namespace: &str,
    server: &str,
    ar: ApiResource,
    what: &str,
) -> Kind {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    let writer = reflector::store::Writer::new(ar.clone());
    let store = writer.as_reader();
    let (tx, changes) = watch::channel(0u64);
    let error = Arc::new(Mutex::new(None));
    let failing = error.clone();
    let namespace = namespace.to_owned();
    let what = what.to_owned();
    let server = server.to_owned();
    // default_backoff: a failing watch (403, CRD not installed yet) is retried with a growing
    // pause, so it recovers when the rights or the CRD arrive.
    let events = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    );
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            let problem = match event {
                // Init and InitApply: the store is swapped in at InitDone, announce it then.
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
                Ok(_) => None,
                Err(e) => Some(describe(&e, &what, &namespace, &server)),
            };
            if let Some(p) = &problem {
                tracing::warn!("dashboard watch: {p}");
            }
            *failing.lock().expect("watch error lock") = problem;
            tx.send_modify(|n| *n += 1);
        }
    });
    Kind {
        store,
        changes,
        error,
    }
}

fn describe(e: &watcher::Error, what: &str, namespace: &str, server: &str) -> String {
    let api_error = match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => e,
        other => return format!("watching {what} in namespace {namespace}: {other}"),
    };
    if errors::is_not_found(api_error) {
        return format!("{what} are not installed in this cluster");
    }
    errors::describe(
        api_error,
        &format!("watch {what} in namespace {namespace}"),
        server,
    )
}

/// What a user who may not list a kind sees instead of the shared watch's objects.
pub fn denied_fragment(reason: &str) -> String {
    format!(
        "<p role=\"alert\" class=\"error\">{}</p>",
        super::html::esc(reason)
    )
}

/// Server-sent events named `name`, each carrying `render()` of the current state: one at once
/// (what changed between the page's render and the browser's connect), then one per change.
pub fn events<F>(
    changes: watch::Receiver<u64>,
    name: &'static str,
    render: F,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    F: Fn() -> String + Send + Sync + 'static,
{
    let render = Arc::new(render);
    let stream = futures::stream::unfold((changes, true), move |(mut changes, first)| {
        let render = render.clone();
        async move {
            if !first {
                changes.changed().await.ok()?;
            }
            // Many changes in a burst (a status patch per epoch) become one render.
            changes.borrow_and_update();
            let event = Event::default().event(name).data(render());
            Some((Ok(event), (changes, false)))
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
