//! Dynamic batching on dedicated worker threads, so inference never runs on the async executor.
//!
//! Requests for one model version go into one bounded queue. Each worker (one per session)
//! takes the oldest request, then gathers more until the batch holds `max_batch_size` rows or
//! the first request has waited `max_queue_delay`; with a zero delay it takes only what is
//! already queued, which costs an idle server no latency and still forms large batches under
//! load. The batch is concatenated along the first dimension, run once, and every output is
//! split back so each request gets exactly its own rows.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::backend::{BackendError, Model};
use crate::error::ServingError;
use crate::tensor::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Rows per batch; 0 or 1 runs every request on its own.
    pub max_batch_size: usize,
    pub max_queue_delay: Duration,
    /// Worker threads, one per backend session.
    pub workers: usize,
    /// Requests that may wait; beyond it callers get `ResourceExhausted`.
    pub max_queue_size: usize,
    /// Input bytes that may wait; beyond it callers get `ResourceExhausted` too, so a burst of
    /// large requests cannot hold unbounded memory. A request alone in the queue always fits.
    pub max_queue_bytes: usize,
}

/// What a request gets back, with the timings the metrics record.
#[derive(Debug)]
pub struct BatchOutput {
    pub outputs: Vec<Tensor>,
    pub queued: Duration,
    pub compute: Duration,
    pub batch_rows: usize,
}

struct Job {
    inputs: Vec<Tensor>,
    rows: usize,
    /// What the inputs hold, counted in [`Batcher::queued_bytes`] until the job runs.
    bytes: usize,
    enqueued: Instant,
    reply: oneshot::Sender<Result<BatchOutput, ServingError>>,
}

pub struct Batcher {
    sender: Sender<Job>,
    settings: BatchSettings,
    /// Input bytes of the jobs queued and not yet running.
    queued_bytes: Arc<AtomicUsize>,
}

impl Batcher {
    /// Starts the workers. `label` names the threads (`model:version`).
    pub fn start(
        model: Arc<dyn Model>,
        settings: BatchSettings,
        label: &str,
    ) -> Result<Batcher, BackendError> {
        let (sender, receiver) = crossbeam_channel::bounded(settings.max_queue_size.max(1));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        // The workers are detached: they exit by themselves once the last sender (this batcher)
        // is dropped and the queue is drained, so dropping a batcher never blocks its caller.
        for index in 0..settings.workers.max(1) {
            let worker = Worker {
                model: model.clone(),
                receiver: receiver.clone(),
                settings,
                queued_bytes: queued_bytes.clone(),
            };
            std::thread::Builder::new()
                .name(format!("infer-{label}-{index}"))
                .spawn(move || worker.run())
                .map_err(|err| {
                    BackendError::Runtime(format!("starting inference threads: {err}"))
                })?;
        }
        Ok(Batcher {
            sender,
            settings,
            queued_bytes,
        })
    }

    pub fn settings(&self) -> BatchSettings {
        self.settings
    }

