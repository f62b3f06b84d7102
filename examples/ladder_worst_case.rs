//! Times the default `reproduce` on one dataset in its slowest case: the recipe's teacher and
//! every rung of the teacher ladder train their whole schedules and none wins (each teacher's
//! learning rate is set to 1e-6 after the preset is fitted to the data, and the rungs inherit
//! it), then the temperature grid runs as it does by default on data other than MNIST. Prints
//! one JSON line with the total and per-model seconds.
//!
//!     cargo run --release --example ladder_worst_case -- DATA OUT [SEED]
//!
//! Everything else is the default command's: `reproduce --data DATA --out OUT --seed SEED`.

use std::path::PathBuf;

use distill::experiment::{FitToData, Preset, ReproduceOptions, ReproduceParams, reproduce};
use distill::train::Checkpoints;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, out, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: ladder_worst_case DATA OUT [SEED]");
    };
    let seed: u64 = rest.first().map_or(Ok(1), |s| s.parse())?;
    let mut config = ReproduceParams::preset(Preset::Quick, seed, PathBuf::from(data));
    let dataset = distill::data::load(&config.data_dir)?;
    let side = dataset.shape.height.min(dataset.shape.width);
    let fit = FitToData {
        schedule: true,
        validation: true,
    };
    let notes = config.fit_to_data(
        fit,
        dataset.train.len(),
        side,
        dataset.train.mean_squared_norm(),
    );
    config.teacher.train.learning_rate = 1e-6;
    let report = reproduce(&ReproduceOptions {
        config,
        out: PathBuf::from(out),
        retrain_teacher: true,
        teacher: None,
        progress: true,
        checkpoints: Checkpoints::default(),
        // Already fitted: a second fit would change nothing but repeat the notes.
        fit: FitToData::default(),
        ladder: true,
        budget_minutes: None,
    })?;
    let teachers: Vec<serde_json::Value> = report
        .teacher_choice
        .iter()
        .flat_map(|c| &c.candidates)
        .map(|c| serde_json::json!({"name": c.name, "seconds": c.seconds, "epochs": c.epochs}))
        .collect();
    let grid: f64 = report
        .distill_choice
        .iter()
        .flat_map(|c| &c.points)
        .map(|p| p.seconds)
        .sum();
    let line = serde_json::json!({
        "total_s": report.total_seconds,
        "teachers": teachers,
        "student_s": report.models["student"].train_seconds,
        "grid_students_s": grid,
        "fitted": notes,
    });
    println!("{line}");
    Ok(())
}
