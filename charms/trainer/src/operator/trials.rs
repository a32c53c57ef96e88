//! What an OptimizationJob's status should say and what to do next, decided from its spec, its
//! previous status and the TrainJobs it owns — pure, no API calls ([`super::optimize`] makes them).
//!
//! One pass ([`plan`]): merge what the trials' TrainJobs report into `status.trials` (a finished
//! trial's record stands, even once its TrainJob is gone); for hyperband, record each trial's
//! objective at the rungs it reached and stop those that are not among the best there; count;
//! propose new trials while fewer than `parallelTrials` run and the budget is not spent; pick the
//! best trial; set the conditions.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::{Resource, ResourceExt};

use super::status::set_condition;
use crate::crd::{
    CONDITION_FAILED, CONDITION_RUNNING, CONDITION_SUCCEEDED, EpochMetrics, TrainJob,
    TrainJobStatus,
};
use crate::optimization::{
    AlgorithmName, Metric, OptimizationJob, OptimizationJobSpec, OptimizationJobStatus,
    ParameterName, RungValue, Trial, TrialResult, TrialState,
};
use crate::search::{self, Observation, hyperband};

/// On a trial's TrainJob: the OptimizationJob it belongs to.
pub const LABEL_JOB: &str = "wharf.dev/optimization-job";
/// On a trial's TrainJob: the trial's index.
pub const LABEL_TRIAL: &str = "wharf.dev/trial";
/// On a trial's TrainJob: the parameter values it was given, as JSON (the spec holds them too,
/// but a record by name survives a template that already set the same field).
pub const ANNOTATION_PARAMETERS: &str = "wharf.dev/trial-parameters";

/// The TrainJob of trial `index`.
pub fn trial_name(job: &str, index: u32) -> String {
    format!("{job}-trial-{index}")
}

/// The longest name a trial's TrainJob may have: it names a Job, whose name is a label value.
pub const MAX_TRIAL_NAME: usize = 63;

/// What one trial's TrainJob says.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub index: u32,
    pub name: String,
    pub parameters: BTreeMap<String, f64>,
    pub state: TrialState,
    /// The objective when it succeeded.
    pub value: Option<f64>,
    /// The objective per epoch, from `status.epochs`.
    pub epochs: Vec<(u32, f64)>,
    pub message: Option<String>,
    pub model_uri: Option<String>,
}

fn epoch_value(e: &EpochMetrics, metric: Metric) -> Option<f64> {
    match metric {
        Metric::Accuracy => e.accuracy,
        Metric::Loss => e.loss,
        Metric::TrainAccuracy => e.train_accuracy,
    }
}

pub fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::Accuracy => "accuracy",
        Metric::Loss => "loss",
        Metric::TrainAccuracy => "trainAccuracy",
    }
}

/// The objective of a finished TrainJob: its final metrics (the last epoch, the one its artifact
/// holds), else the last epoch that reported the metric.
fn final_value(status: &TrainJobStatus, metric: Metric) -> Option<f64> {
    let from_metrics = status.metrics.as_ref().and_then(|m| match metric {
        Metric::Accuracy => Some(m.test_accuracy),
        Metric::Loss => Some(m.loss),
        Metric::TrainAccuracy => m.train_accuracy,
    });
    from_metrics.or_else(|| {
        status
            .epochs
            .iter()
            .rev()
            .find_map(|e| epoch_value(e, metric))
    })
}

