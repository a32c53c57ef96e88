//! Live data: one watch per kind (TrainJob, InferenceService) for the whole dashboard, kept in a
//! kube-runtime reflector store, and server-sent events that re-render a page's live part from the
//! store whenever its kind changes. A thousand open browsers cost the cluster one watch per kind,
//! not a thousand polling loops.
//!
//! The profile pages (Notebooks, Tuning, Pipelines) show one namespace each, so their watches are
//! per kind and namespace ([`Watches`]): started by the first stream that needs one, shared by
//! every later stream of the same namespace, and stopped when the last one closes. A stream opens
//! only for a user the cluster lets list that kind there ([`may_list`], acting as the user).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::viewer::Viewer;
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
    /// The profile pages' watches, one per kind and namespace that a stream shows.
    pub namespaces: Watches,
}

impl Live {
    /// Start the watches (in the model's namespace) on the current runtime.
    pub fn start(client: &kube::Client, namespace: &str, server: &str) -> Live {
        // The model's two watches run as long as the dashboard: its two main pages need them.
        let watch = |ar, what| watch_kind(client, namespace, server, ar, what).0;
        Live {
            trainjobs: watch(trainjobs(), "TrainJobs (the trainer charm)"),
            inferenceservices: watch(inferenceservices(), "InferenceServices (the server charm)"),
            namespaces: Watches::new(client.clone(), server),
        }
    }
}

/// A watch of one kind in one namespace, alive while a stream holds it: dropping the last
/// [`Arc`] stops the watch (its task is aborted), so a namespace nobody looks at costs nothing.
pub struct Watched {
    pub kind: Kind,
    task: JoinHandle<()>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The running per-namespace watches, by (plural, namespace). Only weak references are kept here:
/// the streams own the watches.
pub struct Watches {
    client: kube::Client,
    server: String,
    running: Mutex<HashMap<(String, String), Weak<Watched>>>,
}

impl Watches {
    pub fn new(client: kube::Client, server: &str) -> Watches {
        Watches {
            client,
            server: server.to_owned(),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// The watch of `ar` in `namespace`: the running one, or a new one. `what` names the kind
    /// and where it comes from, for the page's error line.
    pub fn get(&self, ar: &ApiResource, what: &str, namespace: &str) -> Arc<Watched> {
        let mut running = self.running.lock().expect("watches lock");
        // Forget the watches whose last stream has closed (they have stopped already).
        running.retain(|_, w| w.strong_count() > 0);
        let key = (ar.plural.clone(), namespace.to_owned());
        if let Some(watched) = running.get(&key).and_then(Weak::upgrade) {
            return watched;
        }
        let (kind, task) = watch_kind(&self.client, namespace, &self.server, ar.clone(), what);
        let watched = Arc::new(Watched { kind, task });
        running.insert(key, Arc::downgrade(&watched));
        watched
    }

    /// How many watches are running (some stream holds them).
    pub fn running(&self) -> usize {
        let running = self.running.lock().expect("watches lock");
        running.values().filter(|w| w.strong_count() > 0).count()
    }
}

/// Whether the user may list `ar` in `namespace`, asked of the cluster as the user (a list of at
/// most one object's metadata): the shared watch runs with the dashboard's rights, so a stream of
/// what it holds opens only for users who could list it themselves. `Err` is the refusal to send:
/// the cluster's status (403 for a user without the right, 404 where the kind is not served) and
/// why, in words.
pub async fn may_list(
    viewer: &Viewer,
    ar: &ApiResource,
    namespace: &str,
) -> Result<(), (StatusCode, String)> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(viewer.cluster.client.clone(), namespace, ar);
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let status = errors::status_code(&e)
                .and_then(|code| StatusCode::from_u16(code).ok())
                .filter(|s| s.is_client_error())
                .unwrap_or(StatusCode::BAD_GATEWAY);
            let what = format!("list {} in namespace {namespace}", ar.plural);
            Err((status, errors::describe(&e, &what, &viewer.cluster.server)))
        }
    }
}

/// A profile page's kind: what to watch, what to call it, and how its list part is drawn.
pub struct NamespacePage {
    pub resource: ApiResource,
    /// The kind and where it comes from, for the error line: "Notebooks (the workspaces charm)".
    pub what: &'static str,
    /// The server-sent event's name, also the live region's id (`live-<event>`).
    pub event: &'static str,
    /// The page's path; its stream is at `<path>/events`.
    pub path: &'static str,
    /// The list part of the page for a namespace's objects (the same on load and on each event).
    pub render: fn(&str, &[DynamicObject]) -> String,
}

