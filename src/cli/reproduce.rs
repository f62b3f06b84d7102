//! Commands that run recipes: `reproduce`, `sweep`, `summarize`, `bench`.

use std::path::PathBuf;

use clap::Args;

use super::args::{DataArgs, OnnxArgs, ResumeArgs, TrainArgs, data_dir, library_value};
use distill::compute::{compute_device, init_threads};
use distill::distill::{DistillParams, check_temperature};
use distill::error::{Error, Result};
use distill::eval::BiasAdjust;
use distill::experiment::grid::Pick;
use distill::experiment::{
    ExperimentKind, FitToData, Preset, ReproduceOptions, ReproduceParams, bench, reproduce,
    summary, sweep,
};
use distill::model::ModelSpec;

/// `distill reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceCmd {
    /// Which experiment: mnist (teacher, student alone, distilled student), omit-3 (no 3 in the
    /// transfer set, then bias adjustment), only-7-8, small-data (3% of the training set),
    /// ensemble (5 teachers, their ensemble, one model distilled from it) or losses (a CNN
    /// teacher; an MLP and a small CNN student, each alone and with kd, dkd, dist, and kd and
    /// dkd with logit standardization; summarize 3 seeds for the table).
    #[arg(long, value_enum, default_value_t = ExperimentKind::Mnist)]
    pub experiment: ExperimentKind,
    /// Use this trained teacher (model or ensemble directory) instead of training one
    /// (not for --experiment ensemble).
    #[arg(long, value_name = "DIR")]
    pub teacher: Option<PathBuf>,
    /// Bias adjustment for classes missing from the transfer set: auto, none or a number
    /// (default: auto for omit-3 and only-7-8).
    #[arg(
        long,
        value_name = "auto|none|VALUE",
        allow_negative_numbers = true,
        value_parser = library_value::<BiasAdjust>
    )]
    pub bias_adjust: Option<BiasAdjust>,
    /// smoke: 4,000 training images, a few epochs (for tests); quick: full MNIST, short
    /// schedules; paper: all 60,000 training images, long schedules (teacher 96 epochs,
    /// students 80 on Adam). The README gives their times.
    #[arg(long, value_enum, default_value_t = Preset::Quick)]
    pub preset: Preset,
    /// Output directory (report.md, report.json, config.toml, teacher/, student/, distilled/).
    #[arg(long, default_value = "runs/mnist")]
    pub out: PathBuf,
    /// Master seed; teacher and students derive their seeds from it.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The dataset (IDX directory, .npz file or image-folder root; see `train --help`).
    /// --data-dir is an alias. Default: data/mnist of this repository.
    #[arg(long = "data", visible_alias = "data-dir", value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    /// Override the preset's validation hold-out (examples held out of the training set;
    /// preset: 5,000, or 0 for `paper`, which fits every image; on smaller data a tenth of the
    /// training set).
    #[arg(long, value_name = "N")]
    pub validation_size: Option<usize>,
    /// Run the preset exactly as set for MNIST. By default, on other data `reproduce` stretches
    /// a smaller training set's epochs to MNIST's number of steps (the teacher warming up),
    /// scales random shifts to the image size and the teacher's rate to the input energy, and
    /// holds out a tenth for validation; the report's notes list each change.
    #[arg(long)]
    pub preset_as_is: bool,
    /// Use only the first N training examples after the hold-out (preset: all; smoke: 4,000).
    #[arg(long, value_name = "N")]
    pub train_size: Option<usize>,
    /// Evaluate on only the first N test examples (preset: all).
    #[arg(long, value_name = "N")]
    pub test_size: Option<usize>,
    /// The temperature, or auto: a student distilled at each T of 1, 2, 4, 8 and 20 (the
    /// teacher run once for all of them, unless it runs live on shifted or blended images), the
    /// one with the fewest validation errors kept (ties go to the lower T; the others stay in
    /// OUT/grid). Default: the preset's 20 on MNIST, where it was set, in `smoke` and with
    /// --preset-as-is; auto on other data with a validation split. --budget does not bound it.
    #[arg(long, value_name = "T|auto", allow_negative_numbers = true,
          value_parser = library_value::<Pick>)]
    pub temperature: Option<Pick>,
    /// The soft-target weight, or auto: after T, a student at each alpha of 0.5, 0.9 and 1
    /// at the kept T, chosen on validation errors like T (preset: 0.9).
    #[arg(long, value_name = "ALPHA|auto", allow_negative_numbers = true,
          value_parser = library_value::<Pick>)]
    pub alpha: Option<Pick>,
    /// Keep every model's epoch with the fewest validation errors and stop it after N epochs
    /// without fewer: the teacher (and each rung of the ladder), the student alone and the
    /// distilled student alike. The presets use none: every epoch trains and the last is kept.
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
    /// Shift the distilled student's transfer images by up to N pixels, with the teacher's soft
    /// targets computed live on each shifted batch. The student alone stays unshifted; a control
    /// student trained alone on the same shifts (`student_jitter`) is added to the report.
    #[arg(long, value_name = "N")]
    pub distilled_jitter: Option<usize>,
    /// Blend the distilled student's transfer images by mixup (see `distill --help`), with
    /// the teacher's soft targets computed live on each blend. A control student trained alone
    /// on the same blends (`student_mixup`) is added to the report.
    #[arg(long, value_name = "ALPHA", allow_negative_numbers = true)]
    pub distilled_mixup: Option<f64>,
    /// Train the distilled student (and its control) for N epochs instead of the preset's.
    #[arg(long, value_name = "N")]
    pub distilled_epochs: Option<usize>,
    /// Cache the teacher's soft targets for K fixed views (the unshifted image and K-1 seeded
    /// shifts) of every transfer image, in float16, for a jittered distilled student, instead
    /// of running the teacher live on every batch.
    #[arg(long, value_name = "K")]
    pub augment_cache: Option<usize>,
    /// Retrain the teacher even if OUT/teacher was trained with the same config and data.
    #[arg(long)]
    pub retrain_teacher: bool,
    /// Minutes the run may take before the teacher ladder stops climbing. When the recipe's
    /// teacher does not beat the student alone on validation (clearly, where the count of
    /// errors allows), stronger teachers are
    /// tried in turn (half the dropout and twice the epochs, then for images a CNN); a rung in
    /// training stops after the epoch in which the budget runs out, and no further rung starts.
    /// Without it the ladder climbs to the first clear winner or the top.
    #[arg(long, value_name = "MINUTES", allow_negative_numbers = true)]
    pub budget: Option<f64>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub resume: ResumeArgs,
}

