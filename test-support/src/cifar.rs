//! Small CIFAR-10 files in the real binary format, for the training tests.

use std::path::Path;

/// Writes CIFAR-10 into `dir`: five training files of `per_file` records and a test file of
/// `test` records. Record i has label i mod 10 and pixels that lean towards a colour of its
/// class, with pseudo-random noise, so that a tiny model learns something in an epoch.
pub fn write_cifar10(dir: &Path, per_file: usize, test: usize) {
    let mut state = 0x2545_f491_u32;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 96) as u8
    };
    let mut records = |n: usize, first: usize| {
        let mut bytes = Vec::new();
        for i in first..first + n {
            let label = (i % 10) as u8;
            bytes.push(label);
            for c in 0..3u8 {
                let base = 40 * ((label + c) % 4);
                bytes.extend((0..1024).map(|_| base + noise()));
            }
        }
        bytes
    };
    for k in 0..5 {
        let bytes = records(per_file, k * per_file);
        std::fs::write(dir.join(format!("data_batch_{}.bin", k + 1)), bytes).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), records(test, 7)).unwrap();
}
