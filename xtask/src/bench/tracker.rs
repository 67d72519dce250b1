//! What the API server says of every object, from one watch of the bench's namespace: when it
//! got its first status and became Ready, and how many writes it took (resourceVersion bumps
//! after the create, and changes of its status).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt as _;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::Value;

/// One object as the watch saw it.
#[derive(Clone, Debug)]
pub struct Track {
    /// When the operator first wrote it (the first resourceVersion after the first seen).
    pub first_write: Option<Instant>,
    /// When a status was first seen.
    pub first_status: Option<Instant>,
    /// When it was first seen Ready for its generation.
    pub ready: Option<Instant>,
    /// Distinct resourceVersions seen after the first (each one a write).
    pub writes: u32,
    /// Times its status changed (the first status included).
    pub status_writes: u32,
    /// Each write, in order: the `Ready` condition's reason after a status change, `metadata`
    /// for a write that left the status as it was (finalizer, annotation).
    pub history: Vec<String>,
    last_version: String,
    last_status: Option<Value>,
}

/// The watch's task, stopped when this is dropped (also when the bench is interrupted).
pub struct Watching(tokio::task::JoinHandle<()>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every object of the namespace, by name.
#[derive(Clone, Default)]
pub struct Tracker {
    objects: Arc<Mutex<HashMap<String, Track>>>,
}

impl Tracker {
    /// Watches `resource` in `namespace` until the task is aborted.
    pub fn start(
        client: kube::Client,
        namespace: &str,
        resource: &ApiResource,
    ) -> (Self, Watching) {
        let tracker = Self::default();
        let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, resource);
        let objects = tracker.objects.clone();
        let task = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                let object = match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                    Ok(_) => continue,
                    Err(e) => {
                        eprintln!("bench watch: {e}");
                        continue;
                    }
                };
                observe(&objects, &object);
            }
        });
        (tracker, Watching(task))
    }

    /// A copy of every track.
    pub fn snapshot(&self) -> HashMap<String, Track> {
        self.objects.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// How many of `names` are Ready, and when the last of them became Ready (no copy of the
    /// tracks: at 10,000 objects, copying them five times a second was most of the bench's CPU).
    pub fn ready_among(&self, names: &[String]) -> (usize, Option<Instant>) {
        let Ok(objects) = self.objects.lock() else {
            return (0, None);
        };
        names
            .iter()
            .filter_map(|n| objects.get(n).and_then(|t| t.ready))
            .fold((0, None), |(count, last), ready| {
                (count + 1, last.max(Some(ready)))
            })
    }

    /// One object's track.
    pub fn get(&self, name: &str) -> Option<Track> {
        self.objects.lock().ok()?.get(name).cloned()
    }
}

fn observe(objects: &Mutex<HashMap<String, Track>>, object: &DynamicObject) {
    let now = Instant::now();
    let Some(name) = object.metadata.name.clone() else {
        return;
    };
    let version = object.metadata.resource_version.clone().unwrap_or_default();
    let status = object.data.get("status").cloned().filter(|s| !s.is_null());
    let ready = is_ready(object);
    let Ok(mut objects) = objects.lock() else {
        return;
    };
    let track = objects.entry(name).or_insert_with(|| Track {
        first_write: None,
        first_status: None,
        ready: None,
        writes: 0,
        status_writes: 0,
        history: Vec::new(),
        last_version: version.clone(),
        last_status: None,
    });
    let written = track.last_version != version;
    if written {
        track.last_version = version;
        track.writes += 1;
        track.first_write.get_or_insert(now);
    }
    if status.is_some() && status != track.last_status {
        track.status_writes += 1;
        track.first_status.get_or_insert(now);
        let reason = ready_condition(object)
            .and_then(|c| c.get("reason").and_then(Value::as_str))
            .unwrap_or("-");
        track.history.push(reason.to_owned());
        track.last_status = status;
    } else if written {
        track.history.push("metadata".to_owned());
    }
    if ready {
        track.ready.get_or_insert(now);
    }
}

/// The object's `Ready` condition, if it has one.
fn ready_condition(object: &DynamicObject) -> Option<&Value> {
    object
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
}

/// Whether the object's `Ready` condition is `True` for its generation.
fn is_ready(object: &DynamicObject) -> bool {
    let generation = object.metadata.generation;
    ready_condition(object).is_some_and(|c| {
        c.get("status").and_then(Value::as_str) == Some("True")
            && c.get("observedGeneration").and_then(Value::as_i64) == generation
    })
}
