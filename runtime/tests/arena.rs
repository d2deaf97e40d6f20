//! An inference model's [`Arena`]: a pass's large blocks come back to the next pass without
//! page faults, blocks a pass did not take are given back, blocks that outlive a pass or the
//! arena stay valid, small blocks and other threads' allocations are left to `malloc`, and a
//! model's passes give the same bits pass after pass and batch size after batch size.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

#[path = "support/faults.rs"]
mod faults;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use vggdsl_runtime::memory::Arena;
use vggdsl_runtime::tch::nn::VarStore;
use vggdsl_runtime::tch::{Device, Kind, Tensor};
use vggdsl_runtime::{load_models, Network};

use faults::minor_faults;

/// f32 elements of 8 MiB, above the arena's 2 MiB floor, and of 1 MiB, below it.
const LARGE: i64 = 2 << 20;
const SMALL: i64 = 1 << 18;
const MIB: usize = 1 << 20;

/// One test at a time: page faults are counted for the whole process.
fn alone() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A tensor of `n` ones, filled (every page touched) and checked.
fn ones(n: i64) -> Tensor {
    let t = Tensor::ones([n], (Kind::Float, Device::Cpu));
    assert_eq!(t.sum(Kind::Float).double_value(&[]), n as f64);
    t
}

/// The page faults of a pass that fills a tensor of `n` floats and drops it.
fn faults_of_a_pass(arena: &Arena, n: i64) -> i64 {
    let before = minor_faults();
    {
        let _pass = arena.pass();
        drop(ones(n));
    }
    minor_faults() - before
}

#[test]
fn a_pass_takes_back_the_blocks_of_the_pass_before() {
    let _turn = alone();
    let arena = Arena::new();
    let first = faults_of_a_pass(&arena, LARGE);
    let (held, fresh) = arena.bytes();
    assert_eq!((held, fresh), (8 * MIB, 8 * MIB));
    // At least one fault per 2 MiB page (4 KiB pages: 512 per 2 MiB).
    assert!(first >= 4, "{first} faults filling 8 MiB");
    for _ in 0..3 {
        let again = faults_of_a_pass(&arena, LARGE);
        assert!(
            again * 4 <= first,
            "{again} faults again, {first} the first time"
        );
        assert_eq!(arena.bytes(), (8 * MIB, 8 * MIB), "the block was reused");
    }
}

#[test]
fn blocks_no_pass_took_are_given_back_and_small_ones_never_held() {
    let _turn = alone();
    let arena = Arena::new();
    faults_of_a_pass(&arena, LARGE);
    assert_eq!(arena.bytes().0, 8 * MIB);
    faults_of_a_pass(&arena, SMALL);
    assert_eq!(arena.bytes(), (0, 8 * MIB));
    // A block of another size with more than a quarter to spare is not reused.
    faults_of_a_pass(&arena, LARGE);
    faults_of_a_pass(&arena, LARGE / 2);
    assert_eq!(arena.bytes(), (4 * MIB, 20 * MIB));
}

#[test]
fn blocks_outlive_their_pass_and_their_arena() {
    let _turn = alone();
    let arena = Arena::new();
    let kept = {
        let _pass = arena.pass();
        ones(LARGE)
    };
    // In use, so the next pass takes a block of its own.
    faults_of_a_pass(&arena, LARGE);
    assert_eq!(arena.bytes(), (16 * MIB, 16 * MIB));
    drop(kept);
    // Back in the arena, and given back by the next pass, which takes neither block.
    faults_of_a_pass(&arena, SMALL);
    assert_eq!(arena.bytes(), (0, 16 * MIB));
    let kept = {
        let _pass = arena.pass();
        ones(LARGE)
    };
    drop(arena);
    assert_eq!(kept.sum(Kind::Float).double_value(&[]), LARGE as f64);
}

#[test]
fn passes_nest_and_other_threads_allocate_as_before() {
    let _turn = alone();
    let arena = Arena::new();
    {
        let _outer = arena.pass();
        std::thread::scope(|s| s.spawn(|| drop(ones(LARGE))).join().unwrap());
        assert_eq!(arena.bytes(), (0, 0), "another thread's block");
        // A block freed in the outer pass survives the inner pass's end.
        drop(ones(LARGE));
        {
            let _inner = arena.pass();
            drop(ones(SMALL));
        }
        assert_eq!(arena.bytes(), (8 * MIB, 8 * MIB));
    }
    assert_eq!(arena.bytes(), (8 * MIB, 8 * MIB));
}

#[test]
fn a_block_of_a_size_between_huge_pages_is_reused() {
    let _turn = alone();
    let arena = Arena::new();
    // 3 MiB, held in two 2 MiB pages.
    let n = 3 * MIB as i64 / 4;
    faults_of_a_pass(&arena, n);
    faults_of_a_pass(&arena, n);
    assert_eq!(arena.bytes(), (4 * MIB, 4 * MIB));
}

#[test]
fn passes_of_two_arenas_may_end_in_any_order() {
    let _turn = alone();
    let (a, b) = (Arena::new(), Arena::new());
    let pass_a = a.pass();
    let pass_b = b.pass();
    drop(pass_a);
    drop(a);
    // b's pass is the one still open on this thread.
    drop(ones(LARGE));
    assert_eq!(b.bytes(), (8 * MIB, 8 * MIB));
    drop(pass_b);
    // No pass is open: malloc's.
    drop(ones(LARGE));
    assert_eq!(b.bytes(), (8 * MIB, 8 * MIB));
}

#[test]
fn a_forgotten_pass_outlives_its_arena_harmlessly() {
    let _turn = alone();
    let arena = Arena::new();
    std::mem::forget(arena.pass());
    drop(ones(LARGE));
    assert_eq!(arena.bytes().0, 8 * MIB);
    drop(arena);
    // The pass is still open on this thread, its arena gone: malloc's.
    drop(ones(LARGE));
}

#[test]
fn a_models_passes_reuse_their_maps_and_give_the_same_bits() {
    let _turn = alone();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/vgg16_bn.vgg");
    let ir = load_models(path).unwrap_or_else(|e| panic!("{e}"))[0].clone();
    let vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &ir).to_inference();
    let (large, small) = (
        Tensor::randn([16, 3, 32, 32], (Kind::Float, Device::Cpu)),
        Tensor::randn([1, 3, 32, 32], (Kind::Float, Device::Cpu)),
    );
    // The first pass also times the kernels; the second holds what a pass uses.
    let first = net.forward(&large);
    assert!(first.equal(&net.forward(&large)));
    let (held, fresh) = net.activations().bytes();
    // conv0's and conv1's maps alone are 4 MiB each at batch 16.
    assert!(held >= 8 * MIB, "{held} bytes held");
    for _ in 0..2 {
        assert!(first.equal(&net.forward(&large)));
        assert_eq!(
            net.activations().bytes(),
            (held, fresh),
            "every block reused"
        );
    }
    // Batch 1 has no map of 2 MiB: the arena gives every block back, then takes new ones.
    let one = net.forward(&small);
    assert_eq!(net.activations().bytes().0, 0);
    assert!(first.equal(&net.forward(&large)));
    assert!(one.equal(&net.forward(&small)));
}
