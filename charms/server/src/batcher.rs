//! Dynamic batching without a batch thread: the requests for one model version take turns
//! leading (flat combining).
//!
//! A request that finds nobody leading becomes the leader: it takes what is queued (up to
//! `max_batch` rows with its own), runs one forward pass on its own task, answers the others,
//! and hands the lead to the oldest request still queued, if any. A request that finds a leader
//! queues its rows and awaits its answer, or the lead. So a lone request runs at once with no
//! hand-off at all, and under load every forward pass serves several requests — with no extra
//! OS thread to wake up and put to sleep per batch, which was a quarter of the server's CPU time
//! when batches ran on a dedicated worker thread (see `scripts/bench-server.sh`).
//!
//! With `delay` above zero the leader waits up to that long for requests that are known to be
//! on their way (announced by [`Batcher::announce`] before their body is parsed); it never waits
//! when nobody is.
//!
//! The forward pass is CPU-bound: a short one (microseconds for the models wharf trains) runs
//! right on the runtime thread; one the last batch says will be long runs under
//! `block_in_place`, so the runtime moves its other tasks elsewhere meanwhile.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus::Histogram;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::predictor::Predictor;

/// How batches are formed; shared by every model version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most rows in one forward pass (a single request with more rows still runs, alone).
    pub max_batch: usize,
    /// Longest time the leader of a batch waits for announced companions.
    pub delay: Duration,
    /// Requests waiting per model version before new requests get 503.
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

/// Longest forward pass run directly on a runtime thread: wharf's MLP does 32 rows in about
/// 60 µs, while a big model's batch could hold the thread for milliseconds.
const INLINE_BUDGET: Duration = Duration::from_micros(500);

/// Rows waiting for a leader.
struct Job {
    inputs: Vec<f32>,
    rows: usize,
    reply: oneshot::Sender<Reply>,
}

/// What a queued request is told: its answer, or that it leads now (with its rows back).
enum Reply {
    Done(JobResult),
    Lead(Vec<f32>, usize),
}

/// How a request entered: it leads (with its rows), waits for an answer, or was refused.
enum Entry {
    Lead(Vec<f32>),
    Queued(oneshot::Receiver<Reply>),
    Full,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Somebody leads: is running a batch, waiting for companions, or has been handed the lead.
    /// Invariant: a queued job always has a leader that will take it.
    led: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Requests that resolved this version and have not submitted yet (still parsing).
    announced: AtomicUsize,
    /// Wakes a waiting leader when a job is queued.
    queued: Notify,
    /// How long the last forward pass took per row (0 before the first).
    nanos_per_row: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock (the model runs outside it); a poisoned lock
        // still holds a consistent queue.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The leader is done: the oldest queued request that is still waiting leads next.
    fn pass_lead(&self) {
        let mut queue = self.lock();
        while let Some(job) = queue.jobs.pop_front() {
            match job.reply.send(Reply::Lead(job.inputs, job.rows)) {
                Ok(()) => return,
                Err(_) => continue, // that client went away
            }
        }
        queue.led = false;
    }
}

/// The handle handlers use, one per served model version.
pub struct Batcher {
    shared: Arc<Shared>,
    predictor: Arc<dyn Predictor>,
    config: BatchConfig,
    batch_sizes: Histogram,
    input_len: usize,
}

/// Held by a handler from resolving the model until it submits; dropping it withdraws the
/// request (also on an early return with a 400).
pub struct Announcement {
    shared: Arc<Shared>,
    pending: bool,
}

impl Announcement {
    /// The job is submitted: a leader need not wait for it any more.
    fn submitted(&mut self) {
        if std::mem::take(&mut self.pending) {
            self.shared.announced.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Announcement {
    fn drop(&mut self) {
        self.submitted();
    }
}

/// Passes the lead on when its holder finishes — or is cancelled (the client went away) while
/// waiting for companions.
struct Leading<'a>(&'a Shared);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.0.pass_lead();
    }
}

/// A queued request's wait. If the request is cancelled after being handed the lead but before
/// taking it, the lead goes on to the next one instead of being lost.
struct Waiting<'a> {
    shared: &'a Shared,
    answer: oneshot::Receiver<Reply>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.answer.close();
        if let Ok(Reply::Lead(..)) = self.answer.try_recv() {
            self.shared.pass_lead();
        }
    }
}

