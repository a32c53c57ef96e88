//! Dynamic batching: one bounded queue and one worker thread per served model version.
//!
//! Handlers submit a job (the request's rows) and await a oneshot answer. The worker takes the
//! first job, then gathers what is queued up to `max_batch` rows, and waits up to `delay` for
//! more only while other requests for the same version are known to be on their way (announced
//! by [`Batcher::announce`] before their body is parsed). A request that is alone (no other
//! request for this version between announcement and answer) skips the queue and runs inline on
//! its own task: batching never adds latency, nor two thread hand-offs, when there is nothing to
//! batch with.
//!
//! The forward pass of a batch runs on a plain OS thread because it is CPU-bound work that must
//! not stall the async runtime. Dropping the [`Batcher`] (when a version is unloaded and the
//! last in-flight request using it finishes) closes the queue; the thread answers what is queued
//! and exits.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant};

use prometheus::Histogram;
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::predictor::Predictor;

/// How batches are formed; shared by every model version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most rows in one forward pass (a single request with more rows still runs, alone).
    pub max_batch: usize,
    /// Longest time the first job of a batch waits for announced companions.
    pub delay: Duration,
    /// Jobs waiting per model version before new requests get 503.
    pub queue_capacity: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: 32,
            // The CLI's default (see `--batch-delay-us`): batch what is queued, wait for nothing.
            delay: Duration::ZERO,
            queue_capacity: 1024,
        }
    }
}

/// The answer to one job: `rows * num_classes` probabilities, or why the model failed.
pub type JobResult = Result<Vec<f32>, String>;

struct Job {
    inputs: Vec<f32>,
    rows: usize,
    reply: oneshot::Sender<JobResult>,
}

/// Largest request run inline on a runtime thread: a few rows of a small model take
/// microseconds, while a big request could hold the thread for milliseconds; those go to the
/// worker thread even when alone.
const INLINE_MAX_ROWS: usize = 8;

#[derive(Default)]
struct Counters {
    /// Requests that resolved this version and have not submitted yet (still parsing).
    announced: AtomicUsize,
    /// Requests between announcement and answer.
    in_flight: AtomicUsize,
}

/// The handle handlers use; owns the sending side of the queue.
pub struct Batcher {
    tx: SyncSender<Job>,
    counters: Arc<Counters>,
    predictor: Arc<dyn Predictor>,
    batch_sizes: Histogram,
    input_len: usize,
}

/// Held by a handler from resolving the model until its answer; dropping it withdraws the
/// request from both counters (also on an early return with a 400).
pub struct Announcement {
    counters: Arc<Counters>,
    pending: bool,
}

