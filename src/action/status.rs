//! `wharf status`: what the model runs and how it is doing, in the spirit of `juju status` — a
//! header, an applications table and a units table. Status comes from the workloads' readiness,
//! the charm-declared status kept in the release record and the record's own state. It costs one
//! LIST per kind (selected by `app.kubernetes.io/managed-by=wharf`), never a request per object.
//! When the model runs Prometheus (the monitoring charm), two instant queries more give each
//! InferenceService's request rate and p99 latency ([`model_metrics`]); without it, nothing more
//! is asked.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde::Serialize;
use serde_json::Value;

use super::Outcome;
use super::{Global, OutputFormat};
use crate::kube::prometheus::{self, PrometheusService, Sample};
use crate::kube::readiness::{Readiness, assess, pod_problem};
use crate::kube::{Cluster, INSTANCE_LABEL, MANAGED_BY_SELECTOR, connect, errors};
use crate::store::{Release, ReleaseStatus, Releases};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub cluster: String,
    pub kubernetes: String,
    pub wharf: String,
    pub applications: Vec<AppRow>,
    pub units: Vec<UnitRow>,
    /// Each InferenceService's traffic, from Prometheus (none without it, or before
    /// [`model_metrics`] fills it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelRow>,
    /// Why there are no rates although the model runs Prometheus (it did not answer …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models_note: Option<String>,
    /// The model's Prometheus, found among the Services status lists anyway.
    #[serde(skip)]
    pub prometheus: Option<PrometheusService>,
}

/// One InferenceService's traffic over the last 5 minutes, from the monitoring charm's recording
/// rules. `None` where Prometheus has no value (no requests: no latency).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelRow {
    pub inferenceservice: String,
    pub namespace: String,
    pub requests_per_second: Option<f64>,
    pub p99_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppRow {
    pub app: String,
    pub version: String,
    pub status: String,
    pub scale: i64,
    pub charm: String,
    pub rev: Option<u32>,
    pub address: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnitRow {
    pub unit: String,
    pub workload: String,
    pub address: String,
    pub message: String,
}

/// `--watch` and its interval.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub watch: bool,
    pub interval: u64,
}

pub fn run(global: &Global, args: &Options) -> Outcome {
    super::runtime()?.block_on(async {
        let cluster = connect(global.kubeconfig.as_deref(), global.context.as_deref()).await?;
        loop {
            let mut report = collect(&cluster, &global.model).await?;
            model_metrics(&cluster, &mut report).await;
            let text = match global.output {
                OutputFormat::Text => render_text(&report),
                OutputFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
                OutputFormat::Yaml => serde_saphyr::to_string(&report)?,
            };
            let mut out = std::io::stdout().lock();
            if args.watch && global.output == OutputFormat::Text {
                write!(out, "\x1b[2J\x1b[H")?; // clear the screen, cursor home
            }
            out.write_all(text.as_bytes())?;
            out.flush()?;
            if !args.watch {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(args.interval.max(1))) => {}
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
        }
    })
}

/// One LIST of each kind status reads, grouped by application (the instance label).
type ByApp = BTreeMap<String, Vec<(String, Value)>>;

async fn list_kind(
    cluster: &Cluster,
    model: &str,
    ar: ApiResource,
    by_app: &mut ByApp,
) -> anyhow::Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), model, &ar);
    let list = match api
        .list(&ListParams::default().labels(MANAGED_BY_SELECTOR))
        .await
    {
        Ok(l) => l,
        Err(e) if errors::is_not_found(&e) => return Ok(()),
        Err(e) => {
            return Err(anyhow!(errors::describe(
                &e,
                &format!("list {}", ar.plural),
                &cluster.server
            )));
        }
    };
    for obj in list.items {
        let v = serde_json::to_value(&obj)?;
        let app = obj
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(INSTANCE_LABEL))
            .cloned()
            .unwrap_or_default();
        by_app.entry(app).or_default().push((ar.kind.clone(), v));
    }
    Ok(())
}

