//! Hyperparameter search, pure: no API calls, no clock, no global randomness. A proposal is a
//! function of the spec (algorithm, seed, search space), the trial's index and the trials that had
//! finished when it was made, so the same inputs always give the same parameters.
//!
//! [`validate`] checks a spec before any trial runs; [`propose`] picks trial `index`'s values
//! ([`random`], [`grid`], [`tpe`]; hyperband draws like random); [`hyperband`] decides which
//! running trials stop at a rung.

pub mod grid;
pub mod hyperband;
pub mod random;
pub mod tpe;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::optimization::{
    AlgorithmName, Distribution, OptimizationJobSpec, Parameter, ParameterName,
};

/// A finished trial as the search algorithms see it: its values, in `spec.parameters` order, and
/// its objective as a loss (lower is better; [`crate::optimization::Direction::as_loss`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub values: Vec<f64>,
    pub loss: f64,
}

/// Trial `index`'s parameter values, in `spec.parameters` order (integer fields rounded), or None
/// when the algorithm has no more to propose (a grid that was walked through).
pub fn propose(
    spec: &OptimizationJobSpec,
    index: u32,
    finished: &[Observation],
) -> Option<Vec<f64>> {
    let algorithm = &spec.search_algorithm;
    let values = match algorithm.name {
        AlgorithmName::Random | AlgorithmName::Hyperband => {
            random::propose(&spec.parameters, algorithm.seed, index)
        }
        AlgorithmName::Grid => grid::propose(
            &spec.parameters,
            algorithm.grid_points.unwrap_or(grid::DEFAULT_POINTS),
            index,
        )?,
        AlgorithmName::Tpe => tpe::propose(
            &spec.parameters,
            algorithm.seed,
            index,
            algorithm
                .startup_trials
                .unwrap_or(tpe::DEFAULT_STARTUP_TRIALS),
            finished,
        ),
    };
    Some(values)
}

/// How many trials the spec runs: `numTrials`, or the grid's size when smaller.
pub fn budget(spec: &OptimizationJobSpec) -> u32 {
    match spec.search_algorithm.name {
        AlgorithmName::Grid => grid::size(
            &spec.parameters,
            spec.search_algorithm
                .grid_points
                .unwrap_or(grid::DEFAULT_POINTS),
        )
        .min(u64::from(spec.num_trials)) as u32,
        _ => spec.num_trials,
    }
}

/// A random stream for one trial of one search: the seed and the index pick it, so trial 7 draws
/// the same numbers however many trials ran before it. ChaCha8 is portable and its output is
/// fixed by its specification, so a seed means the same on every machine and rand version.
pub(crate) fn stream(seed: u64, index: u32, purpose: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((u64::from(index) << 8) | purpose);
    rng
}

/// The parameter's range in the space where it is sampled: the logarithm for `logUniform`, half a
/// step beyond each end for `intUniform` (so the ends are as likely as the middle), the choice's
/// index for `categorical`.
pub(crate) fn internal_range(p: &Parameter) -> (f64, f64) {
    let (min, max) = (p.min.unwrap_or(0.0), p.max.unwrap_or(0.0));
    match p.distribution {
        Distribution::Uniform => (min, max),
        Distribution::LogUniform => (min.ln(), max.ln()),
        Distribution::IntUniform => (min.round() - 0.5, max.round() + 0.5),
        Distribution::Categorical => (0.0, p.values.as_ref().map_or(0, Vec::len) as f64),
    }
}

/// A point of the internal space back to the value the TrainJob gets.
pub(crate) fn to_value(p: &Parameter, x: f64) -> f64 {
    let (lo, hi) = internal_range(p);
    let x = x.clamp(lo, hi);
    let v = match p.distribution {
        Distribution::Uniform => x,
        Distribution::LogUniform => x.exp().clamp(p.min.unwrap_or(0.0), p.max.unwrap_or(0.0)),
        Distribution::IntUniform => x
            .round()
            .clamp(p.min.unwrap_or(0.0).round(), p.max.unwrap_or(0.0).round()),
        Distribution::Categorical => {
            let values = p.values.as_deref().unwrap_or(&[]);
            values[(x.floor() as usize).min(values.len() - 1)]
        }
    };
    if p.name.is_integer() { v.round() } else { v }
}

