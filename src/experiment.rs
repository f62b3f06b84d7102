//! Experiments: the paper's MNIST experiment as a recipe with presets, and the building blocks
//! (`train one model`, `distill one student`) that the command line shares with it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, DatasetInfo, Split};
use crate::distill::{
    CacheKey, CacheOutcome, DistillConfig, DistillSettings, cached_soft_targets, log_soft_targets,
};
use crate::error::{Error, Result};
use crate::eval::{
    agreement, class_similarity, evaluate, latency_us_batch1, logits, ranking_without,
    similar_pairs, soften,
};
use crate::fsutil::{sha256_file, write_atomic};
use crate::model::{MlpConfig, ModelSpec, Network, weights_path};
use crate::plot;
use crate::report::DarkKnowledge;
use crate::report::{Environment, ModelReport, Report};
use crate::train::EpochMetrics;
use crate::train::{
    Objective, OptimizerKind, RunOutput, Schedule, TrainConfig, TrainData, TrainSettings, Trained,
    train,
};

/// The compute device and a name for it: CUDA when built with the `cuda` feature, else the
/// pure-Rust flex CPU backend.
pub fn compute_device() -> (Device, &'static str) {
    init_cpu_threads();
    #[cfg(feature = "cuda")]
    {
        (Device::cuda(0), "cuda")
    }
    #[cfg(not(feature = "cuda"))]
    {
        (Device::flex(), "flex (pure-Rust CPU)")
    }
}

/// Sets flush-to-zero and denormals-are-zero on this thread. Late in training, gradients and
/// momentum buffers drift into the subnormal range, where x86 arithmetic is many times slower
/// (a distillation epoch was measured going from 5.6 s to 17 s); the values lost are below
/// 1e-38 and do not matter for learning.
fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr/ldmxcsr only read and write the SSE control register of this thread
        // through a valid pointer to a local u32.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            csr |= 0x8040; // FTZ (bit 15) and DAZ (bit 6)
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack));
        }
    }
}

/// Builds the global thread pool (used by the CPU backend's kernels) with denormal flushing on
/// every worker, and flushes on the calling thread. Safe to call more than once.
fn init_cpu_threads() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rayon::ThreadPoolBuilder::new()
            .start_handler(|_| flush_denormals())
            .build_global();
    });
    flush_denormals();
}

/// Architecture and training of one model in a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleConfig {
    /// Architecture (`mlp:...`).
    pub spec: String,
    /// Input dropout while training.
    pub input_dropout: f64,
    /// Hidden dropout while training.
    pub hidden_dropout: f64,
    /// Optimization settings.
    pub train: TrainSettings,
}

/// Named sizes of the main experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Tiny subset and few epochs: a check that everything runs (under 2 minutes).
    Smoke,
    /// Full MNIST, short schedules: the default (under 15 minutes on 2 cores).
    Quick,
    /// The paper's setup: long schedules, jitter of 2 pixels (hours on 2 cores).
    Paper,
}

impl Preset {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Smoke => "smoke",
            Preset::Quick => "quick",
            Preset::Paper => "paper",
        }
    }
}

/// Everything that defines a run of the main experiment; written to `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReproduceConfig {
    /// Preset the values came from.
    pub preset: Preset,
    /// Master seed.
    pub seed: u64,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Training examples used (after holding out validation); `None` = all.
    pub train_size: Option<usize>,
    /// Examples held out of the training set for validation.
    pub validation_size: usize,
    /// Test examples evaluated; `None` = all.
    pub test_size: Option<usize>,
    /// Teacher: deep and regularized.
    pub teacher: RoleConfig,
    /// Student: trained alone on hard labels, and again distilled.
    pub student: RoleConfig,
    /// Temperature and alpha of the distilled student.
    pub distill: DistillSettings,
}

fn sgd(epochs: usize, lr: f64, jitter: usize, seed: u64) -> TrainSettings {
    TrainSettings {
        epochs,
        batch_size: 128,
        learning_rate: lr,
        optimizer: OptimizerKind::Sgd,
        schedule: Schedule::Cosine,
        jitter,
        seed,
    }
}

