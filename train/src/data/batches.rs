//! Batches as tensors, built on a background thread a few batches ahead of training so that
//! loading overlaps the training step instead of adding to it.

use std::num::NonZeroUsize;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use tch::kind::Element;
use tch::{Device, Tensor};

use super::augment::{render, Crop, Normalizer};
use super::ImageSet;

/// How many finished batches may wait for the consumer: enough to hide jitter, few enough to
/// bound memory (a CIFAR batch of 128 is 1.5 MB).
const AHEAD: usize = 2;

/// One batch: `images` f32 `[B, C, H, W]` normalised, `labels` i64 `[B]`.
#[derive(Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
}

impl Batch {
    /// The batch on `device`: the same tensors where they are already there, a copy otherwise.
    /// Copied on the consumer's thread, so the loader thread never touches a GPU.
    pub fn to_device(self, device: Device) -> Batch {
        Batch {
            images: self.images.to_device(device),
            labels: self.labels.to_device(device),
        }
    }
}

/// The batches of one pass over an [`ImageSet`], in order, built on a background thread.
///
/// Dropping it early (e.g. after HRank's `--limit` batches) stops the thread.
#[derive(Debug)]
pub struct Batches {
    rx: Option<Receiver<Batch>>,
    worker: Option<JoinHandle<()>>,
    remaining: usize,
    /// The set's device, where [`Iterator::next`] hands each batch out.
    device: Device,
}

impl Batches {
    /// Starts the thread that renders `order[i]` with `crops[i]`, `batch_size` images at a time.
    pub(super) fn spawn(
        set: ImageSet,
        order: Vec<usize>,
        crops: Vec<Crop>,
        batch_size: NonZeroUsize,
    ) -> Batches {
        let batch_size = batch_size.get();
        let device = set.device;
        let remaining = order.len().div_ceil(batch_size);
        let (tx, rx) = sync_channel(AHEAD);
        let worker = std::thread::Builder::new()
            .name("vggdsl-data".into())
            .spawn(move || {
                let shape = set.shape();
                let [c, h, w] = shape.map(|d| d as i64);
                let size = set.image_size();
                let norm = Normalizer::new(set.dataset.mean(), set.dataset.std());
                for (order, crops) in order.chunks(batch_size).zip(crops.chunks(batch_size)) {
                    let b = order.len() as i64;
                    let images = new_tensor::<f32>(&[b, c, h, w], |images| {
                        for ((&i, &crop), out) in
                            order.iter().zip(crops).zip(images.chunks_exact_mut(size))
                        {
                            render(set.image(i), shape, crop, &norm, out);
                        }
                    });
                    let labels = new_tensor::<i64>(&[b], |labels| {
                        for (&i, label) in order.iter().zip(labels) {
                            *label = set.label(i);
                        }
                    });
                    if tx.send(Batch { images, labels }).is_err() {
                        return; // the consumer stopped early
                    }
                }
            })
            .expect("the OS could not start the data loader thread");
        Batches {
            rx: Some(rx),
            worker: Some(worker),
            remaining,
            device,
        }
    }

    /// Waits for the worker; re-raises its panic (a bug) rather than ending the pass early.
    fn join(&mut self) {
        if let Some(worker) = self.worker.take() {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// A new CPU tensor of `shape` whose elements `fill` writes, built without running a libtorch
/// kernel: `Tensor::from_slice` zero-fills with an OpenMP kernel, which starts a spinning thread
/// team on the loader thread that competes with training for the cores.
fn new_tensor<T: Element>(shape: &[i64], fill: impl FnOnce(&mut [T])) -> Tensor {
    let tensor = Tensor::empty(shape, (T::KIND, Device::Cpu));
    let n = tensor.numel();
    let ptr = tensor.data_ptr() as *mut T;
    // SAFETY: `empty` allocated a contiguous CPU tensor of `n` elements of type `T` (plain data,
    // valid when all bytes are zero), which nothing else refers to before we return it.
    let data = unsafe {
        std::ptr::write_bytes(ptr, 0, n);
        std::slice::from_raw_parts_mut(ptr, n)
    };
    fill(data);
    tensor
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        match self.rx.as_ref()?.recv() {
            Ok(batch) => {
                self.remaining -= 1;
                Some(batch.to_device(self.device))
            }
            Err(_) => {
                self.rx = None;
                self.join();
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Batches {}

impl Drop for Batches {
    fn drop(&mut self) {
        // Closing the channel first makes a worker blocked on `send` return.
        self.rx = None;
        if let Some(worker) = self.worker.take() {
            // A worker panic surfaces through `next`; never panic again while dropping.
            let _ = worker.join();
        }
    }
}