/// A value back to the internal space (for TPE's densities).
pub(crate) fn to_internal(p: &Parameter, v: f64) -> f64 {
    match p.distribution {
        Distribution::Uniform | Distribution::IntUniform => v,
        Distribution::LogUniform => v.ln(),
        Distribution::Categorical => {
            p.values
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .position(|c| (c - v).abs() <= f64::EPSILON * c.abs().max(1.0))
                .unwrap_or(0) as f64
                + 0.5
        }
    }
}

/// Every reason `spec` cannot run, each naming the field and the fix; empty when it can.
pub fn validate(spec: &OptimizationJobSpec) -> Vec<String> {
    let mut errors = Vec::new();
    if spec.objectives.len() != 1 {
        errors.push(format!(
            "spec.objectives: exactly one objective is supported ({} given)",
            spec.objectives.len()
        ));
    }
    if spec.train_job_template.trainer.is_some() {
        errors.push(
            "spec.trainJobTemplate.trainer: tuning sets the built-in trainer's learningRate, \
             batchSize and epochs, which a container trainer does not take; use \
             spec.trainJobTemplate.model (mlp or cnn)"
                .into(),
        );
    }
    if spec.parameters.is_empty() {
        errors.push("spec.parameters: name at least one parameter to tune".into());
    }
    let mut seen = Vec::new();
    for (i, p) in spec.parameters.iter().enumerate() {
        let at = format!("spec.parameters[{i}] ({})", p.name.as_str());
        if seen.contains(&p.name) {
            errors.push(format!("{at}: tuned twice; keep one entry per field"));
        }
        seen.push(p.name);
        errors.extend(check_parameter(p, &at));
    }
    if spec.parallel_trials == 0 {
        errors.push("spec.parallelTrials: must be at least 1".into());
    }
    if spec.num_trials == 0 {
        errors.push("spec.numTrials: must be at least 1".into());
    }
    if spec.search_algorithm.name == AlgorithmName::Grid {
        let points = spec
            .search_algorithm
            .grid_points
            .unwrap_or(grid::DEFAULT_POINTS);
        if points < 2 {
            errors.push("spec.searchAlgorithm.gridPoints: must be at least 2".into());
        }
    }
    if spec.search_algorithm.name == AlgorithmName::Hyperband {
        errors.extend(hyperband::check(spec));
    }
    errors
}