    /// Queues one request (inputs in the model's declared order, `rows` in its first
    /// dimension) and waits for its share of the batch.
    pub async fn submit(
        &self,
        inputs: Vec<Tensor>,
        rows: usize,
    ) -> Result<BatchOutput, ServingError> {
        let bytes = inputs.iter().map(|input| input.data.byte_len()).sum();
        let waiting = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if waiting > 0 && waiting + bytes > self.settings.max_queue_bytes {
            self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            return Err(ServingError::ResourceExhausted(format!(
                "the model's queue is full ({waiting} bytes of inputs waiting, at most {}); retry later",
                self.settings.max_queue_bytes
            )));
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            inputs,
            rows,
            bytes,
            enqueued: Instant::now(),
            reply,
        };
        match self.sender.try_send(job) {
            Ok(()) => {}
            Err(error) => {
                self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                if let TrySendError::Disconnected(_) = error {
                    return Err(stopped());
                }
                return Err(ServingError::ResourceExhausted(format!(
                    "the model's queue is full ({} requests waiting); retry later",
                    self.settings.max_queue_size
                )));
            }
        }
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> ServingError {
    ServingError::Unavailable("the model version was unloaded while the request waited".into())
}

struct Worker {
    model: Arc<dyn Model>,
    receiver: Receiver<Job>,
    settings: BatchSettings,
    queued_bytes: Arc<AtomicUsize>,
}

impl Worker {
    fn run(self) {
        let mut carried: Option<Job> = None;
        loop {
            let first = match carried.take() {
                Some(job) => job,
                None => match self.receiver.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            let mut rows = first.rows;
            let mut batch = vec![first];
            if self.settings.max_batch_size > 1 {
                let deadline = batch[0].enqueued + self.settings.max_queue_delay;
                while rows < self.settings.max_batch_size {
                    let next = if self.settings.max_queue_delay.is_zero() {
                        self.receiver.try_recv().ok()
                    } else {
                        // Timed out or closed: run what we have.
                        self.receiver.recv_deadline(deadline).ok()
                    };
                    let Some(job) = next else { break };
                    if rows + job.rows > self.settings.max_batch_size {
                        carried = Some(job);
                        break;
                    }
                    rows += job.rows;
                    batch.push(job);
                }
            }
            self.execute(batch, rows);
        }
    }

    fn execute(&self, batch: Vec<Job>, rows: usize) {
        let running: usize = batch.iter().map(|job| job.bytes).sum();
        self.queued_bytes.fetch_sub(running, Ordering::Relaxed);
        let started = Instant::now();
        let result = if batch.len() == 1 {
            self.run_model(&batch[0].inputs)
                .map(|outputs| vec![outputs])
        } else {
            self.run_batched(&batch)
        };
        let compute = started.elapsed();
        match result {
            Ok(per_job) => {
                for (job, outputs) in batch.into_iter().zip(per_job) {
                    let queued = started.saturating_duration_since(job.enqueued);
                    let _ = job.reply.send(Ok(BatchOutput {
                        outputs,
                        queued,
                        compute,
                        batch_rows: rows,
                    }));
                }
            }
            Err(err) => {
                for job in batch {
                    let _ = job.reply.send(Err(ServingError::Internal(err.to_string())));
                }
            }
        }
    }

    fn run_batched(&self, batch: &[Job]) -> Result<Vec<Vec<Tensor>>, ServingError> {
        let inputs = (0..batch[0].inputs.len())
            .map(|i| {
                let parts: Vec<&Tensor> = batch.iter().map(|job| &job.inputs[i]).collect();
                Tensor::concat(&parts)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| ServingError::Internal(format!("batching inputs: {err}")))?;
        let outputs = self.run_model(&inputs)?;
        let rows: Vec<usize> = batch.iter().map(|job| job.rows).collect();
        let mut per_job: Vec<Vec<Tensor>> = batch
            .iter()
            .map(|_| Vec::with_capacity(outputs.len()))
            .collect();
        for output in &outputs {
            let pieces = output.split(&rows).map_err(|err| {
                ServingError::Internal(format!("splitting the batch's output: {err}"))
            })?;
            for (job_outputs, piece) in per_job.iter_mut().zip(pieces) {
                job_outputs.push(piece);
            }
        }
        Ok(per_job)
    }

    /// Runs the model, turning a panic inside a backend into an error for this batch only.
    fn run_model(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ServingError> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.model.run(inputs))) {
            Ok(Ok(outputs)) => Ok(outputs),
            Ok(Err(err)) => Err(ServingError::Internal(format!("inference failed: {err}"))),
            Err(_) => Err(ServingError::Internal(
                "inference failed: the backend panicked".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::tensor::{DataType, TensorData, TensorSpec};

    /// Doubles its input and records the batch sizes it saw.
    struct Doubler {
        specs: Vec<TensorSpec>,
        batches: Mutex<Vec<usize>>,
        delay: Duration,
    }

    impl Doubler {
        fn new(delay: Duration) -> Arc<Doubler> {
            let spec = TensorSpec {
                name: "x".into(),
                dtype: DataType::Fp32,
                shape: vec![None, Some(2)],
            };
            Arc::new(Doubler {
                specs: vec![spec],
                batches: Mutex::new(Vec::new()),
                delay,
            })
        }
    }

    impl Model for Doubler {
        fn platform(&self) -> &'static str {
            "test"
        }
        fn inputs(&self) -> &[TensorSpec] {
            &self.specs
        }
        fn outputs(&self) -> &[TensorSpec] {
            &self.specs
        }
        fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, BackendError> {
            std::thread::sleep(self.delay);
            self.batches.lock().unwrap().push(inputs[0].rows());
            let TensorData::Fp32(values) = &inputs[0].data else {
                return Err(BackendError::Run("expected FP32".into()));
            };
            if values.iter().any(|v| v.is_nan()) {
                panic!("NaN reached the model");
            }
            let doubled = values.iter().map(|v| v * 2.0).collect();
            Ok(vec![
                Tensor::new("y", inputs[0].shape.clone(), TensorData::Fp32(doubled)).unwrap(),
            ])
        }
    }

    fn request(rows: usize, start: f32) -> Vec<Tensor> {
        let values = (0..rows * 2).map(|i| start + i as f32).collect();
        vec![Tensor::new("x", vec![rows, 2], TensorData::Fp32(values)).unwrap()]
    }

    fn settings(max_batch_size: usize, delay_ms: u64, workers: usize) -> BatchSettings {
        BatchSettings {
            max_batch_size,
            max_queue_delay: Duration::from_millis(delay_ms),
            workers,
            max_queue_size: 100,
            max_queue_bytes: usize::MAX,
        }
    }

    #[tokio::test]
    async fn concurrent_requests_share_a_batch_and_get_their_own_rows_back() {
        let model = Doubler::new(Duration::ZERO);
        let batcher = Arc::new(Batcher::start(model.clone(), settings(16, 200, 1), "t").unwrap());
        let calls = (0..5).map(|i| {
            let batcher = batcher.clone();
            let rows = i % 3 + 1;
            tokio::spawn(async move {
                let start = 100.0 * i as f32;
                let out = batcher.submit(request(rows, start), rows).await.unwrap();
                (rows, start, out)
            })
        });
        for call in futures::future::join_all(calls).await {
            let (rows, start, out) = call.unwrap();
            let expected: Vec<f32> = (0..rows * 2).map(|i| 2.0 * (start + i as f32)).collect();
            assert_eq!(out.outputs[0].shape, vec![rows, 2]);
            assert_eq!(out.outputs[0].data, TensorData::Fp32(expected));
        }
        let batches = model.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 1 + 2 + 3 + 1 + 2);
        assert!(batches.len() < 5, "requests were not batched: {batches:?}");
    }

    #[tokio::test]
    async fn a_batch_never_exceeds_the_limit() {
        let model = Doubler::new(Duration::from_millis(5));
        let batcher = Arc::new(Batcher::start(model.clone(), settings(4, 50, 1), "t").unwrap());
        let calls = (0..6).map(|_| {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.submit(request(3, 0.0), 3).await.unwrap() })
        });
        futures::future::join_all(calls).await;
        let batches = model.batches.lock().unwrap().clone();
        assert!(batches.iter().all(|&rows| rows <= 4), "{batches:?}");
        assert_eq!(batches.iter().sum::<usize>(), 18);
    }

    #[tokio::test]
    async fn a_panicking_backend_fails_only_its_request() {
        let model = Doubler::new(Duration::ZERO);
        let batcher = Batcher::start(model, settings(0, 0, 1), "t").unwrap();
        let poisoned =
            vec![Tensor::new("x", vec![1, 2], TensorData::Fp32(vec![f32::NAN, 1.0])).unwrap()];
        let err = batcher.submit(poisoned, 1).await.unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        let ok = batcher.submit(request(1, 1.0), 1).await.unwrap();
        assert_eq!(ok.outputs[0].data, TensorData::Fp32(vec![2.0, 4.0]));
    }

    #[tokio::test]
    async fn a_full_queue_is_refused() {
        let model = Doubler::new(Duration::from_millis(200));
        let batcher = Arc::new(
            Batcher::start(
                model,
                BatchSettings {
                    max_queue_size: 1,
                    ..settings(0, 0, 1)
                },
                "t",
            )
            .unwrap(),
        );
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.submit(request(1, 0.0), 1).await })
            })
            .collect();
        let results = futures::future::join_all(calls).await;
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Ok(Err(ServingError::ResourceExhausted(_)))))
        );
        assert!(results.iter().any(|r| matches!(r, Ok(Ok(_)))));
    }

    #[tokio::test]
    async fn queued_input_bytes_are_bounded_and_freed_as_jobs_run() {
        // One row of two floats is 8 bytes; the queue holds at most 16.
        let model = Doubler::new(Duration::from_millis(300));
        let batcher = Arc::new(
            Batcher::start(
                model,
                BatchSettings {
                    max_queue_bytes: 16,
                    ..settings(0, 0, 1)
                },
                "t",
            )
            .unwrap(),
        );
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.submit(request(1, 0.0), 1).await })
            })
            .collect();
        let results = futures::future::join_all(calls).await;
        let refused = results
            .iter()
            .filter(|r| matches!(r, Ok(Err(ServingError::ResourceExhausted(message))) if message.contains("bytes")))
            .count();
        assert!(refused >= 1, "{results:?}");
        assert!(results.iter().any(|r| matches!(r, Ok(Ok(_)))));
        // Everything ran or was refused: the queue is empty again, so a request fits.
        assert_eq!(batcher.queued_bytes.load(Ordering::Relaxed), 0);
        batcher
            .submit(request(1, 0.0), 1)
            .await
            .expect("fits again");
    }
}