pub async fn collect(cluster: &Cluster, model: &str) -> anyhow::Result<Report> {
    let releases = Releases::new(&cluster.client, model, &cluster.server)
        .list()
        .await?
        .apps;
    let mut objects = ByApp::new();
    for ar in [
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<StatefulSet>(&()),
        ApiResource::erase::<DaemonSet>(&()),
        ApiResource::erase::<Job>(&()),
        ApiResource::erase::<PersistentVolumeClaim>(&()),
        ApiResource::erase::<Service>(&()),
    ] {
        list_kind(cluster, model, ar, &mut objects).await?;
    }
    let mut pods = ByApp::new();
    list_kind(cluster, model, ApiResource::erase::<Pod>(&()), &mut pods).await?;
    let prometheus = prometheus::find(
        objects
            .values()
            .flatten()
            .filter(|(kind, _)| kind == "Service")
            .map(|(_, v)| v),
    );

    let mut names: Vec<String> = releases.keys().cloned().collect();
    names.extend(objects.keys().filter(|a| !a.is_empty()).cloned());
    names.sort();
    names.dedup();

    let mut applications = Vec::new();
    let mut units = Vec::new();
    for app in names {
        let objs = objects.get(&app).map(Vec::as_slice).unwrap_or_default();
        let latest = releases.get(&app).and_then(|r| r.last());
        applications.push(app_row(&app, objs, latest));
        let mut app_pods: Vec<&(String, Value)> = pods.get(&app).into_iter().flatten().collect();
        app_pods.sort_by_key(|(_, p)| {
            p.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        for (i, (_, pod)) in app_pods.iter().enumerate() {
            units.push(unit_row(&app, i, pod));
        }
    }
    Ok(Report {
        model: model.to_owned(),
        cluster: cluster.server.clone(),
        kubernetes: cluster.kube_version.clone(),
        wharf: env!("CARGO_PKG_VERSION").to_owned(),
        applications,
        units,
        models: Vec::new(),
        models_note: None,
        prometheus,
    })
}

/// The recording rules of the monitoring charm that status reads (charms/monitoring).
pub const RATE_RULE: &str = "inferenceservice:requests:rate5m";
pub const P99_RULE: &str = "inferenceservice:request_duration_seconds:p99_5m";
/// How long status waits for Prometheus: it is a glance, not a report.
const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Fill `report.models` from the model's Prometheus, if it runs one. A Prometheus that does not
/// answer leaves a note instead: status itself never fails for it.
pub async fn model_metrics(cluster: &Cluster, report: &mut Report) {
    let Some(svc) = report.prometheus.clone() else {
        return;
    };
    match request_rates(&cluster.client, &svc).await {
        Ok(rows) => report.models = rows,
        Err(note) => report.models_note = Some(note),
    }
}

/// Each InferenceService's request rate and p99 from Prometheus `svc`, asked as `client` (the
/// dashboard's Models page asks the same); `Err` is the note to show instead.
pub async fn request_rates(
    client: &kube::Client,
    svc: &PrometheusService,
) -> Result<Vec<ModelRow>, String> {
    let ask = |promql: &'static str| {
        let svc = svc.clone();
        async move { prometheus::query(client, &svc, promql, PROMETHEUS_TIMEOUT).await }
    };
    match tokio::try_join!(ask(RATE_RULE), ask(P99_RULE)) {
        Ok((rates, p99s)) => Ok(model_rows(&rates, &p99s)),
        Err(e) => Err(format!("no request rates: {e:#}")),
    }
}

/// One row per InferenceService either query names, sorted by namespace and name.
pub fn model_rows(rates: &[Sample], p99s: &[Sample]) -> Vec<ModelRow> {
    let key = |s: &Sample| {
        (
            s.labels.get("namespace").cloned().unwrap_or_default(),
            s.labels
                .get("inferenceservice")
                .cloned()
                .unwrap_or_default(),
        )
    };
    let finite = |v: f64| v.is_finite().then_some(v);
    let mut rows: BTreeMap<(String, String), ModelRow> = BTreeMap::new();
    for (samples, is_rate) in [(rates, true), (p99s, false)] {
        for sample in samples {
            let (namespace, inferenceservice) = key(sample);
            if inferenceservice.is_empty() {
                continue;
            }
            let row = rows
                .entry((namespace.clone(), inferenceservice.clone()))
                .or_insert_with(|| ModelRow {
                    inferenceservice,
                    namespace,
                    requests_per_second: None,
                    p99_seconds: None,
                });
            if is_rate {
                row.requests_per_second = finite(sample.value);
            } else {
                row.p99_seconds = finite(sample.value);
            }
        }
    }
    rows.into_values().collect()
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// An application's row: status from (in order) a failed workload, a failed record, a running
/// deploy, a workload still coming up, the charm-declared status, else active.
pub fn app_row(app: &str, objs: &[(String, Value)], latest: Option<&Release>) -> AppRow {
    let mut waiting = None;
    let mut failed = None;
    let mut scale = 0;
    let mut address = String::new();
    let mut external_address = false;
    let mut version = String::new();
    for (kind, obj) in objs {
        let name = str_at(obj, "/metadata/name").unwrap_or("?");
        if version.is_empty() {
            version = str_at(obj, "/metadata/labels/app.kubernetes.io~1version")
                .unwrap_or("")
                .to_owned();
        }
        if matches!(kind.as_str(), "Deployment" | "StatefulSet") {
            // The application's scale: a charm with several workloads (argo: its controller and
            // its server) runs that many replicas of each, so the row shows the largest, not
            // their sum.
            scale = scale.max(
                obj.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1),
            );
        }
        if kind == "Service" {
            // The address users reach: a load balancer's beats any cluster IP.
            let external = str_at(obj, "/status/loadBalancer/ingress/0/ip")
                .or_else(|| str_at(obj, "/status/loadBalancer/ingress/0/hostname"));
            if let Some(ip) = external.filter(|_| !external_address) {
                address = ip.to_owned();
                external_address = true;
            } else if address.is_empty()
                && let Some(ip) = str_at(obj, "/spec/clusterIP").filter(|ip| *ip != "None")
            {
                address = ip.to_owned();
            }
        }
        match assess(kind, obj) {
            Readiness::Ready => {}
            Readiness::Waiting(why) => {
                waiting.get_or_insert(format!("{kind} {name}: {why}"));
            }
            Readiness::Failed(why) => {
                failed.get_or_insert(format!("{kind} {name}: {why}"));
            }
        }
    }
    let (status, message) = if let Some(why) = failed {
        ("error".to_owned(), why)
    } else if let Some(r) =
        latest.filter(|r| r.status == ReleaseStatus::Failed && waiting.is_some())
    {
        (
            "error".to_owned(),
            r.reason.clone().unwrap_or_else(|| "deploy failed".into()),
        )
    } else if let Some(r) = latest.filter(|r| r.status.is_pending()) {
        (
            "maintenance".to_owned(),
            format!("deploying revision {}", r.revision),
        )
    } else if let Some(why) = waiting {
        ("waiting".to_owned(), why)
    } else if let Some((s, m)) = latest.and_then(|r| r.declared_status.clone()) {
        (s, m)
    } else if objs.is_empty() {
        ("unknown".to_owned(), "no workloads found".to_owned())
    } else {
        ("active".to_owned(), String::new())
    };
    AppRow {
        app: app.to_owned(),
        version: latest.map(|r| r.charm_version.clone()).unwrap_or(version),
        status,
        scale,
        charm: latest.map(|r| r.charm.clone()).unwrap_or_default(),
        rev: latest.map(|r| r.revision),
        address,
        message,
    }
}

fn unit_row(app: &str, index: usize, pod: &Value) -> UnitRow {
    let problem = pod_problem(pod);
    let workload = match problem.as_deref() {
        None => "active",
        Some(p)
            if p.starts_with("CrashLoopBackOff")
                || p.starts_with("Failed")
                || p.starts_with("Error") =>
        {
            "error"
        }
        Some(p) if p.starts_with("Succeeded") => "active",
        Some(_) => "waiting",
    };
    UnitRow {
        unit: format!("{app}/{index}"),
        workload: workload.to_owned(),
        address: str_at(pod, "/status/podIP").unwrap_or("").to_owned(),
        message: problem.unwrap_or_default(),
    }
}

/// Columns padded to their widest cell (`wharf tuning` prints its tables with it too).
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// The column names of the header, applications and units tables: the words `wharf status`
/// prints, shared with the dashboard's overview page so both say the same.
pub const HEADER_COLUMNS: [&str; 4] = ["Model", "Cluster", "Kubernetes", "wharf"];
pub const APP_COLUMNS: [&str; 8] = [
    "App", "Version", "Status", "Scale", "Charm", "Rev", "Address", "Message",
];
pub const UNIT_COLUMNS: [&str; 4] = ["Unit", "Workload", "Address", "Message"];
pub const MODEL_COLUMNS: [&str; 4] = ["InferenceService", "Namespace", "Req/s", "p99"];

impl Report {
    /// The header table's one row, in [`HEADER_COLUMNS`] order.
    pub fn header_cells(&self) -> Vec<String> {
        vec![
            self.model.clone(),
            self.cluster.clone(),
            self.kubernetes.clone(),
            self.wharf.clone(),
        ]
    }

    /// What to say instead of the tables when the model has no applications.
    pub fn empty_message(&self) -> Option<String> {
        self.applications.is_empty().then(|| {
            format!(
                "Model `{}` has no applications. Deploy one with `wharf deploy lite`.",
                self.model
            )
        })
    }
}

impl AppRow {
    /// The row's cells, in [`APP_COLUMNS`] order.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.app.clone(),
            self.version.clone(),
            self.status.clone(),
            self.scale.to_string(),
            self.charm.clone(),
            self.rev.map(|n| n.to_string()).unwrap_or_default(),
            self.address.clone(),
            self.message.clone(),
        ]
    }
}