fn check_parameter(p: &Parameter, at: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let ranged = p.distribution != Distribution::Categorical;
    if ranged {
        match (p.min, p.max) {
            (Some(min), Some(max)) if min.is_finite() && max.is_finite() && min < max => {
                if p.distribution == Distribution::LogUniform && min <= 0.0 {
                    errors.push(format!("{at}: logUniform needs min > 0 (got {min})"));
                }
                if p.distribution == Distribution::IntUniform
                    && (min.fract() != 0.0 || max.fract() != 0.0)
                {
                    errors.push(format!("{at}: intUniform needs whole min and max"));
                }
            }
            _ => errors.push(format!(
                "{at}: {:?} needs finite min and max with min < max",
                p.distribution
            )),
        }
        if p.values.is_some() {
            errors.push(format!(
                "{at}: values is for categorical; use min and max here"
            ));
        }
    } else {
        match p.values.as_deref() {
            Some(values) if !values.is_empty() => {
                if values.iter().any(|v| !v.is_finite()) {
                    errors.push(format!("{at}: values must be finite numbers"));
                }
                let mut sorted = values.to_vec();
                sorted.sort_by(f64::total_cmp);
                sorted.dedup();
                if sorted.len() != values.len() {
                    errors.push(format!("{at}: values are repeated"));
                }
            }
            _ => errors.push(format!(
                "{at}: categorical needs a non-empty list of values"
            )),
        }
        if p.min.is_some() || p.max.is_some() {
            errors.push(format!(
                "{at}: min and max are for ranged distributions; list the values"
            ));
        }
    }
    // The TrainJob's own bounds: learningRate > 0, batchSize and epochs whole and at least 1.
    let bounds: Vec<f64> = if ranged {
        [p.min, p.max].into_iter().flatten().collect()
    } else {
        p.values.clone().unwrap_or_default()
    };
    match p.name {
        ParameterName::LearningRate => {
            if bounds.iter().any(|v| *v <= 0.0) {
                errors.push(format!("{at}: a learning rate must be greater than 0"));
            }
        }
        ParameterName::BatchSize | ParameterName::Epochs => {
            if bounds.iter().any(|v| *v < 1.0 || v.fract() != 0.0) {
                errors.push(format!("{at}: must be whole numbers of at least 1"));
            }
        }
    }
    errors
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::optimization::*;

    pub fn log_uniform_lr() -> Parameter {
        Parameter {
            name: ParameterName::LearningRate,
            distribution: Distribution::LogUniform,
            min: Some(1e-4),
            max: Some(1e-1),
            values: None,
        }
    }

    pub fn batch_sizes() -> Parameter {
        Parameter {
            name: ParameterName::BatchSize,
            distribution: Distribution::Categorical,
            min: None,
            max: None,
            values: Some(vec![16.0, 32.0, 64.0, 128.0]),
        }
    }

    pub fn spec(name: AlgorithmName, parameters: Vec<Parameter>) -> OptimizationJobSpec {
        serde_json::from_value(serde_json::json!({
            "objectives": [{"metric": "accuracy", "direction": "maximize"}],
            "searchAlgorithm": {"name": name, "seed": 7},
            "parameters": parameters,
            "numTrials": 10,
            "trainJobTemplate": {"model": "mlp", "epochs": 3,
                "dataset": {"uri": "file:///data"}, "output": {"uri": "pvc://models/tune"}}
        }))
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn a_valid_spec_has_no_errors() {
        let spec = spec(AlgorithmName::Random, vec![log_uniform_lr(), batch_sizes()]);
        assert_eq!(validate(&spec), Vec::<String>::new());
    }

    #[test]
    fn bad_search_spaces_are_refused_naming_the_parameter() {
        let cases: Vec<(Parameter, &str)> = vec![
            (
                Parameter {
                    min: Some(0.0),
                    ..log_uniform_lr()
                },
                "spec.parameters[0] (learningRate): logUniform needs min > 0",
            ),
            (
                Parameter {
                    min: Some(0.1),
                    max: Some(0.01),
                    ..log_uniform_lr()
                },
                "needs finite min and max with min < max",
            ),
            (
                Parameter {
                    values: Some(vec![]),
                    ..batch_sizes()
                },
                "spec.parameters[0] (batchSize): categorical needs a non-empty list",
            ),
            (
                Parameter {
                    values: Some(vec![16.0, 0.5]),
                    ..batch_sizes()
                },
                "(batchSize): must be whole numbers of at least 1",
            ),
        ];
        for (p, want) in cases {
            let errors = validate(&spec(AlgorithmName::Random, vec![p.clone()]));
            assert!(
                errors.iter().any(|e| e.contains(want)),
                "{p:?}: {errors:?} lacks {want}"
            );
        }
        let twice = validate(&spec(
            AlgorithmName::Random,
            vec![log_uniform_lr(), log_uniform_lr()],
        ));
        assert!(twice.iter().any(|e| e.contains("tuned twice")), "{twice:?}");
    }

    #[test]
    fn a_container_trainer_template_is_refused() {
        let mut spec = spec(AlgorithmName::Random, vec![log_uniform_lr()]);
        spec.train_job_template.model = None;
        spec.train_job_template.trainer =
            Some(serde_json::from_value(serde_json::json!({"image": "me/train:1"})).unwrap());
        let errors = validate(&spec);
        assert!(
            errors[0].starts_with("spec.trainJobTemplate.trainer:"),
            "{errors:?}"
        );
    }

    #[test]
    fn values_round_trip_through_the_internal_space() {
        let lr = log_uniform_lr();
        for v in [1e-4, 3e-3, 0.1] {
            assert!((to_value(&lr, to_internal(&lr, v)) - v).abs() < 1e-12);
        }
        let bs = batch_sizes();
        for v in [16.0, 32.0, 64.0, 128.0] {
            assert_eq!(to_value(&bs, to_internal(&bs, v)), v);
        }
    }
}
