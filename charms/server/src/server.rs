//! The HTTP server: shared state, the router for both protocols, health and metrics, JSON
//! errors for everything (unknown routes, wrong methods, oversized bodies, panics), the
//! repository poller and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;
use tower::{Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use wharf_model::location::Location;

use crate::batcher::BatchConfig;
use crate::error::{ApiError, json_error};
use crate::metrics::{Metrics, UNKNOWN_MODEL};
use crate::predictor::Loader;
use crate::repository::{Repository, VersionPolicy};
use crate::{extensions, grpc, mirror, tfserving, tfserving_grpc, v2};

/// Everything `serve` is configured with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The directory scanned for `<model>/<version>/`; with `remote`, the local cache of it.
    pub repository: PathBuf,
    /// An `s3://` model repository mirrored into `repository` before every scan.
    pub remote: Option<Location>,
    /// With `remote`: mirror only this model.
    pub only_model: Option<String>,
    pub addr: SocketAddr,
    /// Where V2 gRPC listens; None serves HTTP only.
    pub grpc_addr: Option<SocketAddr>,
    pub batch: BatchConfig,
    pub policy: VersionPolicy,
    pub poll_interval: Duration,
    pub max_body_bytes: usize,
    /// Longest wait for in-flight requests after a shutdown signal.
    pub shutdown_timeout: Duration,
}

impl ServerConfig {
    /// Defaults for everything but the repository; port 0 picks a free port (tests).
    pub fn new(repository: PathBuf) -> ServerConfig {
        ServerConfig {
            repository,
            remote: None,
            only_model: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc_addr: None,
            batch: BatchConfig::default(),
            policy: VersionPolicy::Latest,
            poll_interval: Duration::from_secs(2),
            max_body_bytes: 8 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// State shared by all handlers.
pub struct AppState {
    pub repo: Arc<Repository>,
    pub metrics: Metrics,
    pub max_body_bytes: usize,
    /// The batching every version uses (the model configuration endpoint reports it).
    pub batch: BatchConfig,
    shutting_down: AtomicBool,
}

impl AppState {
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub fn is_ready(&self) -> bool {
        !self.is_shutting_down() && self.repo.snapshot().ready()
    }

    /// The request body, or 413 / 400 as JSON when it could not be read.
    pub fn body(&self, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
        body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(self.max_body_bytes)
            } else {
                ApiError::BadRequest(format!(
                    "cannot read the request body: {}",
                    rejection.body_text()
                ))
            }
        })
    }

    /// Counts a failed inference request and renders its error.
    pub fn record_failure(&self, model: &str, started: Instant, error: ApiError) -> Response {
        self.count_failure(model, started, &error);
        error.into_response()
    }

    /// Counts a failed inference request (HTTP or gRPC) under its HTTP status code and logs it.
    pub fn count_failure(&self, model: &str, started: Instant, error: &ApiError) {
        let known = self.repo.snapshot().models.contains_key(model);
        let label = if known { model } else { UNKNOWN_MODEL };
        let status = error.status();
        self.metrics
            .requests
            .with_label_values(&[label, status.as_str()])
            .inc();
        if known {
            self.metrics
                .latency
                .with_label_values(&[label])
                .observe(started.elapsed().as_secs_f64());
        }
        if status.is_server_error() {
            tracing::warn!(model, status = status.as_u16(), error = %error, "inference request failed");
        } else {
            tracing::debug!(model, status = status.as_u16(), error = %error, "inference request rejected");
        }
    }
}

/// What the HTTP server runs: every route inside the layers every request passes (panics and
/// non-JSON errors become JSON errors, bodies are limited).
///
/// The layers wrap the router once. `Router::layer` would wrap each route in each layer, one boxed
/// service per layer that every request clones, boxes a future for and polls through: that cost
/// more instructions per request than routing itself (callgrind, scripts/bench-server.sh's
/// binary request).
pub fn app(
    state: Arc<AppState>,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ Sync
+ 'static {
    let limit = state.max_body_bytes;
    ServiceBuilder::new()
        .map_response(|response: axum::http::Response<_>| response.map(Body::new))
        .layer(CatchPanicLayer::custom(|_panic| {
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: a handler panicked; see the server log",
            )
        }))
        .map_response(json_errors)
        .layer(DefaultBodyLimit::max(limit))
        .service(router(state))
}

/// All routes, without the layers [`app`] puts around them.
fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v2", get(v2::server_metadata))
        .route("/v2/health/live", get(v2::live))
        .route("/v2/health/ready", get(v2::ready))
        .route("/v2/models/{model}", get(v2::model_metadata))
        .route("/v2/models/{model}/ready", get(v2::model_ready))
        .route("/v2/models/{model}/infer", post(v2::infer_latest))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(v2::version_metadata),
        )
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(v2::version_ready),
        )
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(v2::infer_version),
        )
        .route("/v2/models/{model}/config", get(extensions::config))
        .route(
            "/v2/models/{model}/versions/{version}/config",
            get(extensions::version_config),
        )
        .route("/v2/repository/index", post(extensions::index))
        .route("/v2/repository/models/{model}/load", post(extensions::load))
        .route(
            "/v2/repository/models/{model}/unload",
            post(extensions::unload),
        )
        .route("/v1/models", get(tfserving::list_models))
        .route(
            "/v1/models/{*rest}",
            get(tfserving::dispatch).post(tfserving::dispatch),
        )
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found(request: Request) -> Response {
    ApiError::NotFound(format!(
        "no route for {} {}; the APIs live under /v2 (Open Inference Protocol) and /v1/models (TF Serving)",
        request.method(),
        request.uri().path()
    ))
    .into_response()
}