/// A trial's TrainJob as the plan sees it; None for a TrainJob that is not a trial.
pub fn observe(tj: &TrainJob, metric: Metric) -> Option<Observed> {
    let index: u32 = tj.labels().get(LABEL_TRIAL)?.parse().ok()?;
    let parameters = tj
        .annotations()
        .get(ANNOTATION_PARAMETERS)
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default();
    let status = tj.status.clone().unwrap_or_default();
    let epochs = status
        .epochs
        .iter()
        .filter_map(|e| Some((e.epoch, epoch_value(e, metric)?)))
        .collect();
    let failed_message = || {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_FAILED && c.status == "True")
            .map(|c| format!("{}: {}", c.reason, c.message))
    };
    let (state, value, message) = match status.state.as_deref() {
        Some("Running") => (TrialState::Running, None, None),
        Some("Succeeded") => match final_value(&status, metric) {
            Some(v) if v.is_finite() => (TrialState::Succeeded, Some(v), None),
            _ => (
                TrialState::Failed,
                None,
                Some(format!(
                    "the TrainJob succeeded without reporting {}",
                    metric_name(metric)
                )),
            ),
        },
        Some("Failed") => (TrialState::Failed, None, failed_message()),
        _ => (TrialState::Created, None, None),
    };
    Some(Observed {
        index,
        name: tj.name_any(),
        parameters,
        state,
        value,
        epochs,
        message,
        model_uri: status.model_uri.clone(),
    })
}

/// A trial to start.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTrial {
    pub index: u32,
    pub name: String,
    /// In `spec.parameters` order.
    pub values: Vec<f64>,
}

/// A running trial hyperband stops: its TrainJob is deleted (a TrainJob cannot be suspended).
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    pub name: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub status: OptimizationJobStatus,
    pub create: Vec<NewTrial>,
    pub stop: Vec<Stop>,
}

fn by_name(spec: &OptimizationJobSpec, values: &[f64]) -> BTreeMap<String, f64> {
    spec.parameters
        .iter()
        .zip(values)
        .map(|(p, v)| (p.name.as_str().to_owned(), *v))
        .collect()
}

/// The status for a spec that cannot run: Failed, reason InvalidSpec, with every error.
pub fn invalid(
    previous: Option<&OptimizationJobStatus>,
    errors: &[String],
    generation: Option<i64>,
    now: &Time,
) -> OptimizationJobStatus {
    let mut next = previous.cloned().unwrap_or_default();
    let message = errors.join("; ");
    set_condition(
        &mut next.conditions,
        CONDITION_RUNNING,
        false,
        "InvalidSpec",
        "",
        generation,
        now,
    );
    set_condition(
        &mut next.conditions,
        CONDITION_SUCCEEDED,
        false,
        "InvalidSpec",
        "",
        generation,
        now,
    );
    set_condition(
        &mut next.conditions,
        CONDITION_FAILED,
        true,
        "InvalidSpec",
        &message,
        generation,
        now,
    );
    next.state = Some(CONDITION_FAILED.into());
    next
}

