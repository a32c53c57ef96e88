//! `wharf-trainer operator`: the TrainJob and OptimizationJob controllers. It watches TrainJobs in every namespace and
//! the Jobs they own, turns each TrainJob into a Job running `wharf-trainer train` or the user's
//! own container, and reports the outcome — and, while it runs, the per-epoch progress read from
//! the pod's log — in the TrainJob's status and as Events. `/metrics` and `/healthz` are served on
//! `--metrics-addr`; with `--leader-elect` only the replica holding the Lease reconciles.
//! OptimizationJobs (hyperparameter tuning) are a second controller in the same process: each
//! trial is a TrainJob the first one runs.
//!
//! Modules, one job each: [`job`] (spec → Job), [`status`] (Job and pod → status),
//! [`reconcile`] (the loop body), [`metrics`] (HTTP side); [`trials`] (OptimizationJob and its
//! TrainJobs → status and next trials, pure) and [`optimize`] (its loop body); the Lease is the
//! shared `wharf_leader` crate.

pub mod job;
pub mod metrics;
pub mod optimize;
pub mod reconcile;
pub mod status;
pub mod trials;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;

use wharf_leader::Elector;

use crate::crd::TrainJob;
use crate::optimization::OptimizationJob;
use job::JobSettings;
use metrics::Metrics;
use reconcile::Context;

/// The operator's settings (flags of `wharf-trainer operator`, set by the charm's templates).
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// The image training Jobs run (the charm passes its own pinned image).
    #[arg(long, env = "WHARF_TRAINER_IMAGE")]
    pub trainer_image: String,
    /// Where the trainer image carries Fashion-MNIST; `file://` datasets under it need no volume.
    #[arg(long, default_value = crate::data::DEFAULT_DATA_DIR)]
    pub dataset_path: String,
    /// Let `file://` locations outside the image become hostPath volumes (single-node clusters).
    #[arg(long)]
    pub allow_host_path: bool,
    /// For s3:// locations: the Secret in the TrainJob's namespace holding `access-key` and
    /// `secret-key` (the minio charm's Secret).
    #[arg(long, default_value = "minio-credentials")]
    pub s3_secret: String,
    /// For s3:// locations: the S3 endpoint; empty means http://minio.<POD_NAMESPACE>.svc:9000.
    #[arg(long, default_value = "")]
    pub s3_endpoint: String,
    /// For s3:// locations: the region requests are signed for.
    #[arg(long, default_value = "us-east-1")]
    pub s3_region: String,
    /// How often a running TrainJob's pod log is read for new epoch lines (status.epochs).
    #[arg(long, env = "WHARF_TRAINER_PROGRESS_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub progress_interval: std::time::Duration,
    /// Address of `/metrics` and `/healthz`.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Reconcile only while holding the Lease LEASE_NAME in LEASE_NAMESPACE (for scale > 1).
    #[arg(long)]
    pub leader_elect: bool,
    #[arg(long, default_value = "wharf-trainer-operator")]
    pub lease_name: String,
    /// Namespace of the Lease: the operator's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease and in Events (the pod name).
    #[arg(long, env = "POD_NAME", default_value = "wharf-trainer-operator")]
    pub identity: String,
}

/// Runs the operator until it loses leadership or the process is stopped.
pub async fn run(args: OperatorArgs) -> Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster, or KUBECONFIG)")?;
    let metrics = Metrics::new();
    let server = tokio::spawn(metrics::serve(args.metrics_addr, metrics.clone()));

    let elector = args.leader_elect.then(|| {
        Elector::new(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &args.identity,
        )
    });
    if let Some(elector) = &elector {
        elector.acquire().await;
    }
    metrics.leader.set(1);

    let ctx = Arc::new(Context {
        client: client.clone(),
        settings: JobSettings {
            image: args.trainer_image.clone(),
            dataset_path: args.dataset_path.clone(),
            allow_host_path: args.allow_host_path,
            s3: job::S3Settings {
                secret: args.s3_secret.clone(),
                endpoint: if args.s3_endpoint.is_empty() {
                    format!("http://minio.{}.svc:9000", args.lease_namespace)
                } else {
                    args.s3_endpoint.clone()
                },
                region: args.s3_region.clone(),
            },
        },
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "wharf-trainer".into(),
                instance: Some(args.identity.clone()),
            },
        ),
        metrics: metrics.clone(),
        progress_interval: args.progress_interval,
    });
    let trainjobs: Api<TrainJob> = Api::all(client.clone());
    let jobs: Api<Job> = Api::all(client.clone());
    let jobs_config =
        watcher::Config::default().labels("app.kubernetes.io/managed-by=wharf-trainer");
    let controller = Controller::new(trainjobs, watcher::Config::default()).owns(jobs, jobs_config);
    // The TrainJob gauges read the controller's own cache: no second watch.
    metrics.watch_trainjobs(controller.store());
    let controller = controller
        .shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        });
    // Tuning: OptimizationJobs and the trial TrainJobs they own (by label, so the TrainJobs
    // users create themselves never wake this controller).
    let optimize_ctx = Arc::new(optimize::Context {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "wharf-trainer-tuning".into(),
                instance: Some(args.identity.clone()),
            },
        ),
    });
    let trials_config = watcher::Config::default().labels(trials::LABEL_JOB);
    let tuning = Controller::new(
        Api::<OptimizationJob>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<TrainJob>::all(client.clone()), trials_config)
    .shutdown_on_signal()
    .run(optimize::reconcile, optimize::error_policy, optimize_ctx)
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "tuning controller event");
        }
    });
    let controller = async {
        futures::future::join(controller, tuning).await;
    };
    tracing::info!(image = %args.trainer_image, "reconciling TrainJobs and OptimizationJobs");
    let led = async {
        match &elector {
            Some(elector) => elector.while_leading(controller).await,
            None => {
                controller.await;
                Ok(())
            }
        }
    };
    tokio::select! {
        led = led => led.map_err(|lost| {
            metrics.leader.set(0);
            lost.into()
        }),
        served = server => match served {
            Ok(Ok(())) => anyhow::bail!("the metrics server stopped"),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.into()),
        },
    }
}
