//! Watches: newline-delimited JSON events (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR) streamed over a
//! chunked response. A watch from a resourceVersion replays the event history after it (410 Gone
//! ERROR event when it is older than the history), a watch without one starts with ADDED for every
//! current object; then live events arrive from a broadcast channel until `timeoutSeconds`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::Shared;
use crate::catalog::ResourceType;
use crate::error::ApiError;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::Event;

/// How often an idle watch with `allowWatchBookmarks` gets a BOOKMARK.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

pub struct WatchParams {
    pub rt: Arc<ResourceType>,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub timeout: Duration,
    pub bookmarks: bool,
    /// Send `PartialObjectMetadata` instead of whole objects.
    pub metadata_only: bool,
}

impl WatchParams {
    fn shape(&self, mut obj: Value) -> Value {
        if self.metadata_only {
            return crate::server::partial(obj);
        }
        obj["apiVersion"] = json!(self.rt.api_version());
        obj
    }

    fn matches(&self, v: &Value) -> bool {
        self.labels.matches(v) && self.fields.matches(v)
    }

    fn relevant(&self, ev: &Event) -> bool {
        ev.key.group == self.rt.group
            && ev.key.plural == self.rt.plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|n| !self.rt.namespaced || ev.key.namespace == *n)
    }

    /// The event this watcher sees for `ev`, if any (selector transitions become ADDED/DELETED).
    fn translate(&self, ev: &Event) -> Option<Value> {
        if !self.relevant(ev) {
            return None;
        }
        let now = self.matches(&ev.object);
        let etype = match (ev.etype, ev.old.as_ref().map(|o| self.matches(o))) {
            ("MODIFIED", Some(true)) if now => "MODIFIED",
            ("MODIFIED", Some(true)) => "DELETED",
            ("MODIFIED", _) if now => "ADDED",
            ("MODIFIED", _) => return None,
            (t, _) if now => t,
            _ => return None,
        };
        Some(json!({"type": etype, "object": self.shape(ev.object.clone())}))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": {"apiVersion": self.rt.api_version(), "kind": self.rt.kind, "metadata": meta}})
    }
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

/// Start a watch: returns the streaming body.
pub fn start(shared: Arc<Shared>, p: WatchParams) -> Result<Body, ApiError> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut initial = Vec::new();
    let (mut events, mut last_rv) = {
        let st = shared
            .state
            .lock()
            .map_err(|_| ApiError::internal("state lock poisoned"))?;
        let rx = st.events.subscribe();
        match p
            .resource_version
            .as_deref()
            .filter(|rv| !rv.is_empty() && *rv != "0")
        {
            None => {
                for (_, v) in st.scan(
                    &p.rt.group,
                    &p.rt.plural,
                    p.namespace.as_deref().filter(|_| p.rt.namespaced),
                ) {
                    if p.matches(v) {
                        initial.push(json!({"type": "ADDED", "object": p.shape(v.clone())}));
                    }
                }
            }
            Some(rv) => {
                let from: u64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("resourceVersion \"{rv}\" is not a number"))
                })?;
                if from < st.oldest_resumable() {
                    let e = ApiError::gone(format!(
                        "too old resource version: {from} ({})",
                        st.oldest_resumable()
                    ));
                    initial.push(json!({"type": "ERROR", "object": e.to_status()}));
                } else {
                    initial.extend(
                        st.history
                            .iter()
                            .filter(|e| e.rv > from)
                            .filter_map(|e| p.translate(e)),
                    );
                }
            }
        }
        (rx, st.rv)
    };
    let expired = initial.first().is_some_and(|e| e["type"] == "ERROR");
    let mut shutdown = shared.shutdown.clone();
    tokio::spawn(async move {
        for ev in &initial {
            if tx.send(line(ev)).await.is_err() {
                return;
            }
        }
        if expired {
            return;
        }
        if p.bookmarks && tx.send(line(&p.bookmark(last_rv, true))).await.is_err() {
            return;
        }
        let deadline = tokio::time::sleep(p.timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = shutdown.changed() => return,
                _ = tick.tick(), if p.bookmarks => {
                    if tx.send(line(&p.bookmark(last_rv, false))).await.is_err() { return; }
                }
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last_rv { continue; }
                        last_rv = ev.rv;
                        if let Some(out) = p.translate(&ev)
                            && tx.send(line(&out)).await.is_err() { return; }
                    }
                    // Too slow to keep up: end the watch; the client resumes from its last resourceVersion.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Ok(Body::from_stream(stream))
}
