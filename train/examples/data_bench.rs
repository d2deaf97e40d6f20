//! Loader throughput in images/s, batch 128, with the dataset's training augmentation
//! (`ImageSet::epoch`) and without (`ImageSet::in_order`), for CIFAR-10-shaped synthetic data
//! (50,000 random images written in the binary format) and the real Fashion-MNIST.
//!
//! ```text
//! cargo run --release -p vggdsl-train --example data_bench [-- FASHION_MNIST_DIR]
//! ```
//!
//! The consumer only receives batches, so this is what one loader thread delivers.

use std::error::Error;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vggdsl_train::data::{Batches, Dataset, ImageSet, Split};

const BATCH: NonZeroUsize = match NonZeroUsize::new(128) {
    Some(b) => b,
    None => unreachable!(),
};
const EPOCHS: u64 = 3;

fn main() -> Result<(), Box<dyn Error>> {
    let tmp = vggdsl_test_support::tempdir();
    write_synthetic_cifar10(tmp.path())?;
    bench(Dataset::Cifar10, "CIFAR-10-shaped synthetic", tmp.path())?;

    let fashion = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .or_else(|| Dataset::FashionMnist.default_dir());
    match fashion {
        Some(dir) => bench(Dataset::FashionMnist, "Fashion-MNIST", &dir)?,
        None => println!(
            "Fashion-MNIST: skipped (no folder given and dataset-fashion-mnist is not installed)"
        ),
    }
    Ok(())
}

/// Five `data_batch_k.bin` files of 10,000 records: a label below 10, then random pixels.
fn write_synthetic_cifar10(dir: &Path) -> std::io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for k in 1..=5 {
        let mut bytes = vec![0u8; 10_000 * 3073];
        rng.fill_bytes(&mut bytes);
        for record in bytes.chunks_exact_mut(3073) {
            record[0] %= 10;
        }
        std::fs::write(dir.join(format!("data_batch_{k}.bin")), bytes)?;
    }
    Ok(())
}

fn bench(dataset: Dataset, title: &str, dir: &Path) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let set = ImageSet::load(dataset, Split::Train, dir)?;
    println!(
        "{title}: {} training images loaded in {:.2} s",
        set.len(),
        start.elapsed().as_secs_f64()
    );
    let augment = dataset.train_augment();
    rate("augmented (shuffle, crop, flip)", |epoch| {
        set.epoch(BATCH, augment, 0, epoch)
    });
    rate("plain (in order)", |_| set.in_order(BATCH, usize::MAX));
    Ok(())
}

/// Runs `EPOCHS` passes and prints images per second of wall time and of CPU time (the
/// latter is what one core delivers, whatever else the machine is running).
fn rate(what: &str, mut pass: impl FnMut(u64) -> Batches) {
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    let mut images = 0;
    for epoch in 0..EPOCHS {
        for batch in pass(epoch) {
            images += batch.labels.size()[0];
        }
    }
    let wall = images as f64 / start.elapsed().as_secs_f64();
    let cpu = match (cpu_start, cpu_seconds()) {
        (Some(a), Some(b)) if b > a => {
            format!("{:>10.0} images per CPU-second", images as f64 / (b - a))
        }
        _ => "CPU time unavailable".into(),
    };
    println!("  {what:32} {wall:>10.0} images/s, {cpu}");
}

/// User + system CPU time of this process (all threads) from /proc/self/stat (Linux; clock
/// ticks of 1/100 s, the USER_HZ of every mainstream Linux build).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
