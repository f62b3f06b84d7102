//! The teacher ladder: a teacher that does not clearly beat the student alone on validation is
//! replaced by a stronger one, chosen on validation errors only.

use std::io::Read;
use std::path::Path;

use distill::experiment::{FitToData, Preset, ReproduceOptions, ReproduceParams, reproduce};
use distill::report::Report;
use distill::train::Checkpoints;

use crate::common::write_idx;

/// The smoke preset with its teacher crippled (one epoch under heavy dropout), T chosen on
/// validation, and every model stopped early.
fn crippled(data: &Path, out: &Path) -> Report {
    crippled_within(data, out, None)
}

fn crippled_within(data: &Path, out: &Path, budget_minutes: Option<f64>) -> Report {
    let mut config = ReproduceParams::preset(Preset::Smoke, 1, data.to_path_buf());
    config.teacher.train.epochs = 1;
    config.teacher.input_dropout = 0.8;
    config.teacher.hidden_dropout = 0.8;
    config.auto_temperature = Some(true);
    config.auto_alpha = true;
    config.teacher.train.patience = Some(1);
    config.student.train.patience = Some(1);
    reproduce(&ReproduceOptions {
        config,
        out: out.to_path_buf(),
        retrain_teacher: false,
        teacher: None,
        progress: false,
        checkpoints: Checkpoints::default(),
        fit: FitToData {
            schedule: true,
            validation: true,
        },
        ladder: true,
        budget_minutes,
    })
    .unwrap()
}

/// A copy of the MNIST directory whose test labels are all moved on by one class: a test set
/// that disagrees with everything training sees.
fn disagreeing_mnist(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let src = distill::data::mnist_dir();
    for f in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    std::fs::copy(
        src.join("t10k-images-idx3-ubyte.gz"),
        dir.join("t10k-images-idx3-ubyte.gz"),
    )
    .unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(src.join("t10k-labels-idx1-ubyte.gz")).unwrap(),
    )
    .read_to_end(&mut raw)
    .unwrap();
    let labels: Vec<u8> = raw[8..].iter().map(|l| (l + 1) % 10).collect();
    write_idx(
        &dir.join("t10k-labels-idx1-ubyte"),
        &[labels.len() as u32],
        &labels,
    );
}

/// Set in the child process that runs the test body alone.
const ALONE: &str = "DISTILL_TEST_ALONE";

/// Runs `test` again in a child process of this test binary with no other test beside it, and
/// checks that it ran and passed; true in that child, where the caller goes on with the body.
/// Models trained in this process beside other tests would not be reproducible: burn's random
/// generator, which initializes every network, is shared by the whole process.
fn in_a_process_of_its_own(test: &str) -> bool {
    if std::env::var_os(ALONE).is_some() {
        return true;
    }
    let o = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(ALONE, "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("1 passed"),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    false
}

#[test]
fn a_crippled_teacher_is_replaced_and_t_chosen_without_reading_the_test_set() {
    if !in_a_process_of_its_own(
        "ladder::a_crippled_teacher_is_replaced_and_t_chosen_without_reading_the_test_set",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let plain = crippled(&distill::data::mnist_dir(), &tmp.path().join("plain"));
    let choice = plain.teacher_choice.clone().expect("the ladder ran");
    println!("{}\n{}", choice.sentence(), choice.table().markdown());
    assert_ne!(choice.chosen, 0, "{choice:?}");
    let won = &choice.candidates[choice.chosen];
    assert!(
        won.validation_errors < choice.student_validation_errors,
        "{choice:?}"
    );
    assert_eq!(plain.teacher_better_than_student, Some(true));
    assert!(plain.markdown().contains("## Teacher chosen on validation"));
    let grid = plain
        .distill_choice
        .clone()
        .expect("T was chosen on validation");
    // Five temperatures at the preset's alpha, then 0.5 and 1 at the best of them.
    assert_eq!(grid.points.len(), 7, "{grid:?}");
    let at_best_t = &grid.points[5..];
    assert!(
        at_best_t
            .iter()
            .all(|p| p.temperature == at_best_t[0].temperature)
    );
    let alphas: Vec<f32> = at_best_t.iter().map(|p| p.alpha).collect();
    assert_eq!(alphas, [0.5, 1.0]);
    let fewest = grid.points.iter().filter_map(|p| p.validation_errors).min();
    assert_eq!(grid.chosen().validation_errors, fewest, "{grid:?}");
    assert_eq!(
        (plain.temperature, plain.alpha),
        (grid.chosen().temperature, grid.chosen().alpha)
    );
    assert!(
        plain
            .markdown()
            .contains("## Temperature and alpha chosen on validation")
    );
    // The same run on data whose test labels disagree with training makes every choice alike.
    let data = tmp.path().join("disagreeing");
    disagreeing_mnist(&data);
    let other = crippled(&data, &tmp.path().join("other"));
    assert_eq!(
        other.teacher_choice.as_ref().map(|c| c.chosen),
        Some(choice.chosen)
    );
    let errors = |c: &distill::report::TeacherChoice| {
        c.candidates
            .iter()
            .map(|c| c.validation_errors)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        errors(other.teacher_choice.as_ref().unwrap()),
        errors(&choice)
    );
    let points = |r: &Report| {
        let c = r.distill_choice.as_ref().unwrap();
        let errors: Vec<_> = c.points.iter().map(|p| p.validation_errors).collect();
        (c.chosen, errors)
    };
    assert_eq!(points(&other), points(&plain));
    // Early stopping chose the same epochs: the kept models are the same bytes.
    for model in ["student", "distilled"] {
        let bytes = |run: &str| {
            std::fs::read(tmp.path().join(run).join(model).join("model.safetensors")).unwrap()
        };
        assert_eq!(bytes("plain"), bytes("other"), "{model} differs");
    }
}

#[test]
fn no_rung_starts_once_the_budget_has_run_out() {
    let tmp = tempfile::tempdir().unwrap();
    // A budget over before the recipe's teacher has finished: the ladder must not climb.
    let report = crippled_within(
        &distill::data::mnist_dir(),
        &tmp.path().join("run"),
        Some(1e-6),
    );
    let recipe = report.recipe_line();
    assert!(
        recipe.contains("Judged on validation and kept: the recipe's teacher."),
        "{recipe}"
    );
    let choice = report.teacher_choice.expect("the teacher was judged");
    assert_eq!(choice.candidates.len(), 1, "{choice:?}");
    assert!(
        choice.reason.contains("time budget ran out"),
        "{}",
        choice.reason
    );
    assert!(!tmp.path().join("run").join("teachers").exists());
}
