//! The weights an inference layer keeps lie in transparent huge pages (`memory::huge_pages`),
//! as the kernel reports them in `/proc/self/smaps`, and still give the layer's numbers.

use vggdsl_runtime::inference::ConvReLU2d;
use vggdsl_runtime::memory::huge_pages;
use vggdsl_runtime::nn::Conv2d;
use vggdsl_runtime::ops::data_bytes;
use vggdsl_runtime::tch::nn::VarStore;
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};

const HUGE_PAGE: usize = 2 << 20;

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
    if let Some(reason) = unavailable() {
        println!("huge pages: skipped, {reason}");
        return;
    }
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    // 512 → 512 channels, 3×3: 9 MiB of weights, the seed's deepest convs.
    let conv = Conv2d::new(vs.root() / "conv", 512, 512, 3, 1, 1);
    let layer = ConvReLU2d::new(&conv, None);
    let read_by_passes = match &layer.packed {
        Some((weight, _)) => weight,
        None => &layer.weight,
    };
    let (data, len) = data_bytes(read_by_passes).unwrap();
    let (data, len) = (data as usize, len);
    assert!(len >= 512 * 512 * 9 * 4, "{len} bytes of weights");
    let expected = whole_huge_pages(data, len);
    assert!(expected >= 3 * HUGE_PAGE, "{expected} bytes");
    // Every 2 MiB page inside the weights is one; the mappings may hold others besides.
    let huge = anon_huge_pages_over(data, len);
    assert!(
        huge >= expected,
        "{huge} bytes in huge pages, {expected} expected"
    );
    // Asking again changes nothing and reports the same bytes.
    assert_eq!(huge_pages(read_by_passes), expected);

    // The layer still computes relu(conv2d(x)).
    let xs = Tensor::randn([2, 512, 4, 4], (Kind::Float, Device::Cpu));
    let expected = xs
        .conv2d(&conv.weight, Some(&conv.bias), [1, 1], [1, 1], [1, 1], 1)
        .relu();
    let got = layer.forward(&xs).contiguous();
    let difference = (&got - &expected).abs().max().double_value(&[]);
    assert!(difference < 1e-4, "{difference}");
}

#[test]
fn small_and_plain_tensors_take_none() {
    let small = Tensor::ones([1000], (Kind::Float, Device::Cpu));
    assert_eq!(huge_pages(&small), 0);
    let (data, len) = data_bytes(&small).unwrap();
    assert_eq!((len, data as usize % 4), (4000, 0));
}