/// The next status and the trials to start and stop.
pub fn plan(
    job: &str,
    spec: &OptimizationJobSpec,
    previous: Option<&OptimizationJobStatus>,
    observed: &[Observed],
    generation: Option<i64>,
    now: &Time,
) -> Plan {
    let objective = &spec.objectives[0];
    let direction = objective.direction;
    let mut next = previous.cloned().unwrap_or_default();
    let mut trials: BTreeMap<u32, Trial> = next.trials.drain(..).map(|t| (t.index, t)).collect();

    // 1. What the TrainJobs say; a finished trial's record stands.
    let seen: BTreeSet<u32> = observed.iter().map(|o| o.index).collect();
    for o in observed {
        let before = trials.get(&o.index);
        if before.is_some_and(|t| !t.state.is_active()) {
            continue;
        }
        let parameters = if o.parameters.is_empty() {
            before.map(|t| t.parameters.clone()).unwrap_or_default()
        } else {
            o.parameters.clone()
        };
        let rungs = before.map(|t| t.rungs.clone()).unwrap_or_default();
        trials.insert(
            o.index,
            Trial {
                name: o.name.clone(),
                index: o.index,
                parameters,
                state: o.state,
                value: o.value,
                rungs,
                message: o.message.clone(),
                model_uri: o
                    .model_uri
                    .clone()
                    .filter(|_| o.state == TrialState::Succeeded),
            },
        );
    }
    for t in trials.values_mut() {
        if t.state.is_active() && !seen.contains(&t.index) {
            t.state = TrialState::Failed;
            t.message = Some("its TrainJob was deleted before it finished".into());
        }
    }

    // 2. Hyperband: the objective at each rung reached, in trial order; stop the laggards.
    let mut stop = Vec::new();
    if spec.search_algorithm.name == AlgorithmName::Hyperband {
        let schedule = hyperband::Schedule::of(spec);
        let epochs: BTreeMap<u32, &[(u32, f64)]> = observed
            .iter()
            .map(|o| (o.index, o.epochs.as_slice()))
            .collect();
        let indexes: Vec<u32> = trials.keys().copied().collect();
        for index in indexes {
            let Some(history) = epochs.get(&index) else {
                continue;
            };
            for rung in schedule.rungs(index) {
                let trial = &trials[&index];
                if trial.state == TrialState::EarlyStopped
                    || trial.rungs.iter().any(|r| r.epoch == rung)
                {
                    continue;
                }
                let Some(&(_, value)) = history.iter().find(|(e, _)| *e >= rung) else {
                    break;
                };
                let bracket = schedule.bracket(index);
                let others: Vec<f64> = trials
                    .values()
                    .filter(|t| t.index != index && schedule.bracket(t.index) == bracket)
                    .filter_map(|t| t.rungs.iter().find(|r| r.epoch == rung))
                    .map(|r| r.value)
                    .collect();
                let running = trial.state == TrialState::Running;
                let trial = trials.get_mut(&index).expect("listed above");
                trial.rungs.push(RungValue { epoch: rung, value });
                if running && hyperband::should_stop(value, &others, schedule.eta, direction) {
                    let message = format!(
                        "stopped at epoch {rung}: {} {value} is not among the best 1/{} of the {} \
                         trials of bracket {bracket} at that rung",
                        metric_name(objective.metric),
                        schedule.eta,
                        others.len() + 1
                    );
                    trial.state = TrialState::EarlyStopped;
                    trial.value = Some(value);
                    trial.message = Some(message.clone());
                    stop.push(Stop {
                        name: trial.name.clone(),
                        message,
                    });
                }
            }
        }
    }

    // 3. Counts, and whether failures end the search.
    let count = |trials: &BTreeMap<u32, Trial>, state: TrialState| {
        trials.values().filter(|t| t.state == state).count() as u32
    };
    let failed = count(&trials, TrialState::Failed);
    let too_many_failed = spec.max_failed_trials.is_some_and(|max| failed > max);

    // 4. New trials, while there is room and budget.
    let budget = search::budget(spec);
    let mut create = Vec::new();
    if !too_many_failed {
        let finished: Vec<Observation> = trials
            .values()
            .filter(|t| t.state == TrialState::Succeeded)
            .filter_map(|t| {
                let values = spec
                    .parameters
                    .iter()
                    .map(|p| t.parameters.get(p.name.as_str()).copied())
                    .collect::<Option<Vec<f64>>>()?;
                Some(Observation {
                    values,
                    loss: direction.as_loss(t.value?),
                })
            })
            .collect();
        let mut active = trials.values().filter(|t| t.state.is_active()).count() as u32;
        let mut index = trials.keys().next_back().map_or(0, |i| i + 1);
        while active < spec.parallel_trials && (trials.len() as u32) < budget {
            let Some(values) = search::propose(spec, index, &finished) else {
                break;
            };
            let name = trial_name(job, index);
            trials.insert(
                index,
                Trial {
                    name: name.clone(),
                    index,
                    parameters: by_name(spec, &values),
                    state: TrialState::Created,
                    value: None,
                    rungs: Vec::new(),
                    message: None,
                    model_uri: None,
                },
            );
            create.push(NewTrial {
                index,
                name,
                values,
            });
            active += 1;
            index += 1;
        }
    }

    // 5. The best succeeded trial (the lower index on a tie).
    let mut best: Option<&Trial> = None;
    for t in trials.values().filter(|t| t.state == TrialState::Succeeded) {
        let (Some(v), current) = (t.value, best.and_then(|b| b.value)) else {
            continue;
        };
        if current.is_none_or(|c| direction.better(v, c)) {
            best = Some(t);
        }
    }
    next.result = best.map(|t| TrialResult {
        trial_name: t.name.clone(),
        train_job: t.name.clone(),
        parameters: t.parameters.clone(),
        value: t.value.unwrap_or_default(),
        model_uri: t.model_uri.clone(),
    });

    // 6. Counts, progress and conditions.
    let active = trials.values().filter(|t| t.state.is_active()).count() as u32;
    next.succeeded_trials = count(&trials, TrialState::Succeeded);
    next.failed_trials = failed;
    next.early_stopped_trials = count(&trials, TrialState::EarlyStopped);
    next.active_trials = active;
    let finished = next.succeeded_trials + next.failed_trials + next.early_stopped_trials;
    next.progress = Some(format!("{finished}/{budget}"));
    next.trials = trials.into_values().collect();
    next.start_time.get_or_insert_with(|| now.clone());

    let spent = next.trials.len() as u32 >= budget && active == 0;
    let (state, reason, message) = if too_many_failed {
        (
            CONDITION_FAILED,
            "TooManyFailedTrials",
            format!(
                "{failed} trials failed, more than maxFailedTrials ({}); no more trials start",
                spec.max_failed_trials.unwrap_or_default()
            ),
        )
    } else if spent && next.result.is_none() {
        (
            CONDITION_FAILED,
            "NoTrialSucceeded",
            format!("none of the {finished} trials succeeded"),
        )
    } else if spent {
        let r = next.result.as_ref().expect("checked above");
        (
            CONDITION_SUCCEEDED,
            "BestTrialFound",
            format!(
                "best {} {} from trial {} after {finished} trials",
                metric_name(objective.metric),
                r.value,
                r.trial_name
            ),
        )
    } else {
        (
            CONDITION_RUNNING,
            "TrialsRunning",
            format!("{active} trials running, {finished} of {budget} finished"),
        )
    };
    for type_ in [CONDITION_RUNNING, CONDITION_SUCCEEDED, CONDITION_FAILED] {
        let on = type_ == state;
        let (r, m) = if on {
            (reason, message.as_str())
        } else {
            (
                if type_ == CONDITION_RUNNING {
                    "NotRunning"
                } else {
                    "NotReached"
                },
                "",
            )
        };
        set_condition(&mut next.conditions, type_, on, r, m, generation, now);
    }
    next.conditions.sort_by_key(|c| {
        [CONDITION_RUNNING, CONDITION_SUCCEEDED, CONDITION_FAILED]
            .iter()
            .position(|t| *t == c.type_)
    });
    // Set once: the status is written as a merge patch, which cannot remove a field, so a time
    // that came and went would be written again on every pass.
    if state != CONDITION_RUNNING && next.completion_time.is_none() {
        next.completion_time = Some(now.clone());
    }
    next.state = Some(state.into());
    Plan {
        status: next,
        create,
        stop,
    }
}

