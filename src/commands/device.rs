//! `--device cpu|cuda|cuda:N` of `train`, `eval`, `rank` and `sensitivity`: the one place that
//! reads a device from the command line and checks that libtorch sees it, before any data is
//! loaded, so that a missing GPU is one sentence and not a libtorch failure minutes in.

use vggdsl_runtime::tch::{Cuda, Device};

use crate::exit::USAGE;
use crate::failure::Failure;

/// The `--device` flag.
#[derive(clap::Args, Clone, Copy)]
pub struct DeviceArgs {
    /// Where the network and the batches live: cpu, cuda (the first GPU) or cuda:N. Weights and
    /// checkpoints are written from CPU copies, so they load on any device.
    #[arg(long, value_name = "DEVICE", default_value = "cpu", value_parser = parse)]
    pub device: Device,
}

impl DeviceArgs {
    /// The device asked for, if libtorch sees it.
    pub fn checked(&self) -> Result<Device, Failure> {
        check(self.device, Cuda::device_count())
    }
}

/// `cpu`, `cuda` (GPU 0) or `cuda:N`; only the syntax is checked here ([`check`] does the rest).
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

/// The device as `--device` writes it.
pub fn name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// `device` if it is the CPU or one of the `cuda_devices` GPUs libtorch sees; else a usage error
/// naming the devices there are.
pub fn check(device: Device, cuda_devices: i64) -> Result<Device, Failure> {
    let Device::Cuda(n) = device else {
        return Ok(device);
    };
    if (n as i64) < cuda_devices {
        return Ok(device);
    }
    let there = match cuda_devices {
        ..=0 => "this machine has no CUDA device (libtorch sees 0); use --device cpu".to_owned(),
        1 => "libtorch sees 1 CUDA device, cuda:0".to_owned(),
        count => format!(
            "libtorch sees {count} CUDA devices, cuda:0 to cuda:{}",
            count - 1
        ),
    };
    Err(Failure::new(
        USAGE,
        format_args!("--device {} is not available: {there}", name(device)),
    ))
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
    }

    #[test]
    fn refuses_other_strings_in_one_sentence() {
        for bad in [
            "", "gpu", "CPU", "cuda:", "cuda:-1", "cuda:+1", "cuda:x", "cuda:1.0", "cuda 1",
            " cpu", "mps", "cuda:99999999999999999999999",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(
                e,
                format!("a device is cpu, cuda or cuda:N (N a GPU's index from 0), not {bad:?}")
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for text in ["cpu", "cuda:0", "cuda:7"] {
            assert_eq!(name(parse(text).unwrap()), text);
        }
    }

    #[test]
    fn a_missing_gpu_names_the_devices_there_are() {
        let refused = |device, count| check(device, count).err().unwrap().text().to_owned();
        assert_eq!(
            refused(Device::Cuda(0), 0),
            "error: --device cuda:0 is not available: this machine has no CUDA device (libtorch \
             sees 0); use --device cpu\n"
        );
        assert_eq!(
            refused(Device::Cuda(1), 1),
            "error: --device cuda:1 is not available: libtorch sees 1 CUDA device, cuda:0\n"
        );
        assert_eq!(
            refused(Device::Cuda(4), 4),
            "error: --device cuda:4 is not available: libtorch sees 4 CUDA devices, cuda:0 to \
             cuda:3\n"
        );
        assert_eq!(check(Device::Cuda(0), 0).err().unwrap().code, USAGE);
        assert_eq!(check(Device::Cuda(3), 4).ok(), Some(Device::Cuda(3)));
        assert_eq!(check(Device::Cpu, 0).ok(), Some(Device::Cpu));
    }
}
