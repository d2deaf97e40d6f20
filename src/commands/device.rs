//! `--device cpu|cuda|cuda:N` of `train`, `eval`, `rank` and `sensitivity`: one flag, checked
//! against the devices libtorch sees before any data is loaded, so that a missing GPU is one
//! sentence and not a libtorch failure minutes in. Reading and naming devices is the runtime's
//! ([`vggdsl_runtime::device`]).

use vggdsl_runtime::device;
use vggdsl_runtime::tch::Device;

use crate::exit::USAGE;
use crate::failure::Failure;

/// The `--device` flag.
#[derive(clap::Args)]
pub struct DeviceArgs {
    /// Where the network and the batches live: cpu, cuda (the first GPU) or cuda:N. Weights and
    /// checkpoints are written from CPU copies, so they load on any device.
    #[arg(long, value_name = "DEVICE", default_value = "cpu", value_parser = device::parse)]
    pub device: Device,
}

impl DeviceArgs {
    /// The device asked for, if libtorch sees it; else a usage error naming those it sees.
    pub fn checked(&self) -> Result<Device, Failure> {
        device::available(self.device)
            .map_err(|e| Failure::new(USAGE, format_args!("--device {e}")))
    }
}