impl ReproduceConfig {
    /// The preset's settings for `seed` and `data_dir`.
    pub fn preset(preset: Preset, seed: u64, data_dir: PathBuf) -> ReproduceConfig {
        let (sizes, t_ep, s_ep, jitter) = match preset {
            Preset::Smoke => ((Some(4000), 1000, Some(2000)), 3, 3, 1),
            Preset::Quick => ((None, 5000, None), 16, 10, 1),
            Preset::Paper => ((None, 5000, None), 60, 40, 2),
        };
        let teacher_seed = seed.wrapping_mul(1000).wrapping_add(17);
        let student_seed = seed.wrapping_mul(1000).wrapping_add(29);
        ReproduceConfig {
            preset,
            seed,
            data_dir,
            train_size: sizes.0,
            validation_size: sizes.1,
            test_size: sizes.2,
            teacher: RoleConfig {
                spec: "mlp:1200,1200".into(),
                input_dropout: if preset == Preset::Paper { 0.2 } else { 0.1 },
                hidden_dropout: if preset == Preset::Paper { 0.5 } else { 0.4 },
                train: sgd(t_ep, 0.1, jitter, teacher_seed),
            },
            student: RoleConfig {
                spec: "mlp:800,800".into(),
                input_dropout: 0.0,
                hidden_dropout: 0.0,
                train: sgd(s_ep, 0.05, 0, student_seed),
            },
            distill: DistillSettings {
                temperature: 20.0,
                alpha: 0.9,
            },
        }
    }

    /// Checks every part; nothing is trained with an unchecked config.
    pub fn check(&self) -> Result<CheckedRoles> {
        Ok(CheckedRoles {
            teacher: self.teacher.check()?,
            student: self.student.check()?,
            distill: self.distill.check()?,
        })
    }
}

/// A role whose spec parsed and whose training settings passed their checks.
#[derive(Debug, Clone)]
pub struct CheckedRole {
    /// Parsed architecture.
    pub spec: ModelSpec,
    /// Input dropout.
    pub input_dropout: f64,
    /// Hidden dropout.
    pub hidden_dropout: f64,
    /// Checked training settings.
    pub train: TrainConfig,
}

impl RoleConfig {
    /// Parses the spec and checks dropout and training settings.
    pub fn check(&self) -> Result<CheckedRole> {
        let spec: ModelSpec = self.spec.parse()?;
        // Dropout ranges are checked by MlpConfig::new with a dummy shape.
        MlpConfig::new(&spec, [1, 1], 2, self.input_dropout, self.hidden_dropout)?;
        Ok(CheckedRole {
            spec,
            input_dropout: self.input_dropout,
            hidden_dropout: self.hidden_dropout,
            train: self.train.clone().check()?,
        })
    }
}

/// The checked parts of a [`ReproduceConfig`].
#[derive(Debug, Clone)]
pub struct CheckedRoles {
    /// Teacher.
    pub teacher: CheckedRole,
    /// Student.
    pub student: CheckedRole,
    /// Distillation settings.
    pub distill: DistillConfig,
}

/// Training, validation and test splits as an experiment uses them.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Dataset (full, as loaded).
    pub dataset: Dataset,
    /// Examples trained on.
    pub train: Split,
    /// Held-out validation examples.
    pub validation: Split,
    /// Test examples.
    pub test: Split,
}

impl Splits {
    /// Loads `dir` and cuts it to the requested sizes. The validation split is drawn with a
    /// fixed seed so that every model of every run sees the same one.
    pub fn load(
        dir: &Path,
        validation: usize,
        train_size: Option<usize>,
        test_size: Option<usize>,
    ) -> Result<Splits> {
        let dataset = Dataset::load(dir)?;
        let (train, validation) = dataset.train_validation(validation, 0)?;
        let train = train_size.map_or(train.clone(), |n| train.head(n));
        let test = test_size.map_or(dataset.test.clone(), |n| dataset.test.head(n));
        Ok(Splits {
            dataset,
            train,
            validation,
            test,
        })
    }

    /// Summary for reports.
    pub fn info(&self) -> DatasetInfo {
        DatasetInfo {
            name: self.dataset.name.clone(),
            train_size: self.train.len(),
            validation_size: self.validation.len(),
            test_size: self.test.len(),
            image: [self.dataset.rows, self.dataset.cols],
            classes: self.dataset.classes,
        }
    }

    fn data(&self) -> TrainData<'_> {
        TrainData {
            train: &self.train,
            validation: &self.validation,
            image: [self.dataset.rows, self.dataset.cols],
        }
    }
}

