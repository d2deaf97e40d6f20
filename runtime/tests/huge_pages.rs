//! The weights an inference layer keeps lie in transparent huge pages from end to end
//! (`memory::in_whole_huge_pages`, `memory::huge_pages`), as the kernel reports them in
//! `/proc/self/smaps`, and still give the layer's numbers.

use vggdsl_runtime::inference::ConvReLU2d;
use vggdsl_runtime::memory::{huge_pages, in_whole_huge_pages};
use vggdsl_runtime::nn::Conv2d;
use vggdsl_runtime::ops::data_bytes;
use vggdsl_runtime::tch::nn::VarStore;
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};

const HUGE_PAGE: usize = 2 << 20;

/// One test at a time: the allocator `in_whole_huge_pages` puts in place serves every thread.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The 2 MiB pages wholly inside `len` bytes at `data`, as bytes.
fn whole_huge_pages(data: usize, len: usize) -> usize {
    ((data + len) / HUGE_PAGE).saturating_sub(data.div_ceil(HUGE_PAGE)) * HUGE_PAGE
}

/// `AnonHugePages` of the mappings that overlap `len` bytes at `data`, in bytes (advising part
/// of a mapping splits it).
fn anon_huge_pages_over(data: usize, len: usize) -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
    let mut overlaps = false;
    let mut total = 0;
    for line in smaps.lines() {
        let range = line.split_once(' ').map_or(line, |(range, _)| range);
        if let Some((start, end)) = range.split_once('-') {
            if let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) {
                overlaps = start < data + len && data < end;
                continue;
            }
        }
        if let Some(kb) = overlaps
            .then(|| line.strip_prefix("AnonHugePages:"))
            .flatten()
        {
            total += kb.trim().trim_end_matches(" kB").parse::<usize>().unwrap() << 10;
        }
    }
    total
}

/// Why huge pages can't be had here, if they can't: transparent huge pages switched off, or a
/// kernel before 6.1 (no `MADV_COLLAPSE`).
fn unavailable() -> Option<String> {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return Some("not glibc Linux".into());
    }
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
    if thp.as_deref().map_or(true, |s| s.contains("[never]")) {
        return Some("transparent huge pages are off".into());
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut numbers = release
        .trim()
        .split(['.', '-'])
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    (version < (6, 1)).then(|| format!("kernel {} has no MADV_COLLAPSE", release.trim()))
}

#[test]
fn inference_weights_lie_in_huge_pages() {
    let _alone = alone();
    if let Some(reason) = unavailable() {
        println!("huge pages: skipped, {reason}");
        return;
    }
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    // 512 → 512 channels, 3×3: 9 MiB of weights, the seed's deepest convs.
    let conv = Conv2d::new(vs.root() / "conv", 512, 512, 3, 1, 1);
    let layer = ConvReLU2d::new(&conv, None);
    let xs = Tensor::randn([2, 512, 4, 4], (Kind::Float, Device::Cpu));
    // Packed for the batch's shape when it first comes.
    let packed = layer.packed_weight(&xs);
    let read_by_passes = packed.as_ref().unwrap_or(&layer.weight);
    let (data, len) = data_bytes(read_by_passes).unwrap();
    let (data, len) = (data as usize, len);
    assert!(len >= 512 * 512 * 9 * 4, "{len} bytes of weights");
    // Built in whole huge pages: from the first byte to past the last.
    assert_eq!(data % HUGE_PAGE, 0, "the weights start at {data:#x}");
    let whole = len.next_multiple_of(HUGE_PAGE);
    let huge = anon_huge_pages_over(data, whole);
    assert!(
        huge >= whole,
        "{huge} bytes in huge pages, {whole} expected"
    );
    // Asking again changes nothing and reports the pages inside the weights' bytes.
    assert_eq!(huge_pages(read_by_passes), whole_huge_pages(data, len));

    // The layer still computes relu(conv2d(x)).
    let expected = xs
        .conv2d(&conv.weight, Some(&conv.bias), [1, 1], [1, 1], [1, 1], 1)
        .relu();
    let got = layer.forward(&xs).contiguous();
    let difference = (&got - &expected).abs().max().double_value(&[]);
    assert!(difference < 1e-4, "{difference}");
}

/// Inside `in_whole_huge_pages` large blocks start on a huge-page boundary, small ones are
/// aligned as usual; outside, and after a panic inside, libtorch's allocator is back (its large
/// blocks start past a malloc header, never on a huge-page boundary).
#[test]
fn whole_huge_pages_only_inside() {
    let _alone = alone();
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let large = || Tensor::zeros([3 << 20], (Kind::Float, Device::Cpu)); // 12 MiB
    let start = |t: &Tensor| data_bytes(t).unwrap().0 as usize;
    let (inside, small, nested) = in_whole_huge_pages(|| {
        let nested = in_whole_huge_pages(large);
        (
            large(),
            Tensor::zeros([10], (Kind::Float, Device::Cpu)),
            nested,
        )
    });
    assert_eq!(start(&inside) % HUGE_PAGE, 0);
    assert_eq!(
        start(&nested) % HUGE_PAGE,
        0,
        "a nested call ended the outer one"
    );
    assert_eq!(start(&small) % 64, 0);
    let outside = large();
    assert_ne!(start(&outside) % HUGE_PAGE, 0);
    let panicked = std::panic::catch_unwind(|| in_whole_huge_pages(|| panic!("inside")));
    assert!(panicked.is_err());
    assert_ne!(start(&large()) % HUGE_PAGE, 0);
    // Blocks from either allocator are freed alike, whichever is in place.
    drop(in_whole_huge_pages(|| (inside, outside)));
}

#[test]
fn small_and_plain_tensors_take_none() {
    let _alone = alone();
    let small = Tensor::ones([1000], (Kind::Float, Device::Cpu));
    assert_eq!(huge_pages(&small), 0);
    let (data, len) = data_bytes(&small).unwrap();
    assert_eq!((len, data as usize % 4), (4000, 0));
}