/// `distill sweep`.
#[derive(Debug, Args)]
pub struct SweepCmd {
    /// Trained teacher (e.g. runs/mnist/teacher), or an ONNX file (see `distill --help`);
    /// its soft targets are cached per T under OUT/cache.
    #[arg(long, value_name = "MODEL")]
    pub teacher: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub onnx: OnnxArgs,
    /// Temperatures, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,4,8,20",
        allow_negative_numbers = true
    )]
    pub temperatures: Vec<f32>,
    /// Soft-target weights, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.9",
        allow_negative_numbers = true
    )]
    pub alphas: Vec<f32>,
    /// Student architecture; repeat for several (default mlp:800,800).
    #[arg(long = "student", value_name = "SPEC", value_parser = library_value::<ModelSpec>)]
    pub students: Vec<ModelSpec>,
    /// Output directory (sweep.json, sweep.md, sweep.png/.svg and one model per setting).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub train: TrainArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
}

/// `distill bench`.
#[derive(Debug, Args)]
pub struct BenchCmd {
    /// Write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Worker threads of the CPU pool (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed repeats per figure.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Untimed warm-up repeats per figure.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Examples per epoch (55,000 is one MNIST training epoch).
    #[arg(long, default_value_t = 55_000)]
    pub epoch_examples: usize,
    /// Also measure peak memory of `reproduce --preset quick` (adds about 3 to 5 minutes).
    #[arg(long)]
    pub memory: bool,
    /// Time only these figures, comma-separated (e.g. teacher_step_ms,kd_epoch_cached_s);
    /// an unknown name is refused with the list of known ones.
    #[arg(long, value_delimiter = ',', value_name = "NAME[,NAME]")]
    pub only: Vec<String>,
    /// Also time reading this Keras-layout .npz (figure npz_read_s).
    #[arg(long, value_name = "FILE")]
    pub npz: Option<PathBuf>,
    /// Also time this ONNX teacher over the whole training set (figure onnx_teacher_s; see
    /// --input-norm and --teacher-outputs). With --npz, peak_rss_mib is the process's peak
    /// memory after both.
    #[arg(long, value_name = "FILE")]
    pub onnx_teacher: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub onnx: OnnxArgs,
    /// The dataset (IDX directory, .npz file or image-folder root; see `train --help`).
    /// --data-dir is an alias. Default: data/mnist of this repository.
    #[arg(long = "data", visible_alias = "data-dir", value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
}