/// Trains one model from scratch on hard labels or towards teacher soft targets.
pub fn train_role(
    role: &CheckedRole,
    splits: &Splits,
    objective: &Objective,
    device: &Device,
    dir: &Path,
    label: &str,
    progress: bool,
) -> Result<Trained> {
    let config = MlpConfig::new(
        &role.spec,
        [splits.dataset.rows, splits.dataset.cols],
        splits.dataset.classes,
        role.input_dropout,
        role.hidden_dropout,
    )?;
    device.seed(role.train.settings().seed);
    let network = Network {
        mlp: config.init(device),
        config,
    };
    let out = RunOutput {
        dir: dir.to_path_buf(),
        label: label.into(),
        progress,
    };
    let trained = train(network, splits.data(), objective, &role.train, device, &out)?;
    let toml = toml::to_string_pretty(&RoleRecord::from(role_config(role))).map_err(|e| {
        Error::Format {
            what: "config.toml".into(),
            reason: e.to_string(),
        }
    })?;
    write_atomic(&dir.join("config.toml"), toml.as_bytes())?;
    Ok(trained)
}

/// A role's config as recorded beside its model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct RoleRecord {
    model: RoleConfig,
}

impl From<RoleConfig> for RoleRecord {
    fn from(model: RoleConfig) -> Self {
        RoleRecord { model }
    }
}

fn role_config(role: &CheckedRole) -> RoleConfig {
    RoleConfig {
        spec: role.spec.to_string(),
        input_dropout: role.input_dropout,
        hidden_dropout: role.hidden_dropout,
        train: role.train.settings().clone(),
    }
}

/// Teacher log-probabilities at T for `transfer`, from the cache under `cache_dir` when a
/// matching entry exists. The key is the teacher checkpoint's SHA-256, the transfer set's
/// fingerprint and T.
pub fn teacher_soft_targets(
    teacher: &Network,
    teacher_dir: &Path,
    transfer: &Split,
    temperature: f32,
    cache_dir: &Path,
    device: &Device,
) -> Result<(Tensor<2>, CacheOutcome, PathBuf)> {
    if teacher.config.inputs != transfer.pixels {
        return Err(Error::Mismatch(format!(
            "the teacher expects {} inputs but the transfer images have {} pixels",
            teacher.config.inputs, transfer.pixels
        )));
    }
    let key = CacheKey::new(
        &sha256_file(&weights_path(teacher_dir))?,
        &transfer.fingerprint(),
        temperature,
    );
    cached_soft_targets(
        cache_dir,
        &key,
        transfer.len(),
        teacher.config.classes,
        device,
        || {
            let dev = transfer.to_device(device);
            Ok(log_soft_targets(
                teacher.mlp.logits_chunked(&dev.images, 2048),
                temperature,
            ))
        },
    )
}

/// Evaluates a trained model for the report.
pub fn model_report(
    net: &Network,
    dir: &Path,
    splits: &Splits,
    device: &Device,
    train_seconds: f64,
    validation_errors: Option<usize>,
) -> Result<ModelReport> {
    let e = evaluate(net, &splits.test, splits.dataset.classes, device)?;
    Ok(ModelReport {
        spec: net.config.spec().to_string(),
        test_errors: e.errors,
        test_examples: e.examples,
        class_errors: e.class_errors,
        class_examples: e.class_examples,
        params: net.config.params(),
        train_seconds,
        infer_us_per_example: latency_us_batch1(net, &splits.test, device, 200),
        test_nll: e.nll,
        validation_errors,
        confusion: e.confusion,
        dir: dir.display().to_string(),
    })
}

/// Options of `distill reproduce`.
#[derive(Debug, Clone)]
pub struct ReproduceOptions {
    /// The run's configuration (from a preset, possibly overridden).
    pub config: ReproduceConfig,
    /// Output directory.
    pub out: PathBuf,
    /// Retrain the teacher even if a matching one exists in `out`.
    pub retrain_teacher: bool,
    /// Draw progress bars.
    pub progress: bool,
}

