//! The table recipe: a teacher you bring (a forest or boosted model as ONNX, or any model
//! distill opens), the same small MLP trained alone and distilled from it, on the training
//! rows and on a transfer set widened by MUNGE or unlabelled rows. The temperature is chosen
//! per student on validation errors, from a small grid; the report adds a size and speed table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;
use serde::Serialize;

use super::extra_rows::ExtraRows;
use super::grid::{GridStudent, search};
use super::recipes::{judged_alone, teacher_beats_student};
use super::student::{Distillation, Distilled};
use super::table_speed::size_speed;
use crate::compute::compute_device;
use crate::data::{Munge, Splits, TableOptions};
use crate::distill::{DistillParams, Objective, StudentInputs};
use crate::error::{Error, Result};
use crate::eval::{ModelReport, evaluate, model_report};
use crate::fsutil::{RunLock, write_atomic};
use crate::model::{Classifier, OnnxOptions, OpenOptions, Predictor};
use crate::report::{
    ChartModel, DistillChoice, Environment, Report, TeacherCandidate, TeacherChoice, write_charts,
};
use crate::train::{RoleConfig, RoleParams, RunOutput, Trained, train_role};

/// Steps a student takes at least: small tables get more epochs, so that a table of a few
/// thousand rows is not stopped after a few hundred steps.
const MIN_STEPS: usize = 4500;

/// A table run as asked for (recorded as `config.toml`).
#[derive(Debug, Clone, Serialize)]
pub struct TableRecipe {
    /// The table.
    pub data: PathBuf,
    /// How the table is read.
    pub table: TableOptions,
    /// The teacher: an ONNX file (a tree ensemble or a network) or a model directory.
    pub teacher: PathBuf,
    /// How an ONNX teacher runs.
    pub onnx: OnnxOptions,
    /// The student, trained alone and distilled alike (its epochs are a floor: see
    /// [`TableRecipe::fit`]).
    pub student: RoleParams,
    /// Temperatures tried for each distilled student; the one with the fewest validation
    /// errors is kept (ties to the lower).
    pub temperatures: Vec<f32>,
    /// Weight of the soft targets.
    pub alpha: f32,
    /// Synthetic rows for the second distilled student.
    pub synthetic: Option<Munge>,
    /// Unlabelled rows for the second distilled student.
    pub transfer_file: Option<PathBuf>,
    /// Rows held out of the training set for validation (`None`: a tenth, at most 5,000).
    pub validation_size: Option<usize>,
    /// Seeds the students and MUNGE.
    pub seed: u64,
}

impl TableRecipe {
    /// The student's role for `rows` training rows: its epochs raised so that it takes at
    /// least [`MIN_STEPS`] steps. Returns the note that says so.
    fn fit(&self, rows: usize) -> Result<(RoleConfig, Option<String>)> {
        let mut role = self.student.clone();
        let steps = rows.div_ceil(role.train.batch_size.max(1)).max(1);
        let need = MIN_STEPS.div_ceil(steps);
        let note = (need > role.train.epochs).then(|| {
            format!(
                "{rows} training rows: {need} epochs instead of {} so that each student takes \
                 at least {MIN_STEPS} steps",
                role.train.epochs
            )
        });
        role.train.epochs = role.train.epochs.max(need);
        role.train.seed = self.seed;
        Ok((role.check()?, note))
    }
}

/// One distilled student: the one its grid kept, and what each temperature tried gave.
struct Chosen {
    student: Distilled,
    choice: DistillChoice,
}

impl Chosen {
    /// The temperature kept.
    fn temperature(&self) -> f32 {
        self.choice.chosen().temperature
    }
}

struct Ctx<'a> {
    recipe: &'a TableRecipe,
    out: &'a Path,
    teacher: &'a Classifier,
    device: Device,
    progress: bool,
}

