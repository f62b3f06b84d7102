//! Accuracy on a small MNIST slice with fixed seeds: a broken loss, gradient or data path
//! cannot clear these bars.

use std::sync::Arc;

use distill::compute::compute_device;
use distill::data::Splits;
use distill::distill::{DistillParams, Objective, teacher_soft_targets};
use distill::eval::{ModelReport, model_report};
use distill::model::Classifier;
use distill::train::{
    OptimizerKind, RoleParams, RunOutput, Schedule, TrainParams, Trained, train_role,
};

fn role(spec: &str, epochs: usize, seed: u64) -> RoleParams {
    RoleParams {
        spec: spec.into(),
        input_dropout: 0.0,
        hidden_dropout: 0.0,
        train: TrainParams {
            epochs,
            batch_size: 64,
            learning_rate: 0.05,
            optimizer: OptimizerKind::Sgd,
            schedule: Schedule::Cosine,
            warmup_epochs: 0,
            jitter: 0,
            seed,
            clip_norm: None,
            mixup: 0.0,
            patience: None,
        },
    }
}

/// Trains `role` towards `objective` into `dir` and scores it on the test slice.
fn train_and_score(
    role: &RoleParams,
    objective: &Objective,
    splits: &Splits,
    dir: &std::path::Path,
) -> (Trained, ModelReport) {
    let (device, _) = compute_device();
    let run = train_role(
        &role.check().unwrap(),
        splits,
        objective,
        &device,
        &RunOutput::new(dir, "t", false),
    )
    .unwrap();
    let report = model_report(&run.network, dir, splits, &device, 0.0, None).unwrap();
    (run, report)
}

#[test]
fn mnist_slice_trains_and_distills_above_the_bar() {
    let data = distill::data::mnist_dir();
    let splits = Splits::load(
        &data,
        &Default::default(),
        Some(500),
        Some(3000),
        Some(1000),
    )
    .unwrap();
    let (device, _) = compute_device();
    let dir = tempfile::tempdir().unwrap();

    let teacher_dir = dir.path().join("teacher");
    let (teacher, t) = train_and_score(
        &role("mlp:256", 4, 7),
        &Objective::Hard,
        &splits,
        &teacher_dir,
    );
    // 3,000 examples, 4 epochs: about 7-9% error when everything works; chance is 90%.
    assert!(
        t.test_errors < 130,
        "teacher: {} errors of 1000",
        t.test_errors
    );
    assert!(
        teacher
            .history
            .windows(2)
            .all(|w| w[1].train_loss < w[0].train_loss),
        "{:?}",
        teacher.history
    );

    // A student that only ever sees the teacher's soft targets (alpha = 1) must learn the task.
    let distill = Arc::new(
        DistillParams {
            temperature: 4.0,
            alpha: 1.0,
        }
        .check()
        .unwrap(),
    );
    let (targets, _, _) = teacher_soft_targets(
        &Classifier::Single(teacher.network.clone()),
        &teacher_dir,
        &splits.train,
        4.0,
        &dir.path().join("cache"),
        &device,
    )
    .unwrap();
    let student_dir = dir.path().join("student");
    let objective = Objective::Distill {
        loss: distill.clone(),
        teacher_log_probs: targets,
    };
    let (_, r) = train_and_score(&role("mlp:64", 4, 8), &objective, &splits, &student_dir);
    assert!(
        r.test_errors < 150,
        "soft-target-only student: {} errors of 1000",
        r.test_errors
    );

    // Cached soft targets describe unblended images: a student on mixup's blends is refused.
    let mut blended = role("mlp:64", 4, 8);
    blended.train.mixup = 1.0;
    let err = match train_role(
        &blended.check().unwrap(),
        &splits,
        &objective,
        &device,
        &RunOutput::new(&dir.path().join("refused"), "t", false),
    ) {
        Ok(_) => panic!("cached targets with mixup were accepted"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("only a live teacher"), "{err}");

    // The same student with its teacher run live on each batch: without jitter it sees the
    // same targets as from the cache (up to rounding, as batches are multiplied in other
    // blocks), so it lands on nearly the same errors; with jitter, or taught on mixup's
    // blends of two images, it still learns the task.
    let live = Objective::DistillLive {
        loss: distill,
        teacher: Classifier::Single(teacher.network.clone()),
    };
    let mut changed = role("mlp:64", 4, 8);
    for (jitter, mixup) in [(0, 0.0), (1, 0.0), (0, 1.0)] {
        changed.train.jitter = jitter;
        changed.train.mixup = mixup;
        let live_dir = dir.path().join(format!("live{jitter}-{mixup}"));
        let (_, lr) = train_and_score(&changed, &live, &splits, &live_dir);
        assert!(
            lr.test_errors < 150,
            "live-teacher student, jitter {jitter}, mixup {mixup}: {} errors of 1000",
            lr.test_errors
        );
        if jitter == 0 && mixup == 0.0 {
            assert!(
                lr.test_errors.abs_diff(r.test_errors) <= 6,
                "live {} vs cached {} errors",
                lr.test_errors,
                r.test_errors
            );
        }
    }
}

#[test]
fn mnist_loader_matches_published_facts() {
    let ds = distill::data::load(&distill::data::mnist_dir()).unwrap();
    assert_eq!(
        (ds.shape.channels, ds.shape.height, ds.shape.width),
        (1, 28, 28)
    );
    assert_eq!(ds.classes, 10);
    assert_eq!(
        ds.train.class_counts(10),
        vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        ds.test.class_counts(10),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    let mean = ds.train.images().iter().map(|&p| p as f64).sum::<f64>()
        / ds.train.images().len() as f64
        / 255.0;
    assert!((mean - 0.1307).abs() < 5e-4, "{mean}");
}