impl ModelRow {
    /// The row's cells, in [`MODEL_COLUMNS`] order; `-` where Prometheus has no value.
    pub fn cells(&self) -> Vec<String> {
        let rate = self
            .requests_per_second
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
        let p99 = self.p99_seconds.map_or_else(|| "-".to_owned(), duration);
        vec![
            self.inferenceservice.clone(),
            self.namespace.clone(),
            rate,
            p99,
        ]
    }
}

/// Seconds as people read a latency: `0.42 ms`, `12.3 ms`, `1.50 s`.
fn duration(seconds: f64) -> String {
    if seconds < 0.01 {
        format!("{:.2} ms", seconds * 1000.0)
    } else if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1000.0)
    } else {
        format!("{seconds:.2} s")
    }
}

impl UnitRow {
    /// The row's cells, in [`UNIT_COLUMNS`] order.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.unit.clone(),
            self.workload.clone(),
            self.address.clone(),
            self.message.clone(),
        ]
    }
}

pub fn render_text(r: &Report) -> String {
    let mut out = table(&HEADER_COLUMNS, &[r.header_cells()]);
    out.push('\n');
    if let Some(empty) = r.empty_message() {
        out.push_str(&empty);
        out.push('\n');
        return out;
    }
    let rows: Vec<Vec<String>> = r.applications.iter().map(AppRow::cells).collect();
    out.push_str(&table(&APP_COLUMNS, &rows));
    if !r.units.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = r.units.iter().map(UnitRow::cells).collect();
        out.push_str(&table(&UNIT_COLUMNS, &rows));
    }
    if !r.models.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = r.models.iter().map(ModelRow::cells).collect();
        out.push_str(&table(&MODEL_COLUMNS, &rows));
    }
    if let Some(note) = &r.models_note {
        out.push('\n');
        out.push_str(note);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(ready: bool) -> (String, Value) {
        let avail = if ready { 1 } else { 0 };
        (
            "Deployment".into(),
            json!({"metadata": {"name": "d", "generation": 1,
            "labels": {"app.kubernetes.io/version": "1.2.3"}},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": avail}}),
        )
    }

    fn record(status: ReleaseStatus, declared: Option<(&str, &str)>) -> Release {
        let mut r = Release::fixture("a", 2).with_status(status);
        r.reason = Some("timed out waiting for Deployment m/d".into());
        r.charm_version = "1.2.3".into();
        r.declared_status = declared.map(|(s, m)| (s.into(), m.into()));
        r
    }

    #[test]
    fn status_table() {
        let cases = [
            (deployment(true), None, "active"),
            (deployment(false), None, "waiting"),
            (
                deployment(false),
                Some(record(ReleaseStatus::Failed, None)),
                "error",
            ),
            (
                deployment(false),
                Some(record(ReleaseStatus::PendingUpgrade, None)),
                "maintenance",
            ),
            (
                deployment(true),
                Some(record(
                    ReleaseStatus::Deployed,
                    Some(("blocked", "set static-password or connectors")),
                )),
                "blocked",
            ),
            (
                deployment(true),
                Some(record(ReleaseStatus::Failed, None)),
                "active",
            ),
        ];
        for (obj, rec, want) in cases {
            let row = app_row("a", &[obj], rec.as_ref());
            assert_eq!(row.status, want, "{row:?}");
        }
        let row = app_row(
            "a",
            &[deployment(false)],
            Some(&record(ReleaseStatus::Failed, None)),
        );
        assert!(row.message.contains("timed out"), "{row:?}");
        assert_eq!(row.scale, 1);
        assert_eq!(row.rev, Some(2));
    }

    /// An application with two workloads (argo's controller and server) at scale 2 has scale 2.
    #[test]
    fn the_scale_of_an_application_with_two_workloads_is_theirs_not_their_sum() {
        let two = |name: &str| {
            let (kind, mut obj) = deployment(true);
            obj["metadata"]["name"] = json!(name);
            obj["spec"]["replicas"] = json!(2);
            obj["status"]["replicas"] = json!(2);
            obj["status"]["updatedReplicas"] = json!(2);
            obj["status"]["availableReplicas"] = json!(2);
            (kind, obj)
        };
        let row = app_row("argo", &[two("argo-controller"), two("argo-server")], None);
        assert_eq!(row.scale, 2, "{row:?}");
    }

    #[test]
    fn the_load_balancer_address_wins() {
        let cluster_ip = (
            "Service".to_string(),
            json!({"metadata": {"name": "a-internal"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.152.183.7"}}),
        );
        let lb = (
            "Service".to_string(),
            json!({"metadata": {"name": "a"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.152.183.8"},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.64.140.43"}]}}}),
        );
        assert_eq!(
            app_row("a", &[cluster_ip.clone(), lb.clone()], None).address,
            "10.64.140.43"
        );
        assert_eq!(
            app_row("a", &[lb, cluster_ip.clone()], None).address,
            "10.64.140.43"
        );
        assert_eq!(app_row("a", &[cluster_ip], None).address, "10.152.183.7");
    }

    #[test]
    fn units_show_pod_problems() {
        let pod = json!({"metadata": {"name": "p"}, "status": {"phase": "Pending", "podIP": "10.1.0.5",
            "containerStatuses": [{"ready": false, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let u = unit_row("a", 0, &pod);
        assert_eq!(
            (u.unit.as_str(), u.workload.as_str(), u.address.as_str()),
            ("a/0", "error", "10.1.0.5")
        );
    }

    #[test]
    fn text_has_header_and_tables() {
        let r = Report {
            model: "wharf".into(),
            cluster: "https://127.0.0.1:16443".into(),
            kubernetes: "v1.33.0".into(),
            wharf: "0.1.0".into(),
            applications: vec![app_row("a", &[deployment(true)], None)],
            units: vec![],
            models: vec![],
            models_note: None,
            prometheus: None,
        };
        let t = render_text(&r);
        assert!(
            t.contains("App")
                && t.contains("Message")
                && t.contains("active")
                && t.contains("v1.33.0"),
            "{t}"
        );
        assert!(
            !t.contains("InferenceService"),
            "no Prometheus, no rates: {t}"
        );
    }

    fn sample(namespace: &str, name: &str, value: f64) -> Sample {
        Sample {
            labels: [("namespace", namespace), ("inferenceservice", name)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            value,
        }
    }

    #[test]
    fn model_rows_join_rate_and_p99_by_inferenceservice() {
        let rates = [
            sample("wharf", "fashion", 3.0),
            sample("wharf", "idle", 0.0),
        ];
        // No requests: Prometheus' quantile is NaN, shown as "-".
        let p99s = [
            sample("wharf", "fashion", 0.00042),
            sample("wharf", "idle", f64::NAN),
            sample("alice", "cnn", 0.25),
        ];
        let rows = model_rows(&rates, &p99s);
        let cells: Vec<Vec<String>> = rows.iter().map(ModelRow::cells).collect();
        assert_eq!(
            cells,
            [
                ["cnn", "alice", "-", "250.0 ms"],
                ["fashion", "wharf", "3.00", "0.42 ms"],
                ["idle", "wharf", "0.00", "-"],
            ]
        );
        let mut r = Report {
            model: "wharf".into(),
            cluster: String::new(),
            kubernetes: String::new(),
            wharf: String::new(),
            applications: vec![app_row("a", &[deployment(true)], None)],
            units: vec![],
            models: rows,
            models_note: None,
            prometheus: None,
        };
        let t = render_text(&r);
        assert!(t.contains("InferenceService  Namespace  Req/s  p99"), "{t}");
        r.models.clear();
        r.models_note = Some("no request rates: Prometheus did not answer within 5 s".into());
        assert!(render_text(&r).ends_with("did not answer within 5 s\n"));
    }
}