impl Ctx<'_> {
    /// Trains `role` distilled on `transfer` at each temperature of the grid into
    /// `out/name/T<t>`, and keeps the one with the fewest validation errors.
    fn distill_grid(&self, name: &str, role: &RoleConfig, transfer: &Splits) -> Result<Chosen> {
        let (temperatures, alpha) = (&self.recipe.temperatures[..], self.recipe.alpha);
        let loss = |temperature| DistillParams { temperature, alpha }.check();
        let cache_dir = self.out.join("cache");
        let distillation = Distillation {
            teacher: self.teacher,
            teacher_dir: &self.recipe.teacher,
            loss: Arc::new(loss(temperatures.first().copied().unwrap_or(1.0))?),
            inputs: StudentInputs::Plain,
            transfer,
            cache_dir: &cache_dir,
            device: &self.device,
            announce: None,
        };
        let student = |temperature, alpha| {
            let dir = self.out.join(name).join(format!("T{temperature}"));
            let label = format!("{name} T={temperature}");
            Ok(GridStudent {
                temperature,
                alpha,
                loss: Arc::new(loss(temperature)?),
                output: RunOutput::new(&dir, &label, self.progress),
            })
        };
        let (grid, _) = search(&distillation, role, (temperatures, alpha, false), student)?;
        let (student, choice) = grid.into_choice(String::new())?;
        Ok(Chosen { student, choice })
    }
}

fn grid_note(name: &str, c: &Chosen) -> String {
    let tried: Vec<String> = (c.choice.points.iter())
        .map(|p| match p.validation_errors {
            Some(v) => format!("T = {}: {v}", p.temperature),
            None => format!("T = {}: -", p.temperature),
        })
        .collect();
    format!(
        "{name}: T = {} chosen on validation errors ({})",
        c.temperature(),
        tried.join(", ")
    )
}

/// Runs the table recipe into `out`: teacher, student alone, distilled on the training rows,
/// and distilled on the widened transfer set when MUNGE or a transfer file is asked for.
pub fn reproduce_table(recipe: &TableRecipe, out: &Path, progress: bool) -> Result<Report> {
    let start = Instant::now();
    let splits = Splits::load(
        &recipe.data,
        &recipe.table,
        recipe.validation_size,
        None,
        None,
    )?;
    if !splits.dataset.is_table() {
        return Err(Error::config(
            "the table recipe takes a table (.csv, .parquet, or an .npz of [N, F] features)",
        ));
    }
    let (device, backend) = compute_device();
    let _lock = RunLock::acquire(out)?;
    let config = toml::to_string_pretty(recipe).map_err(|e| Error::Format {
        what: "config.toml".into(),
        reason: e.to_string(),
    })?;
    write_atomic(&out.join("config.toml"), config.as_bytes())?;
    let how = OpenOptions {
        shape: Some(splits.dataset.shape),
        onnx: recipe.onnx.clone(),
    };
    let teacher = Classifier::load_teacher(&recipe.teacher, &device, &how)?;
    teacher.expect_classes(splits.dataset.classes)?;
    let ctx = Ctx {
        recipe,
        out,
        teacher: &teacher,
        device,
        progress,
    };
    let mut run = train_all(&ctx, &splits)?;
    let (dark, changed) = charts(&ctx, &splits, &run)?;
    let size_speed = size_speed(recipe, out, &splits, &run.models, &ctx.device)?;
    let env = Environment::detect(backend);
    for (name, m) in &run.models {
        run.notes.extend(m.silent_unit_warnings(name));
    }
    run.notes.push(format!(
        "teacher: {} ({})",
        teacher.describe(),
        recipe.teacher.display()
    ));
    let teacher_choice = judge_teacher(&run.models, &teacher);
    let report = Report {
        experiment: "table".into(),
        preset: "table".into(),
        seed: recipe.seed,
        temperature: run.temperature,
        alpha: recipe.alpha,
        backend: env.backend.clone(),
        git_commit: env.git_commit.clone(),
        environment: env,
        dataset: splits.info(),
        teacher_better_than_student: teacher_beats_student(&run.models, "teacher"),
        models: run.models,
        config: serde_json::to_value(recipe).unwrap_or_default(),
        total_seconds: start.elapsed().as_secs_f64(),
        notes: run.notes,
        dark_knowledge: Some(dark),
        bias_adjust: None,
        findings: run.findings,
        headline: None,
        changed,
        size_speed,
        teacher_choice,
        distill_choice: None,
    }
    .with_headline();
    report.write(out)?;
    Ok(report)
}

