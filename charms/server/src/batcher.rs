//! Dynamic batching: one bounded queue and one worker thread per served model version.
//!
//! Handlers submit a job (the request's rows) and await a oneshot answer. The worker takes the
//! first job, then gathers more up to `max_batch` rows, and waits up to `delay` for further jobs
//! only while other requests for the same version are known to be on their way (announced by
//! [`Batcher::announce`] before their body is parsed). A lone request therefore runs at once:
//! batching never adds latency when there is nothing to batch with.
//!
//! The forward pass runs on a plain OS thread because it is CPU-bound work that must not stall the
//! async runtime. Dropping the [`Batcher`] (when a version is unloaded and the last in-flight
//! request using it finishes) closes the queue; the thread answers what is queued and exits.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
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
            delay: Duration::from_micros(500),
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

/// The handle handlers use; owns the sending side of the queue.
pub struct Batcher {
    tx: SyncSender<Job>,
    /// Requests that resolved this version and are still parsing their body.
    announced: Arc<AtomicUsize>,
    input_len: usize,
}

/// Held by a handler between resolving the model and submitting its job; dropping it
/// withdraws the announcement (also on early return with a 400).
pub struct Announcement {
    announced: Arc<AtomicUsize>,
}

impl Drop for Announcement {
    fn drop(&mut self) {
        self.announced.fetch_sub(1, Ordering::AcqRel);
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
        let announced = Arc::new(AtomicUsize::new(0));
        let input_len = predictor.input_len();
        let worker = Worker {
            rx,
            predictor,
            config,
            announced: announced.clone(),
            batch_sizes,
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        std::thread::Builder::new()
            .name(format!("batch-{name}"))
            .spawn(move || worker.run())?;
        Ok(Batcher {
            tx,
            announced,
            input_len,
        })
    }

    /// Tells the worker another request is about to submit; keep the guard until [`Self::submit`].
    pub fn announce(&self) -> Announcement {
        self.announced.fetch_add(1, Ordering::AcqRel);
        Announcement {
            announced: self.announced.clone(),
        }
    }

    /// Queues `rows` rows of scaled inputs and waits for their probabilities.
    pub async fn infer(
        &self,
        inputs: Vec<f32>,
        rows: usize,
        announcement: Announcement,
    ) -> Result<Vec<f32>, ApiError> {
        debug_assert_eq!(inputs.len(), rows * self.input_len);
        let (reply, answer) = oneshot::channel();
        let sent = self.tx.try_send(Job {
            inputs,
            rows,
            reply,
        });
        // Withdraw only after the job is in the queue so the worker never sees neither.
        drop(announcement);
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
    announced: Arc<AtomicUsize>,
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
                let next = match self.rx.try_recv() {
                    Ok(job) => Some(job),
                    Err(TryRecvError::Disconnected) => None,
                    Err(TryRecvError::Empty) => {
                        // Wait only for requests we know are coming.
                        if self.announced.load(Ordering::Acquire) == 0 {
                            None
                        } else {
                            let now = Instant::now();
                            if now >= deadline {
                                None
                            } else {
                                match self.rx.recv_timeout(deadline - now) {
                                    Ok(job) => Some(job),
                                    Err(RecvTimeoutError::Timeout)
                                    | Err(RecvTimeoutError::Disconnected) => None,
                                }
                            }
                        }
                    }
                };
                let Some(job) = next else { break };
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
        let predictor = &self.predictor;
        let outputs = &mut self.outputs;
        // A panicking model must not take the worker (and every later request) down with it.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            predictor.predict_proba(inputs, rows, outputs)
        }))
        .unwrap_or_else(|panic| Err(panic_message(&panic)));
        let result = result.and_then(|()| {
            if self.outputs.len() == rows * classes {
                Ok(())
            } else {
                Err(format!(
                    "the model returned {} values for {rows} rows of {classes} classes",
                    self.outputs.len()
                ))
            }
        });
        let mut offset = 0;
        for job in batch.drain(..) {
            let answer = match &result {
                Ok(()) => {
                    let end = offset + job.rows * classes;
                    Ok(self.outputs[offset..end].to_vec())
                }
                Err(message) => Err(message.clone()),
            };
            offset += job.rows * classes;
            // The client may have gone away; nothing to do then.
            let _ = job.reply.send(answer);
        }
    }
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

    /// Sums each row into class 0 and records the batch sizes it saw.
    struct Recorder {
        batches: Mutex<Vec<usize>>,
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
            gate: Mutex::new(()),
        })
    }

    #[tokio::test]
    async fn a_lone_request_runs_at_once_even_with_a_long_delay() {
        let model = recorder();
        let config = BatchConfig {
            max_batch: 8,
            delay: Duration::from_secs(30),
            queue_capacity: 4,
        };
        let batcher = Batcher::spawn("t".into(), model.clone(), config, histogram()).unwrap();
        let started = Instant::now();
        let a = batcher.announce();
        let out = batcher.infer(vec![1.0, 2.0], 1, a).await.unwrap();
        assert_eq!(out, vec![3.0, -1.0]);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited for the batch delay"
        );
    }

    // The gate is contended only by the worker thread, never by a task: holding it is the point.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test]
    async fn queued_jobs_share_one_forward_pass_and_get_their_own_rows_back() {
        let model = recorder();
        let config = BatchConfig {
            max_batch: 8,
            delay: Duration::from_millis(200),
            queue_capacity: 16,
        };
        let batcher =
            Arc::new(Batcher::spawn("t".into(), model.clone(), config, histogram()).unwrap());
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
        let batches = model.batches.lock().unwrap().clone();
        assert_eq!(
            batches,
            vec![1, 3],
            "the three waiting jobs should run together"
        );
    }

    #[tokio::test]
    async fn a_panicking_model_answers_an_error_and_keeps_serving() {
        let model = recorder();
        let batcher =
            Batcher::spawn("t".into(), model, BatchConfig::default(), histogram()).unwrap();
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
    }
}
