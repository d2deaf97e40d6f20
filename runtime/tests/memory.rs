//! `memory::reuse_freed_memory` in a process of its own (the setting is process-wide), on the
//! main thread (no test harness: the setting acts on glibc's main arena, which serves the main
//! thread, where `vggdsl train` runs its steps): a tensor above glibc's largest dynamic mmap
//! threshold (32 MiB), freed and allocated again, comes back without page faults; without the
//! setting it is unmapped on free and every page faults again.

use vggdsl_runtime::memory::reuse_freed_memory;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    use glibc::{faults_of_one_fill, HUGE_PAGES};
    // Default malloc: the block is a mapping of its own, unmapped when the tensor drops, so
    // each fill faults in every page again (4 KiB pages, or 2 MiB ones under transparent huge
    // pages: at least one fault per huge page either way).
    let before = (0..3).map(|_| faults_of_one_fill()).min().unwrap();
    assert!(
        before >= HUGE_PAGES,
        "{before} faults for 64 MiB before the setting"
    );
    if !reuse_freed_memory() {
        println!("memory: skipped, this glibc (before 2.35) keeps 64 MiB blocks in mappings");
        return;
    }
    faults_of_one_fill();
    // The heap now holds the freed block; the next tensor reuses its pages.
    for _ in 0..3 {
        let after = faults_of_one_fill();
        assert!(
            after * 20 <= before,
            "{after} faults after the setting, {before} before"
        );
    }
    println!("memory: freed tensors come back without page faults ... ok");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {
    assert!(!reuse_freed_memory(), "the setting is glibc's");
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[path = "support/faults.rs"]
mod faults;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use super::faults::minor_faults;
    use vggdsl_runtime::tch::{Device, Kind, Tensor};

    /// 64 MiB of f32, and how many 2 MiB pages that is.
    const ELEMENTS: i64 = 16 << 20;
    pub const HUGE_PAGES: i64 = ELEMENTS * 4 / (2 << 20);

    /// The page faults of allocating and filling the tensor.
    pub fn faults_of_one_fill() -> i64 {
        let before = minor_faults();
        let t = Tensor::ones([ELEMENTS], (Kind::Float, Device::Cpu));
        let faults = minor_faults() - before;
        assert_eq!(t.sum(Kind::Double).double_value(&[]), ELEMENTS as f64);
        faults
    }
}