impl Announcement {
    /// The job is submitted (or running inline): the worker need not wait for it any more.
    fn submitted(&mut self) {
        if std::mem::take(&mut self.pending) {
            self.counters.announced.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Announcement {
    fn drop(&mut self) {
        self.submitted();
        self.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Batcher {
    /// Starts the worker thread for one model version.
    pub fn spawn(
        name: String,
        predictor: Arc<dyn Predictor>,
        config: BatchConfig,
        batch_sizes: Histogram,
    ) -> std::io::Result<Batcher> {
        let (tx, rx) = mpsc::sync_channel::<Job>(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            rx,
            predictor: predictor.clone(),
            config,
            counters: counters.clone(),
            batch_sizes: batch_sizes.clone(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        std::thread::Builder::new()
            .name(format!("batch-{name}"))
            .spawn(move || worker.run())?;
        Ok(Batcher {
            tx,
            counters,
            input_len: predictor.input_len(),
            predictor,
            batch_sizes,
        })
    }

    /// Tells the worker another request is coming; pass the guard to [`Self::infer`].
    pub fn announce(&self) -> Announcement {
        self.counters.in_flight.fetch_add(1, Ordering::AcqRel);
        self.counters.announced.fetch_add(1, Ordering::AcqRel);
        Announcement {
            counters: self.counters.clone(),
            pending: true,
        }
    }

    /// Runs `rows` rows of scaled inputs (inline when alone, else through the queue) and
    /// returns their probabilities.
    pub async fn infer(
        &self,
        inputs: Vec<f32>,
        rows: usize,
        mut announcement: Announcement,
    ) -> Result<Vec<f32>, ApiError> {
        debug_assert_eq!(inputs.len(), rows * self.input_len);
        if rows <= INLINE_MAX_ROWS && self.counters.in_flight.load(Ordering::Acquire) == 1 {
            // Alone. A request arriving meanwhile goes to the worker and runs in parallel with
            // this one (the model is Sync), so being wrong here costs no correctness.
            announcement.submitted();
            self.batch_sizes.observe(rows as f64);
            let mut out = Vec::with_capacity(rows * self.predictor.num_classes());
            return run_model(self.predictor.as_ref(), &inputs, rows, &mut out)
                .map(|()| out)
                .map_err(|message| ApiError::Internal(format!("the model failed: {message}")));
        }
        let (reply, answer) = oneshot::channel();
        let sent = self.tx.try_send(Job {
            inputs,
            rows,
            reply,
        });
        // Withdraw only once the job is queued so the worker never sees neither.
        announcement.submitted();
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(ApiError::Unavailable(
                    "the model's request queue is full; retry later or raise --queue-capacity"
                        .into(),
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::Unavailable(
                    "this model version is being unloaded; retry".into(),
                ));
            }
        }
        match answer.await {
            Ok(Ok(probabilities)) => Ok(probabilities),
            Ok(Err(message)) => Err(ApiError::Internal(format!("the model failed: {message}"))),
            Err(_) => Err(ApiError::Internal(
                "the batch worker stopped before answering".into(),
            )),
        }
    }
}

struct Worker {
    rx: mpsc::Receiver<Job>,
    predictor: Arc<dyn Predictor>,
    config: BatchConfig,
    counters: Arc<Counters>,
    batch_sizes: Histogram,
    /// Reused across batches so a steady load allocates nothing here.
    inputs: Vec<f32>,
    outputs: Vec<f32>,
}

impl Worker {
    fn run(mut self) {
        let mut carry: Option<Job> = None;
        let mut batch: Vec<Job> = Vec::with_capacity(self.config.max_batch);
        loop {
            let first = match carry.take() {
                Some(job) => job,
                None => match self.rx.recv() {
                    Ok(job) => job,
                    Err(_) => return, // every Batcher handle is gone: version unloaded
                },
            };
            let mut rows = first.rows;
            batch.push(first);
            let deadline = Instant::now() + self.config.delay;
            while rows < self.config.max_batch {
                let Some(job) = self.next_job(deadline) else {
                    break;
                };
                if rows + job.rows > self.config.max_batch {
                    carry = Some(job);
                    break;
                }
                rows += job.rows;
                batch.push(job);
            }
            self.run_batch(&mut batch, rows);
        }
    }

    /// A queued job, or one that arrives before `deadline` while others are announced.
    fn next_job(&self, deadline: Instant) -> Option<Job> {
        match self.rx.try_recv() {
            Ok(job) => Some(job),
            Err(TryRecvError::Disconnected) => None,
            Err(TryRecvError::Empty) => {
                if self.counters.announced.load(Ordering::Acquire) == 0 {
                    return None; // nobody is on the way: do not wait
                }
                let left = deadline.checked_duration_since(Instant::now())?;
                self.rx.recv_timeout(left).ok()
            }
        }
    }

    fn run_batch(&mut self, batch: &mut Vec<Job>, rows: usize) {
        self.batch_sizes.observe(rows as f64);
        let classes = self.predictor.num_classes();
        let inputs: &[f32] = if batch.len() == 1 {
            &batch[0].inputs
        } else {
            self.inputs.clear();
            for job in batch.iter() {
                self.inputs.extend_from_slice(&job.inputs);
            }
            &self.inputs
        };
        let result = run_model(self.predictor.as_ref(), inputs, rows, &mut self.outputs);
        let mut offset = 0;
        for job in batch.drain(..) {
            let end = offset + job.rows * classes;
            let answer = match &result {
                Ok(()) => Ok(self.outputs[offset..end].to_vec()),
                Err(message) => Err(message.clone()),
            };
            offset = end;
            // The client may have gone away; nothing to do then.
            let _ = job.reply.send(answer);
        }
    }
}

/// One forward pass, with a panic turned into an error (a panicking model must not take the
/// worker, or a runtime thread, down with it) and the output size checked.
fn run_model(
    predictor: &dyn Predictor,
    inputs: &[f32],
    rows: usize,
    out: &mut Vec<f32>,
) -> Result<(), String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        predictor.predict_proba(inputs, rows, out)
    }))
    .unwrap_or_else(|panic| Err(panic_message(&panic)))?;
    let expected = rows * predictor.num_classes();
    if out.len() != expected {
        return Err(format!(
            "the model returned {} values for {rows} rows where {expected} were expected",
            out.len()
        ));
    }
    Ok(())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Sums each row into class 0, records batch sizes and the threads it ran on, and panics
    /// on a row starting with -99.
    struct Recorder {
        batches: Mutex<Vec<usize>>,
        threads: Mutex<Vec<String>>,
        gate: Mutex<()>,
    }

    impl Predictor for Recorder {
        fn input_len(&self) -> usize {
            2
        }
        fn num_classes(&self) -> usize {
            2
        }
        fn predict_proba(
            &self,
            inputs: &[f32],
            batch: usize,
            out: &mut Vec<f32>,
        ) -> Result<(), String> {
            // The panic case below poisons the gate; later calls must still pass it.
            let _held = self.gate.lock().unwrap_or_else(|e| e.into_inner());
            self.batches.lock().unwrap().push(batch);
            let thread = std::thread::current().name().unwrap_or("").to_string();
            self.threads.lock().unwrap().push(thread);
            out.clear();
            for row in inputs.chunks(2) {
                out.push(row[0] + row[1]);
                out.push(-1.0);
            }
            if inputs.first() == Some(&-99.0) {
                panic!("boom");
            }
            Ok(())
        }
    }

    fn histogram() -> Histogram {
        Histogram::with_opts(prometheus::HistogramOpts::new("t", "t")).unwrap()
    }

    fn recorder() -> Arc<Recorder> {
        Arc::new(Recorder {
            batches: Mutex::new(vec![]),
            threads: Mutex::new(vec![]),
            gate: Mutex::new(()),
        })
    }

    fn config(delay: Duration) -> BatchConfig {
        BatchConfig {
            max_batch: 8,
            delay,
            queue_capacity: 16,
        }
    }

    #[tokio::test]
    async fn a_lone_request_runs_inline_at_once_even_with_a_long_delay() {
        let model = recorder();
        let batcher = Batcher::spawn(
            "t".into(),
            model.clone(),
            config(Duration::from_secs(30)),
            histogram(),
        )
        .unwrap();
        let started = Instant::now();
        let out = batcher
            .infer(vec![1.0, 2.0], 1, batcher.announce())
            .await
            .unwrap();
        assert_eq!(out, vec![3.0, -1.0]);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited for the batch delay"
        );
        assert_ne!(
            model.threads.lock().unwrap()[0],
            "batch-t",
            "ran on the worker"
        );
    }

    // The gate is contended only by the worker thread, never by a task: holding it is the point.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test]
    async fn queued_jobs_share_one_forward_pass_and_get_their_own_rows_back() {
        let model = recorder();
        let batcher = Arc::new(
            Batcher::spawn(
                "t".into(),
                model.clone(),
                config(Duration::ZERO),
                histogram(),
            )
            .unwrap(),
        );
        // Another request "in flight" keeps everyone off the inline path.
        let _other = batcher.announce();
        // Hold the model so that jobs pile up behind the first one.
        let gate = model.gate.lock().unwrap();
        let first = {
            let b = batcher.clone();
            tokio::spawn(async move { b.infer(vec![0.0, 0.0], 1, b.announce()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut rest = Vec::new();
        for i in 1..=3 {
            let b = batcher.clone();
            rest.push(tokio::spawn(async move {
                b.infer(vec![i as f32, 10.0], 1, b.announce()).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(gate);
        first.await.unwrap().unwrap();
        for (i, handle) in rest.into_iter().enumerate() {
            let out = handle.await.unwrap().unwrap();
            assert_eq!(out, vec![(i + 1) as f32 + 10.0, -1.0]);
        }
        assert_eq!(
            *model.batches.lock().unwrap(),
            vec![1, 3],
            "the three waiting jobs run together"
        );
        assert!(model.threads.lock().unwrap().iter().all(|t| t == "batch-t"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_worker_waits_for_announced_requests_up_to_the_delay() {
        let model = recorder();
        let batcher = Arc::new(
            Batcher::spawn(
                "t".into(),
                model.clone(),
                config(Duration::from_secs(5)),
                histogram(),
            )
            .unwrap(),
        );
        let late = batcher.announce(); // announced, still "parsing"
        let early = {
            let b = batcher.clone();
            tokio::spawn(async move { b.infer(vec![1.0, 1.0], 1, b.announce()).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !early.is_finished(),
            "the worker should wait for the announced request"
        );
        let late = batcher.infer(vec![2.0, 2.0], 1, late).await.unwrap();
        assert_eq!(late, vec![4.0, -1.0]);
        assert_eq!(early.await.unwrap().unwrap(), vec![2.0, -1.0]);
        assert_eq!(*model.batches.lock().unwrap(), vec![2]);
    }

    #[tokio::test]
    async fn a_panicking_model_answers_an_error_and_keeps_serving() {
        let model = recorder();
        let batcher =
            Batcher::spawn("t".into(), model, BatchConfig::default(), histogram()).unwrap();
        // Once inline (alone), once through the worker (another request in flight).
        for with_other in [false, true] {
            let other = with_other.then(|| batcher.announce());
            let err = batcher
                .infer(vec![-99.0, 0.0], 1, batcher.announce())
                .await
                .unwrap_err();
            assert!(
                matches!(err, ApiError::Internal(ref m) if m.contains("boom")),
                "{err:?}"
            );
            let ok = batcher
                .infer(vec![1.0, 1.0], 1, batcher.announce())
                .await
                .unwrap();
            assert_eq!(ok, vec![2.0, -1.0]);
            drop(other);
        }
    }
}
