//! Devices as users write them (`cpu`, `cuda`, `cuda:N`), and whether libtorch sees one: shared
//! by the `--device` flag of the commands and the examples, so that both read and refuse a
//! device in the same words.

use tch::{Cuda, Device};

/// `cpu`, `cuda` (GPU 0) or `cuda:N`; whether libtorch sees the device is [`available`]'s
/// question.
pub fn parse(text: &str) -> Result<Device, String> {
    let bad = || format!("a device is cpu, cuda or cuda:N (N a GPU's index from 0), not {text:?}");
    match text {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => match text.strip_prefix("cuda:") {
            Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                n.parse().map(Device::Cuda).map_err(|_| bad())
            }
            _ => Err(bad()),
        },
    }
}

/// The device as [`parse`] reads it.
pub fn name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A device libtorch does not see, and the CUDA devices it sees: its message names them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is not available: {}", name(*.device), there(*.cuda_devices))]
pub struct Unavailable {
    pub device: Device,
    pub cuda_devices: i64,
}

fn there(cuda_devices: i64) -> String {
    match cuda_devices {
        ..=0 => "this machine has no CUDA device (libtorch sees 0); use --device cpu".to_owned(),
        1 => "libtorch sees 1 CUDA device, cuda:0".to_owned(),
        n => format!("libtorch sees {n} CUDA devices, cuda:0 to cuda:{}", n - 1),
    }
}

/// `device` if libtorch sees it: the CPU always, a GPU if CUDA counts it.
pub fn available(device: Device) -> Result<Device, Unavailable> {
    within(device, Cuda::device_count())
}

/// `device` if it is the CPU or one of `cuda_devices` GPUs.
pub fn within(device: Device, cuda_devices: i64) -> Result<Device, Unavailable> {
    match device {
        Device::Cuda(n) if n as i64 >= cuda_devices => Err(Unavailable {
            device,
            cuda_devices,
        }),
        _ => Ok(device),
    }
}

/// Waits until `device` has done the work queued on it (a GPU's calls return before it has):
/// what a timing must do before it reads the clock. Nothing to wait for on the CPU.
pub fn synchronize(device: Device) {
    if let Device::Cuda(n) = device {
        Cuda::synchronize(n as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_cuda_and_cuda_n() {
        assert_eq!(parse("cpu"), Ok(Device::Cpu));
        assert_eq!(parse("cuda"), Ok(Device::Cuda(0)));
        assert_eq!(parse("cuda:0"), Ok(Device::Cuda(0)));
        assert_eq!(parse("cuda:13"), Ok(Device::Cuda(13)));
        for text in ["cpu", "cuda:0", "cuda:7"] {
            assert_eq!(name(parse(text).unwrap()), text);
        }
    }

    #[test]
    fn refuses_other_strings_in_one_sentence() {
        for bad in [
            "",
            "gpu",
            "CPU",
            "cuda:",
            "cuda:-1",
            "cuda:+1",
            "cuda:x",
            "cuda:1.0",
            "cuda 1",
            " cpu",
            "mps",
            "cuda:99999999999999999999999",
        ] {
            assert_eq!(
                parse(bad).unwrap_err(),
                format!("a device is cpu, cuda or cuda:N (N a GPU's index from 0), not {bad:?}")
            );
        }
    }

    #[test]
    fn a_missing_gpu_names_the_devices_there_are() {
        let refused = |device, count| within(device, count).unwrap_err().to_string();
        assert_eq!(
            refused(Device::Cuda(0), 0),
            "cuda:0 is not available: this machine has no CUDA device (libtorch sees 0); use \
             --device cpu"
        );
        assert_eq!(
            refused(Device::Cuda(1), 1),
            "cuda:1 is not available: libtorch sees 1 CUDA device, cuda:0"
        );
        assert_eq!(
            refused(Device::Cuda(4), 4),
            "cuda:4 is not available: libtorch sees 4 CUDA devices, cuda:0 to cuda:3"
        );
        assert_eq!(within(Device::Cuda(3), 4), Ok(Device::Cuda(3)));
        assert_eq!(within(Device::Cpu, 0), Ok(Device::Cpu));
    }
}
