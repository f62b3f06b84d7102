//! Sentences of the README and docs/ that state what the code does, read and held against it,
//! so that a change to either side shows up here.

use std::path::Path;

use clap::ValueEnum;
use distill::experiment::{ExperimentKind, Preset, ReproduceParams};

fn doc(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// The paragraph (lines up to a blank one) that contains `needle`, joined into one line.
fn paragraph(text: &str, needle: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .find(|p| p.contains(needle))
        .unwrap_or_else(|| panic!("no paragraph says {needle:?}"))
}

/// The last cell of the table row that starts with `first_cell`.
fn last_cell(text: &str, first_cell: &str) -> String {
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("| {first_cell} |")))
        .unwrap_or_else(|| panic!("no row {first_cell}"));
    let cells: Vec<&str> = row.trim_end_matches('|').split('|').collect();
    cells.last().unwrap().trim().to_string()
}

#[test]
fn the_readme_names_exactly_the_recipes_whose_students_warm_up() {
    let claim = paragraph(&doc("README.md"), "warm up for one epoch");
    for &kind in ExperimentKind::value_variants() {
        let cfg = ReproduceParams::recipe(kind, Preset::Quick, 1, "d".into());
        let warms = cfg.student.train.warmup_epochs > 0;
        let named = match kind {
            ExperimentKind::Mnist => claim.contains("in the main experiment"),
            k => claim.contains(&format!("`--experiment {}`", k.name())),
        };
        assert_eq!(warms, named, "{}: warm-up {warms}; {claim}", kind.name());
    }
    assert!(claim.contains("(in no other recipe)"), "{claim}");
}

#[test]
fn the_quick_presets_time_is_stated_once_everywhere() {
    let (readme, method) = (doc("README.md"), doc("docs/method.md"));
    let time = last_cell(&readme, "`quick` (default)");
    assert!(time.contains(" s"), "{time}");
    assert_eq!(last_cell(&method, "`quick` (default)"), time);
    let intro = paragraph(&readme, "Run the main experiment");
    assert!(intro.contains(&time), "{intro} does not give {time}");
    // The command's own help gives no figure that could drift from the measured one.
    for source in ["src/experiment/presets.rs", "src/cli/reproduce.rs"] {
        assert!(
            !doc(source).contains("minutes on 2 cores"),
            "{source} states a time"
        );
    }
}

#[test]
fn the_docs_say_where_silent_units_are_counted() {
    // Splits::probe_images (its unit test checks the 5,000) is the code's side.
    for name in ["docs/experiments.md", "docs/method.md"] {
        let claim = paragraph(&doc(name), "never fire on");
        assert!(
            claim.contains("never fire on the first 5,000 training images"),
            "{name}: {claim}"
        );
        assert!(!claim.contains("validation images"), "{name}: {claim}");
    }
}
