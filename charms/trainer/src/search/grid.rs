//! Grid search (upstream's `grid`): every combination of the parameters' grid values, trial `i`
//! taking the `i`-th in order (the last parameter changing fastest). A `uniform` parameter
//! contributes `gridPoints` evenly spaced values, a `logUniform` one `gridPoints` evenly spaced in
//! the logarithm, `intUniform` every whole number in its range, `categorical` its values.

use crate::optimization::{Distribution, Parameter};

/// Points of a continuous parameter when `gridPoints` is unset.
pub const DEFAULT_POINTS: u32 = 3;

/// The grid values of one parameter, in order.
pub fn values(p: &Parameter, points: u32) -> Vec<f64> {
    let (min, max) = (p.min.unwrap_or(0.0), p.max.unwrap_or(0.0));
    let spaced = |lo: f64, hi: f64| -> Vec<f64> {
        let n = points.max(2);
        (0..n)
            .map(|k| lo + (hi - lo) * f64::from(k) / f64::from(n - 1))
            .collect()
    };
    let values: Vec<f64> = match p.distribution {
        Distribution::Uniform => spaced(min, max),
        Distribution::LogUniform => spaced(min.ln(), max.ln())
            .into_iter()
            .map(f64::exp)
            .collect(),
        Distribution::IntUniform => {
            let (lo, hi) = (min.round() as i64, max.round() as i64);
            (lo..=hi).map(|v| v as f64).collect()
        }
        Distribution::Categorical => p.values.clone().unwrap_or_default(),
    };
    let mut values: Vec<f64> = values
        .into_iter()
        .map(|v| if p.name.is_integer() { v.round() } else { v })
        .collect();
    // Rounding a batch-size range may make two points one.
    values.dedup();
    values
}

/// How many combinations there are (saturating: a grid this large is never walked through).
pub fn size(parameters: &[Parameter], points: u32) -> u64 {
    parameters.iter().fold(1u64, |n, p| {
        n.saturating_mul(values(p, points).len() as u64)
    })
}

/// Combination `index`, or None past the end of the grid.
pub fn propose(parameters: &[Parameter], points: u32, index: u32) -> Option<Vec<f64>> {
    if u64::from(index) >= size(parameters, points) {
        return None;
    }
    let mut rest = u64::from(index);
    let mut chosen = vec![0.0; parameters.len()];
    for (slot, p) in chosen.iter_mut().zip(parameters).rev() {
        let values = values(p, points);
        let n = values.len() as u64;
        *slot = values[(rest % n) as usize];
        rest /= n;
    }
    Some(chosen)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn the_grid_is_every_combination_in_order_then_ends() {
        let ps = [log_uniform_lr(), batch_sizes()];
        assert_eq!(size(&ps, 3), 12);
        let all: Vec<Vec<f64>> = (0..12).map(|i| propose(&ps, 3, i).unwrap()).collect();
        let lrs = [1e-4, 10f64.powf(-2.5), 1e-1];
        let mut want = Vec::new();
        for lr in lrs {
            for bs in [16.0, 32.0, 64.0, 128.0] {
                want.push((lr, bs));
            }
        }
        for (got, (lr, bs)) in all.iter().zip(&want) {
            assert!(
                (got[0] - lr).abs() < 1e-12 * lr.max(1.0) + 1e-15,
                "{got:?} vs {lr}"
            );
            assert_eq!(got[1], *bs);
        }
        assert_eq!(propose(&ps, 3, 12), None);
    }

    #[test]
    fn an_integer_range_contributes_every_whole_number() {
        let epochs = Parameter {
            name: crate::optimization::ParameterName::Epochs,
            distribution: Distribution::IntUniform,
            min: Some(2.0),
            max: Some(5.0),
            values: None,
        };
        assert_eq!(values(&epochs, 3), [2.0, 3.0, 4.0, 5.0]);
    }
}