/// Trial `trial`'s TrainJob: the template with the trial's values, its own output directory
/// (`<output.uri>/<trial name>`: trials running side by side must not write the same version
/// directory or checkpoint), labelled with the job and the index and owned by the job.
pub fn train_job(oj: &OptimizationJob, trial: &NewTrial) -> TrainJob {
    let mut spec = oj.spec.train_job_template.clone();
    for (p, &v) in oj.spec.parameters.iter().zip(&trial.values) {
        match p.name {
            ParameterName::LearningRate => spec.learning_rate = Some(v),
            ParameterName::BatchSize => spec.batch_size = Some(v.round() as u32),
            ParameterName::Epochs => spec.epochs = Some(v.round() as u32),
        }
    }
    spec.output.uri = format!("{}/{}", spec.output.uri.trim_end_matches('/'), trial.name);
    let parameters = serde_json::to_string(&by_name(&oj.spec, &trial.values))
        .expect("a map of numbers serialises");
    TrainJob {
        metadata: ObjectMeta {
            name: Some(trial.name.clone()),
            namespace: oj.namespace(),
            labels: Some(
                [
                    (LABEL_JOB.to_owned(), oj.name_any()),
                    (LABEL_TRIAL.to_owned(), trial.index.to_string()),
                ]
                .into(),
            ),
            annotations: Some([(ANNOTATION_PARAMETERS.to_owned(), parameters)].into()),
            owner_references: oj.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::fixtures;
    use k8s_openapi::jiff::Timestamp;

    fn now() -> Time {
        Time(Timestamp::now())
    }

    fn spec(algorithm: AlgorithmName, num: u32, parallel: u32) -> OptimizationJobSpec {
        let mut spec = fixtures::spec(
            algorithm,
            vec![fixtures::log_uniform_lr(), fixtures::batch_sizes()],
        );
        spec.num_trials = num;
        spec.parallel_trials = parallel;
        spec
    }

    fn observed(index: u32, state: TrialState, value: Option<f64>) -> Observed {
        Observed {
            index,
            name: trial_name("tune", index),
            parameters: [
                ("learningRate".to_owned(), 0.01),
                ("batchSize".to_owned(), 32.0),
            ]
            .into(),
            state,
            value,
            epochs: Vec::new(),
            message: None,
            model_uri: None,
        }
    }

    #[test]
    fn the_first_pass_starts_parallel_trials_only() {
        let s = spec(AlgorithmName::Random, 5, 2);
        let p = plan("tune", &s, None, &[], None, &now());
        assert_eq!(
            p.create.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["tune-trial-0", "tune-trial-1"]
        );
        assert_eq!(p.status.state.as_deref(), Some("Running"));
        assert_eq!(p.status.progress.as_deref(), Some("0/5"));
        assert_eq!(p.status.active_trials, 2);
    }

    #[test]
    fn a_finished_trial_makes_room_for_the_next_and_the_best_is_the_result() {
        let s = spec(AlgorithmName::Random, 3, 2);
        let first = plan("tune", &s, None, &[], None, &now());
        let obs = [
            observed(0, TrialState::Succeeded, Some(0.8)),
            observed(1, TrialState::Running, None),
        ];
        let second = plan("tune", &s, Some(&first.status), &obs, None, &now());
        assert_eq!(second.create.len(), 1);
        assert_eq!(second.create[0].index, 2);
        assert_eq!(
            second.status.result.as_ref().unwrap().trial_name,
            "tune-trial-0"
        );
        let obs = [
            observed(0, TrialState::Succeeded, Some(0.8)),
            observed(1, TrialState::Succeeded, Some(0.85)),
            observed(2, TrialState::Failed, None),
        ];
        let third = plan("tune", &s, Some(&second.status), &obs, None, &now());
        assert!(third.create.is_empty());
        assert_eq!(third.status.state.as_deref(), Some("Succeeded"));
        assert_eq!(third.status.result.as_ref().unwrap().value, 0.85);
        assert_eq!(third.status.failed_trials, 1);
        assert_eq!(third.status.progress.as_deref(), Some("3/3"));
        assert!(third.status.completion_time.is_some());
    }

    #[test]
    fn more_failures_than_allowed_fail_the_job_and_start_nothing() {
        let mut s = spec(AlgorithmName::Random, 10, 2);
        s.max_failed_trials = Some(1);
        let first = plan("tune", &s, None, &[], None, &now());
        let obs = [
            observed(0, TrialState::Failed, None),
            observed(1, TrialState::Failed, None),
        ];
        let p = plan("tune", &s, Some(&first.status), &obs, None, &now());
        assert!(p.create.is_empty());
        assert_eq!(p.status.state.as_deref(), Some("Failed"));
        let failed = p
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "Failed")
            .unwrap();
        assert_eq!(failed.reason, "TooManyFailedTrials");
    }

    #[test]
    fn a_trial_whose_trainjob_vanished_counts_as_failed_but_a_finished_one_stands() {
        let s = spec(AlgorithmName::Random, 2, 2);
        let first = plan("tune", &s, None, &[], None, &now());
        let obs = [observed(0, TrialState::Succeeded, Some(0.7))];
        let p = plan("tune", &s, Some(&first.status), &obs, None, &now());
        assert_eq!(p.status.trials[1].state, TrialState::Failed);
        // Later both TrainJobs are gone: trial 0's success is kept.
        let q = plan("tune", &s, Some(&p.status), &[], None, &now());
        assert_eq!(q.status.trials[0].state, TrialState::Succeeded);
        assert_eq!(q.status.result.as_ref().unwrap().value, 0.7);
    }

    #[test]
    fn hyperband_stops_a_trial_worse_than_its_bracket_at_a_rung() {
        let mut s = spec(AlgorithmName::Hyperband, 3, 3);
        s.train_job_template.epochs = Some(3);
        s.search_algorithm.min_epochs = Some(1);
        s.search_algorithm.eta = Some(3);
        let first = plan("tune", &s, None, &[], None, &now());
        assert_eq!(first.create.len(), 3);
        // Trials 0 and 2 are in bracket 0 (rung at epoch 1); trial 1 in bracket 1 (no rung).
        let mut good = observed(0, TrialState::Running, None);
        good.epochs = vec![(1, 0.8)];
        let mut other = observed(1, TrialState::Running, None);
        let mut bad = observed(2, TrialState::Running, None);
        let second = plan(
            "tune",
            &s,
            Some(&first.status),
            &[good.clone(), other.clone(), bad.clone()],
            None,
            &now(),
        );
        assert!(second.stop.is_empty());
        assert_eq!(
            second.status.trials[0].rungs,
            [RungValue {
                epoch: 1,
                value: 0.8
            }]
        );
        bad.epochs = vec![(1, 0.3)];
        other.epochs = vec![(1, 0.1)];
        let third = plan(
            "tune",
            &s,
            Some(&second.status),
            &[good, other, bad],
            None,
            &now(),
        );
        assert_eq!(third.stop.len(), 1, "{:?}", third.stop);
        assert_eq!(third.stop[0].name, "tune-trial-2");
        assert_eq!(third.status.trials[2].state, TrialState::EarlyStopped);
        assert_eq!(third.status.trials[1].state, TrialState::Running);
        assert_eq!(third.status.early_stopped_trials, 1);
    }

    #[test]
    fn the_trainjob_carries_the_values_its_own_output_and_the_labels() {
        let s = spec(AlgorithmName::Grid, 4, 1);
        let oj = OptimizationJob {
            metadata: ObjectMeta {
                name: Some("tune".into()),
                namespace: Some("team-a".into()),
                uid: Some("u1".into()),
                ..ObjectMeta::default()
            },
            spec: s,
            status: None,
        };
        let tj = train_job(
            &oj,
            &NewTrial {
                index: 3,
                name: "tune-trial-3".into(),
                values: vec![0.001, 64.0],
            },
        );
        assert_eq!(tj.spec.learning_rate, Some(0.001));
        assert_eq!(tj.spec.batch_size, Some(64));
        assert_eq!(tj.spec.output.uri, "pvc://models/tune/tune-trial-3");
        assert_eq!(tj.labels()[LABEL_TRIAL], "3");
        assert_eq!(tj.labels()[LABEL_JOB], "tune");
        let owner = &tj.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("OptimizationJob", Some(true))
        );
        let back = observe(&tj, crate::optimization::Metric::Accuracy).unwrap();
        assert_eq!(back.parameters["batchSize"], 64.0);
        assert_eq!(back.state, TrialState::Created);
    }
}