/// Runs the paper's MNIST experiment: teacher, student alone, distilled student; evaluates
/// all three on the test set and writes `config.toml`, `report.json` and `report.md`.
pub fn reproduce(opts: &ReproduceOptions) -> Result<Report> {
    let start = Instant::now();
    let cfg = &opts.config;
    let roles = cfg.check()?;
    let splits = Splits::load(
        &cfg.data_dir,
        cfg.validation_size,
        cfg.train_size,
        cfg.test_size,
    )?;
    let (device, backend) = compute_device();
    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(|e| Error::io("creating directory", out, e))?;
    let config_toml = toml::to_string_pretty(cfg).map_err(|e| Error::Format {
        what: "config.toml".into(),
        reason: e.to_string(),
    })?;
    write_atomic(&out.join("config.toml"), config_toml.as_bytes())?;
    let mut notes = Vec::new();

    // Teacher: reused when the same config and data produced it before.
    let teacher_dir = out.join("teacher");
    let stamp = format!(
        "{}\ndata={}\n",
        toml::to_string(&role_config(&roles.teacher)).unwrap_or_default(),
        splits.train.fingerprint()
    );
    let stamp_path = teacher_dir.join("trained-with.txt");
    let reusable = !opts.retrain_teacher
        && std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp)
        && weights_path(&teacher_dir).exists();
    let (teacher, teacher_secs, teacher_val, teacher_history) = match reusable
        .then(|| Network::load(&teacher_dir, &device))
    {
        Some(Ok(net)) => {
            notes.push("teacher reused from an earlier run with the same config and data".into());
            (net, 0.0, None, None)
        }
        other => {
            if let Some(Err(e)) = other {
                notes.push(format!("earlier teacher not usable ({e}); retrained"));
            }
            let _ = std::fs::remove_file(&stamp_path);
            let t = train_role(
                &roles.teacher,
                &splits,
                &Objective::Hard,
                &device,
                &teacher_dir,
                "teacher",
                opts.progress,
            )?;
            write_atomic(&stamp_path, stamp.as_bytes())?;
            let val = t.history.last().map(|m| m.validation_errors);
            (t.network, t.seconds, val, Some(t.history))
        }
    };

    let student_dir = out.join("student");
    let student = train_role(
        &roles.student,
        &splits,
        &Objective::Hard,
        &device,
        &student_dir,
        "student",
        opts.progress,
    )?;

    let t0 = Instant::now();
    let (targets, outcome, cache_path) = teacher_soft_targets(
        &teacher,
        &teacher_dir,
        &splits.train,
        roles.distill.temperature(),
        &out.join("cache"),
        &device,
    )?;
    let soft_secs = t0.elapsed().as_secs_f64();
    notes.push(match outcome {
        CacheOutcome::Hit => format!(
            "teacher soft targets read from cache {}",
            cache_path.display()
        ),
        CacheOutcome::Miss => format!(
            "teacher soft targets computed in {soft_secs:.1} s and cached at {}",
            cache_path.display()
        ),
        CacheOutcome::Stale(why) => format!(
            "stale cache {} ignored ({why}); recomputed",
            cache_path.display()
        ),
    });
    let distilled_dir = out.join("distilled");
    let objective = Objective::Distill {
        config: roles.distill,
        teacher_log_probs: targets,
    };
    let distilled = train_role(
        &roles.student,
        &splits,
        &objective,
        &device,
        &distilled_dir,
        "distilled",
        opts.progress,
    )?;

    let teacher_history = teacher_history.unwrap_or_else(|| read_metrics(&teacher_dir));
    let charts = write_charts(
        out,
        &splits,
        &device,
        &[
            ("teacher", &teacher, &teacher_history),
            ("student", &student.network, &student.history),
            ("distilled", &distilled.network, &distilled.history),
        ],
        roles.distill.temperature() as f64,
    )?;

    let mut models = std::collections::BTreeMap::new();
    models.insert(
        "teacher".to_string(),
        model_report(
            &teacher,
            &teacher_dir,
            &splits,
            &device,
            teacher_secs,
            teacher_val,
        )?,
    );
    for (name, t, dir) in [
        ("student", &student, &student_dir),
        ("distilled", &distilled, &distilled_dir),
    ] {
        let val = t.history.last().map(|m| m.validation_errors);
        models.insert(
            name.to_string(),
            model_report(&t.network, dir, &splits, &device, t.seconds, val)?,
        );
    }
    let env = Environment::detect(backend);
    let report = Report {
        experiment: "mnist".into(),
        preset: cfg.preset.name().into(),
        seed: cfg.seed,
        temperature: roles.distill.temperature(),
        alpha: roles.distill.alpha(),
        backend: env.backend.clone(),
        git_commit: env.git_commit.clone(),
        environment: env,
        dataset: splits.info(),
        models,
        config: serde_json::to_value(cfg).unwrap_or_default(),
        total_seconds: start.elapsed().as_secs_f64(),
        notes,
        dark_knowledge: Some(charts),
    };
    report.write(out)?;
    Ok(report)
}