/// What the recipe trained.
struct Run {
    models: BTreeMap<String, ModelReport>,
    notes: Vec<String>,
    findings: BTreeMap<String, f64>,
    temperature: f32,
    alone: Trained,
    distilled: Vec<(String, Chosen)>,
}

fn train_all(ctx: &Ctx<'_>, splits: &Splits) -> Result<Run> {
    let recipe = ctx.recipe;
    let (role, fit_note) = recipe.fit(splits.train.len())?;
    let mut notes: Vec<String> = fit_note.into_iter().collect();
    let mut models = BTreeMap::new();
    let classes = splits.dataset.classes;
    let teacher_val = evaluate(ctx.teacher, &splits.validation, classes, &ctx.device)?.errors;
    let teacher_report = model_report(
        ctx.teacher,
        &recipe.teacher,
        splits,
        &ctx.device,
        0.0,
        Some(teacher_val),
    )?;
    models.insert("teacher".to_string(), teacher_report);
    let dir = ctx.out.join("student");
    let output = RunOutput::new(&dir, "student", ctx.progress);
    let alone = train_role(&role, splits, &Objective::Hard, &ctx.device, &output)?;
    let val = alone.validation_errors();
    let report = model_report(
        &alone.network,
        &dir,
        splits,
        &ctx.device,
        alone.seconds,
        val,
    )?;
    models.insert("student".to_string(), report);
    let mut distilled = vec![(
        "distilled".to_string(),
        ctx.distill_grid("distilled", &role, splits)?,
    )];
    let extra = ExtraRows {
        file: recipe.transfer_file.clone(),
        synthetic: recipe.synthetic,
        table: recipe.table.clone(),
        seed: recipe.seed,
    };
    if !extra.is_empty() {
        let (wide, counts) = extra.extend(splits.clone(), ctx.teacher, &ctx.device)?;
        notes.push(format!("distilled_more learned from {counts}"));
        let chosen = ctx.distill_grid("distilled_more", &role, &wide)?;
        distilled.push(("distilled_more".to_string(), chosen));
    }
    let mut findings = BTreeMap::new();
    for (name, c) in &distilled {
        notes.push(grid_note(name, c));
        findings.insert(format!("{name}_temperature"), f64::from(c.temperature()));
        let t = &c.student.trained;
        let val = t.validation_errors();
        let report = model_report(
            &t.network,
            &c.student.dir,
            splits,
            &ctx.device,
            t.seconds,
            val,
        )?;
        models.insert(name.clone(), report);
    }
    Ok(Run {
        temperature: distilled[0].1.temperature(),
        models,
        notes,
        findings,
        alone,
        distilled,
    })
}

fn charts(
    ctx: &Ctx<'_>,
    splits: &Splits,
    run: &Run,
) -> Result<(crate::report::DarkKnowledge, Option<crate::report::Changed>)> {
    let mut charted: Vec<ChartModel> = vec![
        ("teacher", ctx.teacher, &[]),
        ("student", &run.alone.network, &run.alone.history),
    ];
    for (name, c) in &run.distilled {
        let t = &c.student.trained;
        charted.push((name, &t.network, &t.history));
    }
    write_charts(
        ctx.out,
        splits,
        &ctx.device,
        &charted,
        f64::from(run.temperature),
    )
}

/// The given teacher judged against the student alone on validation, as `reproduce` judges
/// it: never replaced, but the report says how it compares.
fn judge_teacher(
    models: &BTreeMap<String, ModelReport>,
    teacher: &Classifier,
) -> Option<TeacherChoice> {
    let t = models.get("teacher")?.validation_errors?;
    let s = models.get("student")?.validation_errors?;
    let given = TeacherCandidate {
        name: "the given teacher".into(),
        model: teacher.describe(),
        validation_errors: t,
        seconds: 0.0,
        epochs: "as given".into(),
    };
    judged_alone(
        &given,
        s,
        Some("a given teacher is distilled from as it is, never replaced"),
    )
}