impl NamespacePage {
    /// The list part as the page first shows it, in the region the page's script keeps updated.
    pub fn region(&self, namespace: &str, items: &[DynamicObject]) -> String {
        format!(
            "<div id=\"live-{event}\" data-live=\"{path}/events?namespace={ns}\" \
             data-event=\"{event}\" aria-live=\"polite\">{}</div>",
            (self.render)(namespace, items),
            event = self.event,
            path = self.path,
            ns = super::html::esc(namespace),
        )
    }

    /// `GET <path>/events?namespace=NS`: the list part re-rendered from the namespace's shared
    /// watch on every change, for a user the cluster lets list the kind there; otherwise the
    /// cluster's refusal (403) and nothing of the namespace. The rights are checked when the
    /// stream opens (a browser reopens a dropped stream, and is checked again).
    pub async fn events(
        &'static self,
        state: &super::State,
        viewer: &Viewer,
        asked: Option<String>,
    ) -> Response {
        let Some(namespace) = viewer.namespace(asked) else {
            let why = format!(
                "{}/events?namespace=NS: name the namespace to follow",
                self.path
            );
            return (StatusCode::BAD_REQUEST, why).into_response();
        };
        if let Err(refused) = may_list(viewer, &self.resource, &namespace).await {
            return refused.into_response();
        }
        let watched = state
            .live
            .namespaces
            .get(&self.resource, self.what, &namespace);
        let changes = watched.kind.changes.clone();
        // The closure owns the watch: it stops when the stream (the browser) goes away.
        events(changes, self.event, move || {
            let mut out = String::new();
            if let Some(problem) = watched.kind.error() {
                out.push_str(&denied_fragment(&problem));
            }
            let items: Vec<DynamicObject> = watched
                .kind
                .objects()
                .iter()
                .map(|o| (**o).clone())
                .collect();
            out.push_str(&(self.render)(&namespace, &items));
            out
        })
        .into_response()
    }
}

/// A watch of `ar` in `namespace` feeding a store, and the task that runs it.
fn watch_kind(
    client: &kube::Client,
    namespace: &str,
    server: &str,
    ar: ApiResource,
    what: &str,
) -> (Kind, JoinHandle<()>) {
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
    let task = tokio::spawn(async move {
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
    let kind = Kind {
        store,
        changes,
        error,
    };
    (kind, task)
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

/// Server-sent events named `name`, each carrying `render()` of the current state: one as soon as
/// the watch has listed (what changed between the page's render and the browser's connect; a
/// watch a stream has just started has nothing to show before), then one per change.
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
            if first {
                // The watch task bumps the counter when its first list is in (or has failed).
                changes.wait_for(|n| *n > 0).await.ok()?;
            } else {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn notebooks() -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kubeflow.org", "v1", "Notebook"),
            "notebooks",
        )
    }

    /// A watch is shared by the streams of one kind and namespace, and stops with its last one.
    /// (The cluster is unreachable: the watches retry in the background, which is all they need
    /// to do here.)
    #[tokio::test]
    async fn a_namespace_watch_is_shared_and_stops_with_its_last_stream() {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let watches = Watches::new(kube::Client::try_from(config).unwrap(), "test");
        let what = "Notebooks (test)";
        let first = watches.get(&notebooks(), what, "alice");
        let second = watches.get(&notebooks(), what, "alice");
        assert!(
            Arc::ptr_eq(&first, &second),
            "one watch per kind and namespace"
        );
        let other = watches.get(&notebooks(), what, "bob");
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(watches.running(), 2);

        let task = first.task.abort_handle();
        drop(first);
        assert_eq!(watches.running(), 2, "a stream still holds alice's watch");
        assert!(!task.is_finished());
        drop(second);
        assert_eq!(watches.running(), 1);
        // Aborting takes effect at the task's next await.
        for _ in 0..100 {
            if task.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            task.is_finished(),
            "alice's watch still runs with no stream left"
        );
        drop(other);
        assert_eq!(watches.running(), 0);
        // A new stream starts a new watch.
        let again = watches.get(&notebooks(), what, "alice");
        assert!(!again.task.is_finished());
        assert_eq!(watches.running(), 1);
    }
}
