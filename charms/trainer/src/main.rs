//! `wharf-trainer`: command-line entry point; parses flags and runs the training or the operator.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use wharf_model::Architecture;
use wharf_model::location::Location;
use wharf_trainer::operator::OperatorArgs;
use wharf_trainer::train::{Defaults, LrSchedule};
use wharf_trainer::{TrainConfig, data, output, train};

#[derive(Parser)]
#[command(
    name = "wharf-trainer",
    version,
    about = "Train Fashion-MNIST models and write wharf model artifacts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model and write it to OUT/<version>/.
    Train(TrainArgs),
    /// Predict the first test images with the latest model under MODEL_DIR; print the result as
    /// JSON (and write it to --out).
    Predict(PredictArgs),
    /// Print a CustomResourceDefinition as YAML: the TrainJob's, or the OptimizationJob's.
    Crd {
        #[arg(long, value_enum, default_value = "trainjob")]
        kind: CrdKind,
    },
    /// Run the TrainJob operator: TrainJobs become Jobs running `wharf-trainer train`.
    Operator(OperatorArgs),
}

/// The custom resources whose CRDs this binary defines.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CrdKind {
    Trainjob,
    Optimizationjob,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Directory or s3://bucket/prefix holding the four Fashion-MNIST IDX files (plain or .gz).
    /// S3 credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL and
    /// AWS_REGION.
    #[arg(long, default_value = data::DEFAULT_DATA_DIR)]
    data: String,
    /// Architecture: mlp or cnn.
    #[arg(long, default_value = "mlp")]
    model: Architecture,
    /// Passes over the training set [default: 10].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: Option<u32>,
    /// Examples per optimiser step [default: mlp 32, cnn 64].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: Option<u64>,
    /// Adam learning rate (the initial one with --lr-schedule cosine) [default: mlp 0.001,
    /// cnn 0.002].
    #[arg(long)]
    lr: Option<f64>,
    /// constant, or cosine (decay to 0 by the last step) [default: mlp constant, cnn cosine].
    #[arg(long)]
    lr_schedule: Option<LrSchedule>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory or s3://bucket/prefix: the artifact goes to OUT/<next version>/,
    /// checkpoints to OUT/checkpoint/.
    #[arg(long)]
    out: String,
    /// Continue from OUT/checkpoint/.
    #[arg(long)]
    resume: bool,
    /// Worker threads for candle's kernels. Default 1: at these layer sizes, thread hand-offs
    /// cost more than they save (measured: MLP epoch 1.2 s on 1 thread vs 2.8 s on 2; CNN
    /// 4200 vs 1240 samples/s with the default batch of 64). Overridden by RAYON_NUM_THREADS
    /// when that is set.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    test_limit: Option<usize>,
}

#[derive(clap::Args)]
struct PredictArgs {
    /// Directory or s3://bucket/prefix that `train --out` wrote to; its highest numbered version
    /// is used.
    #[arg(long)]
    model_dir: String,
    /// Directory or s3://bucket/prefix holding the Fashion-MNIST IDX files.
    #[arg(long, default_value = data::DEFAULT_DATA_DIR)]
    data: String,
    /// How many test images, from the first.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10000))]
    count: u32,
    /// Also write the result to this file (its directory is created): a pipeline step's output.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

fn run_predict(args: PredictArgs) -> Result<()> {
    let dir = Location::parse(&args.model_dir).context("--model-dir")?;
    let data_location = Location::parse(&args.data).context("--data")?;
    let dataset = data::Dataset::load_from(&data_location)?;
    let report = wharf_trainer::predict::predict(&dir, &dataset.test, args.count as usize)?;
    let json = serde_json::to_string(&report).expect("report serialises");
    println!("{json}");
    if let Some(path) = &args.out {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn run_train(args: TrainArgs) -> Result<()> {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: called before any other thread exists; candle reads this variable to size
        // its matrix-product and rayon thread pools.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", args.threads.max(1).to_string()) };
    }
    let defaults = Defaults::for_architecture(args.model);
    let lr = args.lr.unwrap_or(defaults.learning_rate);
    if lr <= 0.0 || !lr.is_finite() {
        anyhow::bail!("--lr must be a positive number, got {lr}");
    }
    let data_location = Location::parse(&args.data).context("--data")?;
    let out = Location::parse(&args.out).context("--out")?;
    // Before an hour of training, not after: the output store must answer.
    output::block_on(out.check_reachable()).context("--out")?;
    let mut dataset = data::Dataset::load_from(&data_location)?;
    if let Some(n) = args.train_limit {
        dataset.train.truncate(n);
    }
    if let Some(n) = args.test_limit {
        dataset.test.truncate(n);
    }
    let cfg = TrainConfig {
        architecture: args.model,
        epochs: args.epochs.unwrap_or(defaults.epochs),
        batch_size: args.batch_size.map_or(defaults.batch_size, |b| b as usize),
        learning_rate: lr,
        lr_schedule: args.lr_schedule.unwrap_or(defaults.lr_schedule),
        seed: args.seed,
        out: out.clone(),
        resume: args.resume,
    };
    let artifact = train(&cfg, &dataset, |report| {
        println!(
            "{}",
            serde_json::to_string(report).expect("report serialises")
        );
    })?;
    let version = output::write_artifact(&artifact, &out)?;
    let summary = serde_json::json!({
        "model_uri": version.to_string(),
        "metrics": artifact.meta.metrics,
    });
    println!("{summary}");
    if let Some(path) = output::termination_log() {
        std::fs::write(&path, summary.to_string())
            .with_context(|| format!("writing the termination message to {}", path.display()))?;
    }
    Ok(())
}

fn run_operator(args: OperatorArgs) -> Result<()> {
    wharf_leader::process::init_logging(false);
    tokio::runtime::Runtime::new()
        .context("starting the async runtime")?
        .block_on(wharf_trainer::operator::run(args))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => run_train(args),
        Command::Predict(args) => run_predict(args),
        Command::Crd {
            kind: CrdKind::Trainjob,
        } => wharf_trainer::crd::crd_yaml()
            .map(|yaml| print!("{yaml}"))
            .context("rendering the TrainJob CRD"),
        Command::Crd {
            kind: CrdKind::Optimizationjob,
        } => wharf_trainer::optimization::crd_yaml()
            .map(|yaml| print!("{yaml}"))
            .context("rendering the OptimizationJob CRD"),
        Command::Operator(args) => run_operator(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wharf-trainer: error: {e:#}");
            if let Some(path) = output::termination_log() {
                let _ = std::fs::write(path, format!("error: {e:#}"));
            }
            ExitCode::FAILURE
        }
    }
}