/// `distill summarize`.
#[derive(Debug, Args)]
pub struct SummarizeCmd {
    /// Run directories written by `distill reproduce` (each with a report.json), one per seed.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Also write summary.md, summary.json, summary.html, summary.png and summary.svg here
    /// (and, for the losses experiment, losses.png and losses.svg: test errors by loss).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the summary as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// The recipe's preset with what the options override, unchecked (`check` comes before
/// training).
fn overridden(c: &ReproduceCmd) -> Result<ReproduceParams> {
    let mut config = ReproduceParams::recipe(
        c.experiment,
        c.preset,
        c.seed,
        data_dir(c.data_dir.as_deref()),
    );
    if let Some(b) = c.bias_adjust {
        config.bias_adjust = b;
    }
    if c.teacher.is_some() && config.members > 1 {
        return Err(Error::config(
            "--teacher cannot be combined with --experiment ensemble, which trains its own members",
        ));
    }
    match c.temperature {
        Some(Pick::Value(t)) => {
            check_temperature(t)?;
            config.distill.temperature = t;
            config.auto_temperature = Some(false);
        }
        Some(Pick::Auto) => config.auto_temperature = Some(true),
        None => {}
    }
    match c.alpha {
        Some(Pick::Value(a)) => config.distill.alpha = a,
        Some(Pick::Auto) => config.auto_alpha = true,
        None => {}
    }
    if let Some(p) = c.patience {
        config.teacher.train.patience = Some(p);
        config.student.train.patience = Some(p);
    }
    if c.distilled_jitter.is_some() {
        config.distilled_jitter = c.distilled_jitter;
    }
    if c.distilled_mixup.is_some() {
        config.distilled_mixup = c.distilled_mixup;
    }
    if c.distilled_epochs.is_some() {
        config.distilled_epochs = c.distilled_epochs;
    }
    if let Some(k) = c.augment_cache {
        config.augment_cache = k;
    }
    if let Some(v) = c.validation_size {
        config.validation_size = v;
    }
    if c.train_size.is_some() {
        config.train_size = c.train_size;
    }
    if c.test_size.is_some() {
        config.test_size = c.test_size;
    }
    Ok(config)
}

pub(super) fn cmd_reproduce(c: ReproduceCmd) -> Result<()> {
    let config = overridden(&c)?;
    if let Some(b) = c.budget.filter(|b| !(b.is_finite() && *b > 0.0)) {
        return Err(Error::config(format!(
            "--budget must be a positive number of minutes, got {b}"
        )));
    }
    let report = reproduce(&ReproduceOptions {
        config,
        out: c.out.clone(),
        retrain_teacher: c.retrain_teacher,
        teacher: c.teacher.clone(),
        progress: true,
        checkpoints: c.resume.checkpoints(),
        fit: FitToData {
            schedule: !c.preset_as_is,
            validation: c.validation_size.is_none() && !c.preset_as_is,
        },
        // The smoke preset checks that every step runs; its three-epoch teacher is not meant
        // to win, and climbing would only lengthen the check.
        ladder: c.preset != Preset::Smoke,
        budget_minutes: c.budget,
    })?;
    println!("{}\n", report.headline_text());
    println!("{}", report.table());
    for n in &report.notes {
        println!("note: {n}");
    }
    println!("report: {}", c.out.join("report.md").display());
    Ok(())
}

pub(super) fn cmd_bench(c: BenchCmd) -> Result<()> {
    init_threads(c.threads);
    let (device, backend) = compute_device();
    let ds = distill::data::load(&data_dir(c.data_dir.as_deref()))?;
    let opts = bench::BenchOptions {
        reps: c.reps,
        warmup: c.warmup,
        epoch_examples: c.epoch_examples,
        only: c.only.clone(),
        interop: distill::experiment::InteropOptions {
            npz: c.npz.clone(),
            onnx_teacher: c.onnx_teacher.clone(),
            onnx: c.onnx.options()?,
        },
    };
    let mut report = bench::run(&opts, &ds, &device, backend, |what| {
        eprintln!("bench: {what}")
    })?;
    let wanted = |name: &str| c.only.is_empty() || c.only.iter().any(|o| o == name);
    if c.memory && wanted("peak_rss_quick_mib") {
        eprintln!("bench: peak memory of reproduce --preset quick (about 3 to 5 minutes)");
        let mib = peak_rss_of_quick()?;
        report
            .figures
            .insert("peak_rss_quick_mib".into(), bench::figure(vec![mib]));
    }
    println!(
        "{:<28} {:>12} {:>12} {:>12}",
        "figure", "median", "min", "max"
    );
    for (k, f) in &report.figures {
        println!("{k:<28} {:>12.3} {:>12.3} {:>12.3}", f.median, f.min, f.max);
    }
    if let Some(p) = &c.json {
        bench::write_json(&report, p)?;
    }
    Ok(())
}

/// Runs `distill reproduce --preset quick` in a child process and returns its peak resident
/// memory in MiB, read from the kernel's high-water mark while it runs.
fn peak_rss_of_quick() -> Result<f64> {
    let exe =
        std::env::current_exe().map_err(|e| Error::io("locating", "the distill binary", e))?;
    let out = std::env::temp_dir().join(format!("distill-bench-quick-{}", std::process::id()));
    let mut child = std::process::Command::new(exe)
        .args(["reproduce", "--preset", "quick", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Error::io("starting", "distill reproduce", e))?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0f64;
    loop {
        let hwm = std::fs::read_to_string(&status_path).ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        });
        if let Some(v) = hwm {
            peak_kib = peak_kib.max(v);
        }
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(status)) => {
                return Err(Error::config(format!(
                    "reproduce --preset quick failed ({status})"
                )));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(200)),
            Err(e) => return Err(Error::io("waiting for", "distill reproduce", e)),
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(peak_kib / 1024.0)
}

