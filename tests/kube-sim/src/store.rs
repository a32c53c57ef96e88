//! The in-memory object store: objects keyed by (group, plural, namespace, name) — one storage
//! per resource whatever the version — a global resourceVersion counter, and the event history that
//! watches replay and the simulated controllers react to.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::catalog::{Catalog, ResourceType};
use crate::defaults::Allocator;

/// How many past events watches can resume from; older resourceVersions get 410 Gone.
pub const HISTORY: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(rt: &ResourceType, namespace: &str, name: &str) -> Self {
        ObjKey {
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            namespace: if rt.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    pub fn of(rt: &ResourceType, obj: &Value) -> Self {
        Self::new(
            rt,
            obj["metadata"]["namespace"].as_str().unwrap_or_default(),
            obj["metadata"]["name"].as_str().unwrap_or_default(),
        )
    }
}

/// One change, as watches and controllers see it.
#[derive(Debug)]
pub struct Event {
    pub key: ObjKey,
    pub etype: &'static str,
    pub object: Value,
    /// The object before a MODIFIED (for selector transitions in watches).
    pub old: Option<Value>,
    pub rv: u64,
}

/// A test-supplied rule for how Job pods end.
#[derive(Debug, Clone)]
pub struct JobRule {
    pub namespace: String,
    pub pattern: regex::Regex,
    pub outcome: crate::Outcome,
}

pub struct State {
    pub catalog: Catalog,
    pub objects: BTreeMap<ObjKey, Value>,
    pub rv: u64,
    pub history: VecDeque<Arc<Event>>,
    pub events: broadcast::Sender<Arc<Event>>,
    pub controllers: mpsc::UnboundedSender<Arc<Event>>,
    pub alloc: Allocator,
    pub job_rules: Vec<JobRule>,
    /// bearer token -> user name (`system:serviceaccount:ns:name`, or the admin).
    pub tokens: BTreeMap<String, String>,
    /// What simulated containers printed (`pods/log`, see `logs.rs`).
    pub pod_logs: crate::logs::Logs,
}

impl State {
    pub fn new(controllers: mpsc::UnboundedSender<Arc<Event>>, alloc: Allocator) -> Self {
        let (events, _) = broadcast::channel(4096);
        State {
            catalog: Catalog::default(),
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            events,
            controllers,
            alloc,
            job_rules: Vec::new(),
            tokens: BTreeMap::new(),
            pod_logs: Default::default(),
        }
    }

    pub fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of one resource, optionally in one namespace, in key order.
    pub fn scan<'a>(
        &'a self,
        group: &'a str,
        plural: &'a str,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Value)> + 'a {
        let start = ObjKey {
            group: group.to_string(),
            plural: plural.to_string(),
            namespace: namespace.unwrap_or_default().to_string(),
            name: String::new(),
        };
        self.objects.range(start..).take_while(move |(k, _)| {
            k.group == group && k.plural == plural && namespace.is_none_or(|n| k.namespace == n)
        })
    }

    fn emit(&mut self, key: ObjKey, etype: &'static str, object: Value, old: Option<Value>) {
        let ev = Arc::new(Event {
            key,
            etype,
            object,
            old,
            rv: self.rv,
        });
        self.history.push_back(ev.clone());
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
        let _ = self.events.send(ev.clone());
        let _ = self.controllers.send(ev);
    }

    /// Store `obj` (a create when `old` is None) with a fresh resourceVersion; returns it.
    pub fn commit(&mut self, key: ObjKey, mut obj: Value, old: Option<Value>) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key.clone(), obj.clone());
        let etype = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.emit(key, etype, obj.clone(), old);
        obj
    }

    /// Remove an object for good (no finalizers left); returns it with the deletion's resourceVersion.
    pub fn remove(&mut self, key: &ObjKey) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.alloc.release(&obj);
        self.emit(key.clone(), "DELETED", obj.clone(), None);
        Some(obj)
    }

    /// The oldest resourceVersion a watch can resume from.
    pub fn oldest_resumable(&self) -> u64 {
        self.history.front().map(|e| e.rv - 1).unwrap_or(self.rv)
    }
}
