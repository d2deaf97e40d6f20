//! The kernels a conv layer of an inference model can run, and how the one that runs is chosen:
//! measured on this machine (the default), guessed from the shape, or fixed.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// One way to compute `relu(conv2d(x) + bias)` on channels-last f32 maps. Every kernel reads and
/// writes channels-last tensors, so that choosing one never makes the next layer convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// oneDNN's fused conv + ReLU (`mkldnn::_convolution_pointwise`, what torch.compile runs),
    /// on the weight packed for the batch's exact shape.
    OneDnn,
    /// Winograd's F(2×2, 3×3) form ([`crate::ops::winograd_conv_relu`]): 3×3 convs with stride
    /// and padding 1 on maps of even sides, its products by MKL's GEMM.
    Winograd,
    /// Winograd's form with its products in registers ([`crate::ops::WinogradProducts`]), where
    /// a batch has few tiles: at most [`crate::inference::FEW_TILES`] 2×2 blocks of outputs.
    WinogradFew,
    /// One matrix product over the flattened maps: convs on maps of a few positions.
    Matrix,
    /// The conv computed directly, its sums in registers ([`crate::ops::direct_conv_relu`]):
    /// convs with few input channels, at most [`crate::inference::DIRECT_TAPS`] taps × inputs.
    Direct,
    /// aten's `conv2d` then ReLU, on the folded weight as it is: oneDNN reorders that weight on
    /// every call, so it is never tuned for; a fixed choice for comparisons, and what runs weights
    /// oneDNN can't (f64, f16, bf16, other devices).
    Aten,
}

impl Kernel {
    /// The kernels the tuner times (where they apply).
    pub const TUNED: [Kernel; 5] = [
        Kernel::OneDnn,
        Kernel::Winograd,
        Kernel::WinogradFew,
        Kernel::Matrix,
        Kernel::Direct,
    ];

    /// The name `VGGDSL_KERNELS` and the cache file use.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::OneDnn => "onednn",
            Kernel::Winograd => "winograd",
            Kernel::WinogradFew => "winograd-few",
            Kernel::Matrix => "matrix",
            Kernel::Direct => "direct",
            Kernel::Aten => "aten",
        }
    }

    /// The kernel of that [`Kernel::name`].
    pub fn from_name(name: &str) -> Option<Kernel> {
        [
            Kernel::OneDnn,
            Kernel::Winograd,
            Kernel::WinogradFew,
            Kernel::Matrix,
            Kernel::Direct,
            Kernel::Aten,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// How each conv layer picks its kernel for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelChoice {
    /// Time the kernels that apply on the first batch of each size class, keep the fastest, and
    /// remember it per machine (the default; see [`crate::inference`]).
    Tune,
    /// The rule of thumb the tuner starts from ([`crate::inference::ConvReLU2d::guess`]), untimed.
    Guess,
    /// This kernel wherever it applies, oneDNN's elsewhere: reproducible runs and tests.
    Fixed(Kernel),
}

impl KernelChoice {
    /// `tune`, `guess` or a kernel's name.
    pub fn parse(s: &str) -> Option<KernelChoice> {
        match s {
            "tune" => Some(KernelChoice::Tune),
            "guess" => Some(KernelChoice::Guess),
            _ => Kernel::from_name(s).map(KernelChoice::Fixed),
        }
    }

    fn code(self) -> u8 {
        match self {
            KernelChoice::Tune => 1,
            KernelChoice::Guess => 2,
            KernelChoice::Fixed(k) => 3 + k as u8,
        }
    }

    fn from_code(code: u8) -> Option<KernelChoice> {
        match code {
            1 => Some(KernelChoice::Tune),
            2 => Some(KernelChoice::Guess),
            3 => Some(KernelChoice::Fixed(Kernel::OneDnn)),
            4 => Some(KernelChoice::Fixed(Kernel::Winograd)),
            5 => Some(KernelChoice::Fixed(Kernel::WinogradFew)),
            6 => Some(KernelChoice::Fixed(Kernel::Matrix)),
            7 => Some(KernelChoice::Fixed(Kernel::Direct)),
            8 => Some(KernelChoice::Fixed(Kernel::Aten)),
            _ => None,
        }
    }
}

/// The environment variable that sets the choice: `tune`, `guess`, `onednn`, `winograd`,
/// `winograd-few`, `matrix`, `direct` or `aten`.
pub const KERNELS_VAR: &str = "VGGDSL_KERNELS";

/// What [`set_kernel_choice`] set; 0 for nothing.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// Sets how every conv layer of this process picks its kernel from now on, over
/// `VGGDSL_KERNELS`; `None` goes back to the variable. Layers keep the kernels they already
/// tuned for a size class.
pub fn set_kernel_choice(choice: Option<KernelChoice>) {
    CHOSEN.store(choice.map_or(0, KernelChoice::code), Ordering::Relaxed);
}

/// The choice in force: [`set_kernel_choice`]'s, else `VGGDSL_KERNELS`'s, else
/// [`KernelChoice::Tune`]. A value the variable can't have is reported once and ignored.
pub fn kernel_choice() -> KernelChoice {
    if let Some(choice) = KernelChoice::from_code(CHOSEN.load(Ordering::Relaxed)) {
        return choice;
    }
    static FROM_ENV: OnceLock<KernelChoice> = OnceLock::new();
    *FROM_ENV.get_or_init(|| match std::env::var(KERNELS_VAR) {
        Ok(value) => KernelChoice::parse(value.trim()).unwrap_or_else(|| {
            eprintln!(
                "vggdsl: {KERNELS_VAR}={value:?} is none of tune, guess, onednn, winograd, \
                 winograd-few, matrix, direct, aten; tuning"
            );
            KernelChoice::Tune
        }),
        Err(_) => KernelChoice::Tune,
    })
}