/// Rewrites any error response that is not JSON yet (405 from the router, for instance).
fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this path".to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut out = json_error(status, &message);
    if let Some(allow) = allow {
        out.headers_mut().insert(header::ALLOW, allow);
    }
    out
}

/// A server that is listening; dropped handles do not stop it, [`RunningServer::shutdown`] does.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The V2 gRPC address, when it was asked for.
    pub grpc_addr: Option<SocketAddr>,
    pub state: Arc<AppState>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    grpc_task: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
    shutdown_timeout: Duration,
}

impl RunningServer {
    /// Stops accepting connections, lets in-flight requests finish (up to the shutdown timeout).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.state.shutting_down.store(true, Ordering::Release);
        let _ = self.stop.send(true);
        let both = async {
            let http = self.task.await;
            let grpc = match self.grpc_task {
                Some(task) => Some(task.await),
                None => None,
            };
            (http, grpc)
        };
        match tokio::time::timeout(self.shutdown_timeout, both).await {
            Ok((http, grpc)) => {
                if let Some(grpc) = grpc {
                    grpc.context("the gRPC server task failed")?
                        .context("the gRPC server failed")?;
                }
                http.context("the server task failed")?
                    .context("the server failed")
            }
            Err(_) => {
                tracing::warn!(timeout = ?self.shutdown_timeout, "in-flight requests did not finish in time");
                Ok(())
            }
        }
    }

    /// Triggers shutdown when `signal` completes, then waits for it.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        signal.await;
        tracing::info!("shutting down: finishing in-flight requests");
        self.shutdown().await
    }
}

/// Binds, starts the repository poller (first scan in the background) and serves.
pub async fn start(config: ServerConfig, loader: Arc<dyn Loader>) -> anyhow::Result<RunningServer> {
    if let Some(remote) = &config.remote {
        // Fail at start, with the store's advice, rather than serve nothing and log warnings.
        std::fs::create_dir_all(&config.repository).with_context(|| {
            format!(
                "cannot create the cache directory {} for {remote} (change --cache-dir)",
                config.repository.display()
            )
        })?;
        remote
            .check_reachable()
            .await
            .with_context(|| format!("--model-repository {remote}"))?;
        mirror::sync(remote, config.only_model.as_deref(), &config.repository)
            .await
            .map_err(|e| anyhow::anyhow!("--model-repository {remote}: {e}"))?;
    }
    if !config.repository.is_dir() {
        anyhow::bail!(
            "--model-repository {}: not a directory; create it or point the flag at the directory holding <model>/<version>/",
            config.repository.display()
        );
    }
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {} (change --port or --host)", config.addr))?;
    let addr = listener.local_addr()?;
    // Bound before anything starts, so a taken port fails the start like the HTTP one.
    let grpc_listener = match config.grpc_addr {
        Some(grpc_addr) => Some(
            tokio::net::TcpListener::bind(grpc_addr)
                .await
                .with_context(|| format!("cannot listen on {grpc_addr} (change --grpc-port)"))?,
        ),
        None => None,
    };
    let grpc_addr = grpc_listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let metrics = Metrics::new();
    let repo = Arc::new(Repository::new(
        config.repository.clone(),
        loader,
        config.policy,
        config.batch,
        metrics.clone(),
    ));
    let state = Arc::new(AppState {
        repo: repo.clone(),
        metrics,
        max_body_bytes: config.max_body_bytes,
        batch: config.batch,
        shutting_down: AtomicBool::new(false),
    });
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(poll_repository(
        repo,
        config
            .remote
            .clone()
            .map(|r| (r, config.only_model.clone())),
        config.poll_interval,
        stopped.clone(),
    ));

    let app = axum::ServiceExt::<Request>::into_make_service(app(state.clone()));
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        // Responses are one small write: do not let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
    });
    let grpc_task = grpc_listener.map(|listener| {
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let service = grpc::service(state.clone());
        // TF Serving's gRPC API shares the port: tonic routes by the service's name.
        let tf_predictions = tfserving_grpc::prediction_service(state.clone());
        let tf_models = tfserving_grpc::model_service(state.clone());
        let mut stopped_grpc = stopped.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .add_service(tf_predictions)
                .add_service(tf_models)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stopped_grpc.wait_for(|stop| *stop).await;
                })
                .await
        })
    });
    let mut stopped_serve = stopped;
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped_serve.wait_for(|stop| *stop).await;
            })
            .await
    });
    let repository = match &config.remote {
        Some(remote) => format!("{remote} (cached in {})", config.repository.display()),
        None => config.repository.display().to_string(),
    };
    tracing::info!(%addr, grpc = ?grpc_addr, %repository, policy = %config.policy, "wharf-server listening");
    Ok(RunningServer {
        addr,
        grpc_addr,
        grpc_task,
        state,
        stop,
        task,
        shutdown_timeout: config.shutdown_timeout,
    })
}

/// Scans now, then every `interval` until stopped; an S3 repository is mirrored before each
/// scan (a failed sync keeps the current models and is retried on the next round).
async fn poll_repository(
    repo: Arc<Repository>,
    remote: Option<(Location, Option<String>)>,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if let Some((remote, only)) = &remote
            && let Err(message) = mirror::sync(remote, only.as_deref(), repo.root()).await
        {
            tracing::warn!(error = %message, "model repository sync from S3 failed; keeping the current models");
        }
        let scanning = repo.clone();
        match tokio::task::spawn_blocking(move || scanning.scan()).await {
            Ok(Ok(_)) => {}
            Ok(Err(message)) => {
                tracing::warn!(error = %message, "model repository scan failed; keeping the current models")
            }
            Err(join) => tracing::error!(error = %join, "model repository scan panicked"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}
