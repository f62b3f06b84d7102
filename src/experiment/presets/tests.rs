//! Tests of the presets and of their fitting to other data.

use super::*;

#[test]
fn distilled_jitter_mixup_and_epochs_reach_only_the_distilled_role() {
    let settings = |distilled: Option<(usize, f64, usize)>| {
        let mut cfg = ReproduceParams::preset(Preset::Paper, 1, "data/mnist".into());
        cfg.distilled_jitter = distilled.map(|d| d.0);
        cfg.distilled_mixup = distilled.map(|d| d.1);
        cfg.distilled_epochs = distilled.map(|d| d.2);
        let roles = cfg.check().unwrap();
        let s = |r: &RoleConfig| {
            let t = r.train.settings();
            (t.jitter, t.mixup, t.epochs)
        };
        (s(&roles.student), s(&roles.distilled))
    };
    assert_eq!(settings(None), ((0, 0.0, 80), (0, 0.0, 80)));
    // The student alone stays the unregularized baseline.
    assert_eq!(settings(Some((2, 0.5, 120))), ((0, 0.0, 80), (2, 0.5, 120)));
}

#[test]
fn paper_preset_settings_are_the_documented_constants() {
    let cfg = ReproduceParams::preset(Preset::Paper, 1, "data/mnist".into());
    let t = &cfg.teacher;
    assert_eq!((t.input_dropout, t.hidden_dropout), (0.0, 0.2));
    assert_eq!((t.train.jitter, t.train.epochs), (2, 96));
    // Students: unregularized, unshifted, 80 epochs.
    let s = &cfg.student;
    assert_eq!((s.input_dropout, s.hidden_dropout), (0.0, 0.0));
    assert_eq!((s.train.jitter, s.train.epochs), (0, 80));
    // Choices were made on a validation split; the preset fits all training images.
    assert_eq!(cfg.validation_size, 0);
    assert_eq!(
        ReproduceParams::preset(Preset::Quick, 1, "d".into()).validation_size,
        5000
    );
    assert_eq!(cfg.distilled_jitter, None);
    // Both students: Adam at 0.001 after one warm-up epoch; quick keeps SGD (with the
    // warm-up), the other recipes keep SGD without it, teachers never warm up.
    let opt = |t: &TrainParams| (t.optimizer, t.learning_rate, t.warmup_epochs);
    assert_eq!(opt(&s.train), (OptimizerKind::Adam, 0.001, 1));
    let roles = cfg.check().unwrap();
    assert_eq!(opt(roles.distilled.train.settings()), opt(&s.train));
    let quick = ReproduceParams::preset(Preset::Quick, 1, "data/mnist".into());
    assert_eq!(opt(&quick.student.train), (OptimizerKind::Sgd, 0.05, 1));
    let omit = ReproduceParams::recipe(ExperimentKind::Omit3, Preset::Quick, 1, "d".into());
    assert_eq!(opt(&omit.student.train), (OptimizerKind::Sgd, 0.05, 0));
    assert_eq!(opt(&quick.teacher.train), (OptimizerKind::Sgd, 0.1, 0));
}