impl Batcher {
    /// The batcher of one model version.
    pub fn new(predictor: Arc<dyn Predictor>, config: BatchConfig, batch_sizes: Histogram) -> Self {
        Batcher {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                announced: AtomicUsize::new(0),
                queued: Notify::new(),
                nanos_per_row: AtomicU64::new(0),
            }),
            input_len: predictor.input_len(),
            predictor,
            config,
            batch_sizes,
        }
    }

    /// Tells a leader another request is coming; pass the guard to [`Self::infer`].
    pub fn announce(&self) -> Announcement {
        self.shared.announced.fetch_add(1, Ordering::AcqRel);
        Announcement {
            shared: self.shared.clone(),
            pending: true,
        }
    }

    /// Runs `rows` rows of scaled inputs (leading a batch, or in one somebody else leads) and
    /// returns their probabilities.
    pub async fn infer(
        &self,
        inputs: Vec<f32>,
        rows: usize,
        mut announcement: Announcement,
    ) -> Result<Vec<f32>, ApiError> {
        debug_assert_eq!(inputs.len(), rows * self.input_len);
        let answer = match self.enter(inputs, rows) {
            Entry::Lead(inputs) => {
                announcement.submitted();
                return self.lead(inputs, rows).await;
            }
            Entry::Full => {
                return Err(ApiError::Unavailable(
                    "the model's request queue is full; retry later or raise --queue-capacity"
                        .into(),
                ));
            }
            Entry::Queued(answer) => answer,
        };
        // Withdrawn only once queued, so a waiting leader never sees neither.
        announcement.submitted();
        self.shared.queued.notify_one();
        let mut waiting = Waiting {
            shared: &self.shared,
            answer,
        };
        match (&mut waiting.answer).await {
            Ok(Reply::Done(result)) => result.map_err(model_failed),
            Ok(Reply::Lead(inputs, rows)) => self.lead(inputs, rows).await,
            Err(_) => Err(ApiError::Internal(
                "the batch leader stopped before answering".into(),
            )),
        }
    }

    /// Takes the lead if nobody has it, else queues the rows (the lock is never held across an
    /// await).
    fn enter(&self, inputs: Vec<f32>, rows: usize) -> Entry {
        let mut queue = self.shared.lock();
        if !queue.led {
            queue.led = true;
            return Entry::Lead(inputs);
        }
        if queue.jobs.len() >= self.config.queue_capacity.max(1) {
            return Entry::Full;
        }
        let (reply, answer) = oneshot::channel();
        queue.jobs.push_back(Job {
            inputs,
            rows,
            reply,
        });
        Entry::Queued(answer)
    }

    /// Runs one batch: this request's rows first, then what is queued behind it.
    async fn lead(&self, inputs: Vec<f32>, rows: usize) -> Result<Vec<f32>, ApiError> {
        let _leading = Leading(&self.shared);
        if !self.config.delay.is_zero() {
            self.await_companions(rows).await;
        }
        let mut others = Vec::new();
        let mut total = rows;
        {
            let mut queue = self.shared.lock();
            while let Some(job) = queue.jobs.front() {
                if total + job.rows > self.config.max_batch {
                    break;
                }
                total += job.rows;
                others.extend(queue.jobs.pop_front());
            }
        }
        self.batch_sizes.observe(total as f64);
        let joined;
        let batch: &[f32] = if others.is_empty() {
            &inputs
        } else {
            let mut all = Vec::with_capacity(total * self.input_len);
            all.extend_from_slice(&inputs);
            for job in &others {
                all.extend_from_slice(&job.inputs);
            }
            joined = all;
            &joined
        };
        let mut out = Vec::with_capacity(total * self.predictor.num_classes());
        let result = self.forward(batch, total, &mut out);
        let classes = self.predictor.num_classes();
        let mut offset = rows * classes;
        for job in others {
            let end = offset + job.rows * classes;
            let answer = match &result {
                Ok(()) => Ok(out[offset..end].to_vec()),
                Err(message) => Err(message.clone()),
            };
            offset = end;
            // The client may have gone away; nothing to do then.
            let _ = job.reply.send(Reply::Done(answer));
        }
        result.map_err(model_failed)?;
        out.truncate(rows * classes);
        Ok(out)
    }

    /// Waits until `max_batch` rows are queued, nobody else is announced, or `delay` is up.
    async fn await_companions(&self, own_rows: usize) {
        let deadline = Instant::now() + self.config.delay;
        loop {
            // Created before looking, so a job queued in between still wakes us.
            let queued = self.shared.queued.notified();
            let rows: usize = self.shared.lock().jobs.iter().map(|job| job.rows).sum();
            if own_rows + rows >= self.config.max_batch
                || self.shared.announced.load(Ordering::Acquire) == 0
            {
                return;
            }
            if tokio::time::timeout_at(deadline, queued).await.is_err() {
                return;
            }
        }
    }

    /// One forward pass, on this runtime thread when it is expected to be short (the last
    /// batch's time per row says), else under `block_in_place` so the runtime moves its other
    /// tasks elsewhere meanwhile (that costs a thread hand-off, worth it only for a long pass).
    fn forward(&self, inputs: &[f32], rows: usize, out: &mut Vec<f32>) -> Result<(), String> {
        let per_row = self.shared.nanos_per_row.load(Ordering::Relaxed);
        let long = per_row.saturating_mul(rows as u64) > INLINE_BUDGET.as_nanos() as u64;
        let multi_thread = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        let started = std::time::Instant::now();
        let result = if long && multi_thread {
            tokio::task::block_in_place(|| run_model(self.predictor.as_ref(), inputs, rows, out))
        } else {
            run_model(self.predictor.as_ref(), inputs, rows, out)
        };
        let per_row = started.elapsed().as_nanos() / rows.max(1) as u128;
        self.shared.nanos_per_row.store(
            u64::try_from(per_row).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        result
    }
}

