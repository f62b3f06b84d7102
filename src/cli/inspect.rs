//! Commands that look inside a model: `soften` (one image's probabilities at several
//! temperatures) and `similarity` (the classes a model finds alike).

use std::path::PathBuf;

use clap::Args;

use super::args::{OnnxArgs, SplitName, data_dir};
use distill::compute::compute_device;
use distill::data::{Dataset, Split};
use distill::distill::check_temperature;
use distill::error::{Error, Result};
use distill::eval::{
    Agreement, agreement, check_compatible, class_similarity, logits as model_logits,
    ranking_without, similar_pairs, soften,
};
use distill::model::{Classifier, Predictor};
use distill::report::plot;

/// `distill soften`.
#[derive(Debug, Args)]
pub struct SoftenCmd {
    /// Model directory or ONNX file (.onnx).
    pub model: PathBuf,
    /// Position of the image in the split.
    #[arg(long, conflicts_with = "class", required_unless_present = "class")]
    pub index: Option<usize>,
    /// Use the first image of this true class instead of --index.
    #[arg(long)]
    pub class: Option<usize>,
    /// Temperatures, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,5,10,20",
        allow_negative_numbers = true
    )]
    pub temperatures: Vec<f64>,
    /// Which split the image comes from.
    #[arg(long, value_enum, default_value_t = SplitName::Test)]
    pub split: SplitName,
    /// Print JSON: {"index", "label", "temperatures", "probs"}.
    #[arg(long)]
    pub json: bool,
    /// Also draw a chart (.png or .svg) with the image beside it.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Logarithmic probability axis in the chart.
    #[arg(long)]
    pub log: bool,
    /// The dataset (IDX directory, .npz file or image-folder root; see `train --help`).
    /// --data-dir is an alias. Default: data/mnist of this repository.
    #[arg(long = "data", visible_alias = "data-dir", value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub onnx: OnnxArgs,
}

/// `distill similarity`.
#[derive(Debug, Args)]
pub struct SimilarityCmd {
    /// Model directory or ONNX file (.onnx).
    pub model: PathBuf,
    /// Temperature of the soft targets.
    #[arg(long, default_value_t = 4.0, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Other models (e.g. the distilled student and the student alone) to compare with MODEL:
    /// mean KL(MODEL_T || OTHER_T) on the test set and top-1 agreement. Directories or .onnx.
    #[arg(long, value_name = "MODEL")]
    pub compare: Vec<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Draw the heatmap (.png or .svg).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Number of most similar class pairs to list.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// The dataset (IDX directory, .npz file or image-folder root; see `train --help`).
    /// --data-dir is an alias. Default: data/mnist of this repository.
    #[arg(long = "data", visible_alias = "data-dir", value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub onnx: OnnxArgs,
}

/// Class `c` as a person reads it: its folder name after the index when the dataset has names.
fn named(ds: &Dataset, c: usize) -> String {
    match ds.class_names.as_ref().and_then(|n| n.get(c)) {
        Some(name) if *name != c.to_string() => format!("{c} ({name})"),
        _ => c.to_string(),
    }
}

/// The image `--index` or `--class` picks in `split`.
fn chosen_image(c: &SoftenCmd, split: &Split, classes: usize) -> Result<usize> {
    match (c.index, c.class) {
        (Some(i), _) if i >= split.len() => Err(Error::config(format!(
            "--index {i} is out of range: the split has {} images",
            split.len()
        ))),
        (Some(i), _) => Ok(i),
        (None, Some(class)) => split
            .labels
            .iter()
            .position(|&l| l as usize == class)
            .ok_or_else(|| {
                Error::config(format!(
                    "no image of class {class} in the split (classes are 0..{})",
                    classes - 1
                ))
            }),
        (None, None) => Err(Error::config("give --index N or --class C")),
    }
}

/// The image's probabilities at each temperature, and the other classes in order.
fn print_softened(c: &SoftenCmd, ds: &Dataset, index: usize, label: usize, probs: &[Vec<f64>]) {
    println!(
        "image {index} of the {:?} split, true class {}\n",
        c.split,
        named(ds, label)
    );
    print!("class");
    for t in &c.temperatures {
        print!(" {:>10}", format!("T={t}"));
    }
    println!();
    for cls in 0..ds.classes {
        print!("{cls:>5}");
        for p in probs {
            print!(" {:>10.3e}", p[cls]);
        }
        println!();
    }
    println!();
    for (t, p) in c.temperatures.iter().zip(probs) {
        let r: Vec<String> = ranking_without(p, label)
            .iter()
            .map(|&c| named(ds, c))
            .collect();
        println!(
            "T={t}: other classes, most probable first: {}",
            r.join(" > ")
        );
    }
}