#[test]
fn fitting_leaves_mnist_alone_and_sizes_small_data() {
    let fit = FitToData {
        schedule: true,
        validation: true,
    };
    for preset in [Preset::Quick, Preset::Paper, Preset::Smoke] {
        let mut cfg = ReproduceParams::preset(preset, 1, "d".into());
        let mut before = cfg.clone();
        assert!(cfg.fit_to_data(fit, 60_000, 28, 85.0).is_empty());
        // MNIST keeps the presets' T, which was set on it.
        before.auto_temperature = Some(false);
        assert_eq!(cfg, before);
    }
    // 1,438 images of 8x8: 143 held out, 1,295 left, so 42x the epochs and no shifts; not
    // MNIST, so T is chosen on validation.
    let mut cfg = ReproduceParams::preset(Preset::Quick, 1, "d".into());
    let notes = cfg.fit_to_data(fit, 1438, 8, 15.0);
    assert_eq!(notes.len(), 5, "{notes:?}");
    assert_eq!(cfg.auto_temperature, Some(true));
    // Images of MNIST's size but twice its brightness are other data too; without a
    // validation split (paper) nothing can choose, and a T the user gave stays.
    for (preset, given, auto) in [
        (Preset::Quick, None, Some(true)),
        (Preset::Paper, None, Some(false)),
        (Preset::Quick, Some(false), Some(false)),
    ] {
        let mut cfg = ReproduceParams::preset(preset, 1, "d".into());
        cfg.auto_temperature = given;
        cfg.fit_to_data(fit, 60_000, 28, 2.0 * 87.8);
        assert_eq!(cfg.auto_temperature, auto, "{preset:?}");
    }
    assert_eq!(cfg.validation_size, 143);
    assert_eq!(
        (cfg.teacher.train.epochs, cfg.student.train.epochs),
        (16 * 42, 10 * 42)
    );
    assert_eq!(
        (cfg.student.train.warmup_epochs, cfg.teacher.train.jitter),
        (42, 0)
    );
    assert_eq!(cfg.teacher.train.warmup_epochs, 42);
    // Dimmer inputs than MNIST's, but a stretched schedule: the students' rate.
    assert_eq!(cfg.teacher.train.learning_rate, 0.05);
    // A size the user chose stays, and stretching has a ceiling.
    let mut cfg = ReproduceParams::preset(Preset::Quick, 1, "d".into());
    cfg.validation_size = 300;
    let only_schedule = FitToData {
        validation: false,
        ..fit
    };
    let notes = cfg.fit_to_data(only_schedule, 310, 28, 351.2);
    assert_eq!(
        (cfg.validation_size, cfg.teacher.train.epochs),
        (300, 16 * MAX_STRETCH)
    );
    // Four times MNIST's input energy: a quarter of the teacher's rate, said in a note.
    assert_eq!(cfg.teacher.train.learning_rate, 0.025);
    assert!(
        notes.iter().any(|n| n.contains("learning rate 0.025")),
        "{notes:?}"
    );
    assert_eq!(cfg.student.train.learning_rate, 0.05);
}

#[test]
fn fitting_sizes_the_distilled_students_own_schedule_and_shifts() {
    let fit = FitToData {
        schedule: true,
        validation: true,
    };
    let mut cfg = ReproduceParams::preset(Preset::Paper, 1, "d".into());
    cfg.distilled_epochs = Some(12);
    cfg.distilled_jitter = Some(2);
    let mut mnist = cfg.clone();
    assert!(cfg.fit_to_data(fit, 60_000, 28, 85.0).is_empty());
    mnist.auto_temperature = Some(false);
    assert_eq!(cfg, mnist);
    // 14,000 images of 56 pixels: 4x the steps' epochs, shifts twice as wide.
    let notes = cfg.fit_to_data(fit, 14_000, 56, 85.0);
    assert_eq!(cfg.distilled_epochs, Some(12 * 4), "{notes:?}");
    assert_eq!(cfg.distilled_jitter, Some(4), "{notes:?}");
    assert!(
        notes.iter().any(|n| n.contains("distilled student 4 px")),
        "{notes:?}"
    );
    let roles = cfg.check().unwrap();
    assert_eq!(roles.distilled.train.settings().epochs, 48);
    assert_eq!(roles.distilled.train.settings().jitter, 4);
}

#[test]
fn configs_without_distilled_jitter_still_parse() {
    let cfg = ReproduceParams::preset(Preset::Quick, 3, "data/mnist".into());
    let text = toml::to_string_pretty(&cfg).unwrap();
    assert!(!text.contains("distilled_jitter"));
    let back: ReproduceParams = toml::from_str(&text).unwrap();
    assert_eq!(back, cfg);
    // No warm-up is left out, so configs (and reuse stamps) written before warm-up existed
    // still match (the teacher's); a warm-up is written and read back.
    assert_eq!(text.matches("warmup_epochs").count(), 1, "{text}");
    let paper = ReproduceParams::preset(Preset::Paper, 3, "data/mnist".into());
    let text = toml::to_string_pretty(&paper).unwrap();
    assert!(text.contains("warmup_epochs = 1"));
    assert_eq!(toml::from_str::<ReproduceParams>(&text).unwrap(), paper);
    let mut jittered = cfg.clone();
    jittered.distilled_jitter = Some(2);
    let back: ReproduceParams =
        toml::from_str(&toml::to_string_pretty(&jittered).unwrap()).unwrap();
    assert_eq!(back, jittered);
    assert_ne!(back, cfg);
}
