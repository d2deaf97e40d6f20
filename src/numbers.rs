//! The command line's whole-number flags (`--epochs`, `--batch-size`, `--limit`, `--threads`):
//! one parser and one message for all of them, their real limit included.

use vggdsl::analysis::thousands;

/// Parses a whole number from 1 to `max`, as `value_parser = numbers::count(MAX)`; any other text
/// (0, -1, 2.5, a word) gets the same sentence under clap's `invalid value` line.
pub fn count<T: TryFrom<usize>>(max: usize) -> impl Fn(&str) -> Result<T, String> + Clone {
    move |text| {
        text.parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| {
                format!(
                    "expected a whole number from 1 to {}",
                    thousands(max as u64)
                )
            })
    }
}