fn model_failed(message: String) -> ApiError {
    ApiError::Internal(format!("the model failed: {message}"))
}

/// One forward pass, with a panic turned into an error (a panicking model must not take a
/// runtime thread down with it) and the output size checked.
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

    /// Sums each row into class 0, records batch sizes, and panics on a row starting with -99.
    /// `gate` lets a test hold the model while requests pile up.
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

    fn config(delay: Duration, queue_capacity: usize) -> BatchConfig {
        BatchConfig {
            max_batch: 8,
            delay,
            queue_capacity,
        }
    }

    fn queued(batcher: &Batcher) -> usize {
        batcher.shared.lock().jobs.len()
    }

    /// Sends one request and waits (up to 5 s) until it leads: with the model's gate held by
    /// the test, it then stays in its forward pass and later requests queue behind it.
    async fn spawn_leader(
        batcher: &Arc<Batcher>,
    ) -> tokio::task::JoinHandle<Result<Vec<f32>, ApiError>> {
        let b = batcher.clone();
        let leader = tokio::spawn(async move { b.infer(vec![0.0, 0.0], 1, b.announce()).await });
        for _ in 0..500 {
            if batcher.shared.lock().led {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        leader
    }

    /// Waits (briefly, polling the queue) until `n` requests are queued behind the leader.
    async fn until_queued(batcher: &Batcher, n: usize) {
        for _ in 0..500 {
            if queued(batcher) == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} requests queued, expected {n}", queued(batcher));
    }

    #[tokio::test]
    async fn a_lone_request_runs_at_once_even_with_a_long_delay() {
        let model = recorder();
        let batcher = Batcher::new(
            model.clone(),
            config(Duration::from_secs(30), 16),
            histogram(),
        );
        let started = std::time::Instant::now();
        let out = batcher
            .infer(vec![1.0, 2.0], 1, batcher.announce())
            .await
            .unwrap();
        assert_eq!(out, vec![3.0, -1.0]);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited for the batch delay"
        );
        assert!(!batcher.shared.lock().led, "the lead was not given back");
    }

    // The gate is held by the test while the leader runs on a runtime worker: holding it is the
    // point.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_queued_behind_a_leader_share_the_next_forward_pass() {
        let model = recorder();
        let batcher = Arc::new(Batcher::new(
            model.clone(),
            config(Duration::ZERO, 16),
            histogram(),
        ));
        // Hold the model so that requests pile up behind the first one.
        let gate = model.gate.lock().unwrap();
        let first = spawn_leader(&batcher).await;
        let mut rest = Vec::new();
        for i in 1..=3 {
            let b = batcher.clone();
            rest.push(tokio::spawn(async move {
                b.infer(vec![i as f32, 10.0], 1, b.announce()).await
            }));
            until_queued(&batcher, i).await; // in this order
        }
        drop(gate);
        assert_eq!(first.await.unwrap().unwrap(), vec![0.0, -1.0]);
        for (i, handle) in rest.into_iter().enumerate() {
            let out = handle.await.unwrap().unwrap();
            assert_eq!(out, vec![(i + 1) as f32 + 10.0, -1.0]);
        }
        assert_eq!(
            *model.batches.lock().unwrap(),
            vec![1, 3],
            "the three waiting requests run together"
        );
        assert!(!batcher.shared.lock().led);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_leader_waits_for_announced_requests_up_to_the_delay() {
        let model = recorder();
        let batcher = Arc::new(Batcher::new(
            model.clone(),
            config(Duration::from_secs(5), 16),
            histogram(),
        ));
        let late = batcher.announce(); // announced, still "parsing"
        let early = {
            let b = batcher.clone();
            tokio::spawn(async move { b.infer(vec![1.0, 1.0], 1, b.announce()).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !early.is_finished(),
            "the leader should wait for the announced request"
        );
        let late = batcher.infer(vec![2.0, 2.0], 1, late).await.unwrap();
        assert_eq!(late, vec![4.0, -1.0]);
        assert_eq!(early.await.unwrap().unwrap(), vec![2.0, -1.0]);
        assert_eq!(*model.batches.lock().unwrap(), vec![2]);
    }

    #[tokio::test]
    async fn a_leader_waits_no_longer_than_the_delay() {
        let model = recorder();
        let batcher = Batcher::new(
            model.clone(),
            config(Duration::from_millis(300), 16),
            histogram(),
        );
        let _never = batcher.announce(); // announced and never sent
        let started = Instant::now();
        let out = batcher
            .infer(vec![1.0, 1.0], 1, batcher.announce())
            .await
            .unwrap();
        assert_eq!(out, vec![2.0, -1.0]);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(10),
            "{waited:?}"
        );
    }

    #[allow(clippy::await_holding_lock)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_answers_unavailable_and_a_cancelled_request_loses_no_lead() {
        let model = recorder();
        let batcher = Arc::new(Batcher::new(
            model.clone(),
            config(Duration::ZERO, 2),
            histogram(),
        ));
        let gate = model.gate.lock().unwrap();
        let leader = spawn_leader(&batcher).await;
        // Two queue up (capacity 2); the first of them is cancelled: its client went away.
        let cancelled = {
            let b = batcher.clone();
            tokio::spawn(async move { b.infer(vec![5.0, 0.0], 1, b.announce()).await })
        };
        until_queued(&batcher, 1).await;
        let waiting = {
            let b = batcher.clone();
            tokio::spawn(async move { b.infer(vec![7.0, 0.0], 1, b.announce()).await })
        };
        until_queued(&batcher, 2).await;
        let refused = batcher
            .infer(vec![9.0, 0.0], 1, batcher.announce())
            .await
            .unwrap_err();
        assert!(
            matches!(refused, ApiError::Unavailable(ref m) if m.contains("--queue-capacity")),
            "{refused:?}"
        );
        cancelled.abort();
        assert!(cancelled.await.unwrap_err().is_cancelled());
        drop(gate);
        leader.await.unwrap().unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), vec![7.0, -1.0]);
        assert!(!batcher.shared.lock().led);
        // And the next request leads at once.
        let out = batcher
            .infer(vec![1.0, 1.0], 1, batcher.announce())
            .await
            .unwrap();
        assert_eq!(out, vec![2.0, -1.0]);
    }

    #[tokio::test]
    async fn a_lead_handed_to_a_cancelled_request_goes_on_to_the_next() {
        let model = recorder();
        let batcher = Batcher::new(model.clone(), config(Duration::ZERO, 16), histogram());
        // Two requests queued behind a leader that is "running" (the lead is taken by hand).
        batcher.shared.lock().led = true;
        let mut gone = Box::pin(batcher.infer(vec![5.0, 0.0], 1, batcher.announce()));
        assert!(futures::poll!(gone.as_mut()).is_pending());
        let mut next = Box::pin(batcher.infer(vec![7.0, 0.0], 1, batcher.announce()));
        assert!(futures::poll!(next.as_mut()).is_pending());
        // The leader finishes and hands the lead to the oldest; that client goes away before
        // taking it.
        batcher.shared.pass_lead();
        drop(gone);
        assert!(
            batcher.shared.lock().led,
            "the lead went on to the next request"
        );
        assert_eq!(next.await.unwrap(), vec![7.0, -1.0]);
        assert!(!batcher.shared.lock().led);
    }

    /// A slow model: the first pass runs inline and is timed; the next is expected to be long
    /// and runs under `block_in_place` (which would panic outside a multi-thread runtime, so the
    /// path is taken for real here), with the same answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pass_expected_to_be_long_leaves_the_runtime_thread_and_answers_the_same() {
        struct Slow;
        impl Predictor for Slow {
            fn input_len(&self) -> usize {
                1
            }
            fn num_classes(&self) -> usize {
                1
            }
            fn predict_proba(
                &self,
                inputs: &[f32],
                _batch: usize,
                out: &mut Vec<f32>,
            ) -> Result<(), String> {
                std::thread::sleep(Duration::from_millis(2));
                out.clear();
                out.extend(inputs.iter().map(|x| x * 2.0));
                Ok(())
            }
        }
        let batcher = Batcher::new(Arc::new(Slow), config(Duration::ZERO, 16), histogram());
        let first = batcher.infer(vec![1.0], 1, batcher.announce()).await;
        assert_eq!(first.unwrap(), vec![2.0]);
        let per_row = batcher.shared.nanos_per_row.load(Ordering::Relaxed);
        assert!(
            per_row >= INLINE_BUDGET.as_nanos() as u64,
            "the first pass was timed: {per_row} ns per row"
        );
        let second = batcher.infer(vec![3.0], 1, batcher.announce()).await;
        assert_eq!(second.unwrap(), vec![6.0]);
    }

    #[tokio::test]
    async fn a_panicking_model_answers_an_error_and_keeps_serving() {
        let model = recorder();
        let batcher = Batcher::new(model, BatchConfig::default(), histogram());
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
