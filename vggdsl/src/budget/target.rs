//! What a target says and how it is written. One syntax, so that no number means two things:
//!
//! - `N%`: N percent of the unpruned model's figure is kept (`50%`, `12.5%`), for any resource;
//! - MACs and parameters: a whole count, plain (`150000000`) or with a suffix `K`, `M` or `G`
//!   for thousands, millions or billions (`2.5M`, `150M`, `1.2G`);
//! - latency: milliseconds (`12.5`, or `12.5ms`).
//!
//! A bare fraction such as `0.5` is refused for MACs and parameters: it would be a share to some
//! and half a MAC to others.

use std::fmt;

/// What a target limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// Conv2d + Linear multiply-accumulates for one image.
    Macs,
    /// Conv2d + Linear parameters.
    Params,
    /// Milliseconds of one batch through `to_inference()`, measured on this machine.
    Latency,
}

impl Resource {
    /// As the flags name it: `macs`, `params`, `latency`.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Macs => "macs",
            Resource::Params => "params",
            Resource::Latency => "latency",
        }
    }
}

/// How much of a resource the pruned model may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// This fraction of the unpruned model's figure, in (0, 1].
    Share(f64),
    /// This many MACs or parameters, or milliseconds.
    Absolute(f64),
}

/// A resource and the most of it the pruned model may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub resource: Resource,
    pub amount: Amount,
}

impl Target {
    /// Reads `text` as a target for `resource`; the error is one sentence.
    pub fn parse(resource: Resource, text: &str) -> Result<Target, String> {
        let t = text.trim();
        let amount = if let Some(pct) = t.strip_suffix('%') {
            let share = number(pct.trim())
                .filter(|p| *p > 0.0 && *p <= 100.0)
                .ok_or_else(|| format!("`{t}` is not a share from 0% (excluded) to 100%"))?;
            Amount::Share(share / 100.0)
        } else if resource == Resource::Latency {
            let ms = t.strip_suffix("ms").unwrap_or(t).trim();
            Amount::Absolute(number(ms).filter(|v| *v > 0.0).ok_or_else(|| {
                format!("`{t}` is not a latency: write milliseconds such as 12.5, or a share such as 50%")
            })?)
        } else {
            Amount::Absolute(count(t).ok_or_else(|| {
                format!(
                    "`{t}` is not a count of {}: write a whole number such as 150000000 or \
                     150M (K, M, G: thousands, millions, billions), or a share such as 50%",
                    resource.name()
                )
            })?)
        };
        Ok(Target { resource, amount })
    }

    /// The most the pruned model may use, for an unpruned model using `unpruned`.
    pub fn limit(&self, unpruned: f64) -> f64 {
        match self.amount {
            Amount::Share(s) => s * unpruned,
            Amount::Absolute(v) => v,
        }
    }
}

/// `50% of the MACs`, `2500000 params`, `12.5 ms`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.resource {
            Resource::Macs => "MACs",
            Resource::Params => "params",
            Resource::Latency => "latency",
        };
        match (self.amount, self.resource) {
            (Amount::Share(s), _) => write!(f, "{}% of the {what}", 100.0 * s),
            (Amount::Absolute(ms), Resource::Latency) => write!(f, "{ms} ms"),
            (Amount::Absolute(n), _) => {
                write!(f, "{} {what}", crate::analysis::thousands(n as u64))
            }
        }
    }
}

/// A finite decimal number: digits with at most one point, nothing else.
fn number(text: &str) -> Option<f64> {
    let plain = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.chars().filter(|&c| c == '.').count() <= 1
        && text.chars().any(|c| c.is_ascii_digit());
    plain.then(|| text.parse().ok()).flatten()
}

/// A whole count of at least 1: digits, or a decimal number with a suffix whose product is whole.
fn count(text: &str) -> Option<f64> {
    let (digits, scale) = match text.char_indices().last()? {
        (i, 'K' | 'k') => (&text[..i], 1e3),
        (i, 'M') => (&text[..i], 1e6),
        (i, 'G') => (&text[..i], 1e9),
        _ if text.contains('.') => return None,
        _ => (text, 1.0),
    };
    let n = (number(digits)? * scale).round();
    (n >= 1.0 && (number(digits)? * scale - n).abs() < 1e-6).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(resource: Resource, text: &str) -> Result<Amount, String> {
        Target::parse(resource, text).map(|t| t.amount)
    }

    #[test]
    fn shares_counts_and_milliseconds() {
        use Amount::{Absolute, Share};
        assert_eq!(parse(Resource::Macs, "50%"), Ok(Share(0.5)));
        assert_eq!(parse(Resource::Params, " 12.5 % "), Ok(Share(0.125)));
        assert_eq!(parse(Resource::Latency, "100%"), Ok(Share(1.0)));
        assert_eq!(parse(Resource::Macs, "150000000"), Ok(Absolute(150e6)));
        assert_eq!(parse(Resource::Macs, "2.5M"), Ok(Absolute(2.5e6)));
        assert_eq!(parse(Resource::Params, "300K"), Ok(Absolute(3e5)));
        assert_eq!(parse(Resource::Params, "1.2G"), Ok(Absolute(1.2e9)));
        assert_eq!(parse(Resource::Latency, "12.5"), Ok(Absolute(12.5)));
        assert_eq!(parse(Resource::Latency, "3ms"), Ok(Absolute(3.0)));
    }

    #[test]
    fn what_could_mean_two_things_is_refused() {
        for (resource, text) in [
            (Resource::Macs, "0.5"),
            (Resource::Params, "2.5"),
            (Resource::Macs, "0%"),
            (Resource::Macs, "150%"),
            (Resource::Macs, "-5M"),
            (Resource::Macs, "1.00001K"),
            (Resource::Macs, "5m"),
            (Resource::Macs, "0"),
            (Resource::Macs, "1e6"),
            (Resource::Latency, "0"),
            (Resource::Latency, "fast"),
            (Resource::Latency, ""),
        ] {
            assert!(parse(resource, text).is_err(), "{text}");
        }
        assert_eq!(
            parse(Resource::Macs, "0.5").unwrap_err(),
            "`0.5` is not a count of macs: write a whole number such as 150000000 or 150M \
             (K, M, G: thousands, millions, billions), or a share such as 50%"
        );
    }

    #[test]
    fn a_limit_is_a_share_of_the_unpruned_figure_or_the_amount() {
        let half = Target::parse(Resource::Macs, "50%").unwrap();
        assert_eq!(half.limit(313_463_808.0), 156_731_904.0);
        assert_eq!(half.to_string(), "50% of the MACs");
        let ms = Target::parse(Resource::Latency, "4").unwrap();
        assert_eq!(ms.limit(10.0), 4.0);
        assert_eq!(ms.to_string(), "4 ms");
        let count = Target::parse(Resource::Params, "2.5M").unwrap();
        assert_eq!(count.to_string(), "2,500,000 params");
    }
}