pub(super) fn cmd_sweep(c: SweepCmd) -> Result<()> {
    let students = if c.students.is_empty() {
        vec!["mlp:800,800".to_string()]
    } else {
        c.students.iter().map(ModelSpec::to_string).collect()
    };
    for a in &c.alphas {
        DistillParams {
            temperature: 1.0,
            alpha: *a,
        }
        .check()?;
    }
    let report = sweep::sweep(&sweep::SweepOptions {
        teacher: c.teacher.clone(),
        onnx: c.onnx.options()?,
        students,
        temperatures: c.temperatures.clone(),
        alphas: c.alphas.clone(),
        train: c.train.settings(),
        data_dir: data_dir(c.data.data_dir.as_deref()),
        validation_size: c.data.validation_size,
        train_size: c.data.train_size,
        test_size: c.data.test_size,
        out: c.out.clone(),
        progress: true,
    })?;
    println!("| student | alpha | T | test errors | validation errors |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for p in &report.points {
        println!(
            "| {} | {} | {} | {} / {} | {} |",
            p.student, p.alpha, p.temperature, p.test_errors, p.test_examples, p.validation_errors
        );
    }
    for f in &report.findings {
        println!("{f}");
    }
    println!("report: {}", c.out.join("sweep.md").display());
    Ok(())
}

pub(super) fn cmd_summarize(c: SummarizeCmd) -> Result<()> {
    let summary = summary::summarize(&c.runs)?;
    if c.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("a summary serializes")
        );
    } else {
        print!("{}", summary.markdown());
    }
    if let Some(out) = &c.out {
        summary.write(out)?;
        let by_loss = match summary.by_loss() {
            Some(_) => ", losses.png and losses.svg (test errors by loss)",
            None => "",
        };
        eprintln!(
            "wrote summary.md, summary.json, summary.html, summary.png, summary.svg{by_loss} to {}",
            out.display()
        );
    }
    Ok(())
}