/// Reads a model directory's `metrics.jsonl` (empty if absent or unreadable).
pub fn read_metrics(dir: &Path) -> Vec<EpochMetrics> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .map(|s| {
            s.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A named trained model with its training history, as charts take them.
pub type ChartModel<'a> = (&'a str, &'a Network, &'a [EpochMetrics]);

/// Draws the report's charts (PNG and SVG) into `out` and returns what they show: learning
/// curves, the teacher's softened probabilities for the first test 7 (or first test image),
/// the teacher's class-similarity heatmap, each model's confusion matrix, and how closely each
/// other model follows the first (the teacher).
pub fn write_charts(
    out: &Path,
    splits: &Splits,
    device: &Device,
    models: &[ChartModel<'_>],
    temperature: f64,
) -> Result<DarkKnowledge> {
    let classes = splits.dataset.classes;
    let shape = [splits.dataset.rows, splits.dataset.cols];
    let histories: Vec<(&str, &[EpochMetrics])> = models.iter().map(|(n, _, h)| (*n, *h)).collect();
    let mut files = Vec::new();
    let mut both = |stem: &str, draw: &dyn Fn(&Path) -> Result<()>| -> Result<()> {
        for ext in ["png", "svg"] {
            let p = out.join(format!("{stem}.{ext}"));
            draw(&p)?;
            files.push(
                p.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
        Ok(())
    };
    both("learning_curves", &|p| plot::learning_curves(p, &histories))?;

    let (teacher_name, teacher, _) = models[0];
    let index = splits.test.labels.iter().position(|&l| l == 7).unwrap_or(0);
    let one = splits.test.subset(&[index]);
    let temperatures = [1.0, 5.0, temperature.max(1.0)];
    let probs = soften(&logits(teacher, &one, device)?, &temperatures);
    let label = one.labels[0] as usize;
    both("soften_7", &|p| {
        plot::soften_chart(
            p,
            &plot::SoftenChart {
                image: &one.images,
                shape,
                label,
                temperatures: &temperatures,
                probs: &probs,
                log_scale: true,
                title: format!(
                    "{teacher_name}: test image {index} (a {label}) at T = 1, 5, {}",
                    temperatures[2]
                ),
            },
        )
    })?;

    let teacher_logits = logits(teacher, &splits.test, device)?;
    let similarity = class_similarity(&teacher_logits, &splits.test.labels, classes, 4.0);
    both("similarity_teacher", &|p| {
        plot::heatmap(
            p,
            &similarity,
            &format!("{teacher_name}: mean soft targets at T = 4 per true class"),
            false,
        )
    })?;

    let mut agreements = std::collections::BTreeMap::new();
    for (name, net, _) in models {
        let l = if std::ptr::eq(*net, teacher) {
            teacher_logits.clone()
        } else {
            logits(net, &splits.test, device)?
        };
        let e = crate::eval::score(&l, &splits.test.labels, classes);
        let norm: Vec<Vec<f64>> = e
            .confusion
            .iter()
            .map(|r| {
                let n = r.iter().sum::<usize>().max(1) as f64;
                r.iter().map(|&v| v as f64 / n).collect()
            })
            .collect();
        both(&format!("confusion_{name}"), &|p| {
            plot::heatmap(
                p,
                &norm,
                &format!("{name}: confusion (row-normalized), {} errors", e.errors),
                true,
            )
        })?;
        if !std::ptr::eq(*net, teacher) {
            agreements.insert(
                name.to_string(),
                agreement(&teacher_logits, &l, classes, temperature),
            );
        }
    }
    Ok(DarkKnowledge {
        soften_index: index,
        soften_label: label,
        soften_temperatures: temperatures.to_vec(),
        soften_probs: probs.clone(),
        soften_ranking: probs.iter().map(|p| ranking_without(p, label)).collect(),
        similarity_temperature: 4.0,
        similarity,
        similar_pairs: similar_pairs(
            &class_similarity(&teacher_logits, &splits.test.labels, classes, 4.0),
            5,
        ),
        agreement_temperature: temperature,
        agreement_with_teacher: agreements,
        charts: files,
    })
}