pub(super) fn cmd_soften(c: SoftenCmd) -> Result<()> {
    for &t in &c.temperatures {
        check_temperature(t as f32)?;
    }
    let (device, _) = compute_device();
    let ds = distill::data::load(&data_dir(c.data_dir.as_deref()))?;
    let how = c.onnx.open_options(ds.shape)?;
    let net = Classifier::open(&c.model, &device, &how)?;
    let split = match c.split {
        SplitName::Test => &ds.test,
        SplitName::Train => &ds.train,
    };
    check_compatible(&net, split, ds.classes)?;
    let index = chosen_image(&c, split, ds.classes)?;
    let one = split.subset(&[index]);
    let row = model_logits(&net, &one, &device)?;
    let probs = soften(&row, &c.temperatures);
    let label = one.labels[0] as usize;
    if let Some(p) = &c.plot {
        plot::soften_chart(
            p,
            &plot::SoftenChart {
                image: one.bytes().unwrap_or_default(),
                shape: ds.shape,
                label,
                temperatures: &c.temperatures,
                probs: &probs,
                log_scale: c.log,
                title: format!("{}: image {index} (a {label}) softened", net.describe()),
            },
        )?;
    }
    if c.json {
        let v = serde_json::json!({"index": index, "label": label, "temperatures": c.temperatures, "probs": probs});
        println!("{v}");
        return Ok(());
    }
    print_softened(&c, &ds, index, label, &probs);
    Ok(())
}

/// The similarity matrix, its most similar pairs and the comparisons with other models.
fn print_similarity(
    c: &SimilarityCmd,
    ds: &Dataset,
    m: &[Vec<f64>],
    pairs: &[(usize, usize, f64)],
    comparisons: &[(String, Agreement)],
) {
    println!(
        "mean soft targets at T = {} per true class (rows: true class)\n",
        c.temperature
    );
    print!("    ");
    for j in 0..ds.classes {
        print!(" {j:>8}");
    }
    println!();
    for (i, row) in m.iter().enumerate() {
        print!("{i:>4}");
        for v in row {
            print!(" {v:>8.2e}");
        }
        println!();
    }
    if let Some(names) = &ds.class_names {
        let legend: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{i} = {n}"))
            .collect();
        println!("\nclasses: {}", legend.join(", "));
    }
    println!("\nmost similar pairs:");
    for &(a, b, s) in pairs {
        println!("  {} ~ {}: {s:.3e}", named(ds, a), named(ds, b));
    }
    for (name, a) in comparisons {
        println!(
            "vs {name}: mean KL {:.4} nats at T = {}, top-1 agreement {:.2}%",
            a.mean_kl,
            c.temperature,
            100.0 * a.top1_agreement
        );
    }
}

pub(super) fn cmd_similarity(c: SimilarityCmd) -> Result<()> {
    check_temperature(c.temperature as f32)?;
    let (device, _) = compute_device();
    let ds = distill::data::load(&data_dir(c.data_dir.as_deref()))?;
    let how = c.onnx.open_options(ds.shape)?;
    let net = Classifier::open(&c.model, &device, &how)?;
    check_compatible(&net, &ds.test, ds.classes)?;
    let logits = model_logits(&net, &ds.test, &device)?;
    let m = class_similarity(&logits, &ds.test.labels, ds.classes, c.temperature);
    let pairs = similar_pairs(&m, c.top);
    let mut comparisons = Vec::new();
    for other in &c.compare {
        let o = Classifier::open(other, &device, &how)?;
        check_compatible(&o, &ds.test, ds.classes)?;
        let ol = model_logits(&o, &ds.test, &device)?;
        comparisons.push((
            other.display().to_string(),
            agreement(&logits, &ol, ds.classes, c.temperature),
        ));
    }
    if let Some(p) = &c.plot {
        plot::heatmap(
            p,
            &m,
            &format!(
                "{}: mean soft targets at T = {} per true class",
                net.describe(),
                c.temperature
            ),
            "soft-target class",
            false,
        )?;
    }
    if c.json {
        let v = serde_json::json!({
            "temperature": c.temperature,
            "matrix": m,
            "pairs": pairs.iter().map(|(a, b, s)| serde_json::json!({"a": a, "b": b, "similarity": s})).collect::<Vec<_>>(),
            "comparisons": comparisons.iter().map(|(n, a)| serde_json::json!({"model": n, "mean_kl": a.mean_kl, "top1_agreement": a.top1_agreement})).collect::<Vec<_>>(),
        });
        println!("{v}");
        return Ok(());
    }
    print_similarity(&c, &ds, &m, &pairs, &comparisons);
    Ok(())
}
