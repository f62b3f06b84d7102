//! The figures `run` times on distill's own training and inference: the paper's teacher and
//! student stepping on hard labels and on soft targets (live, cached, per shifted view), CNN
//! steps, and forward passes.

use std::time::Instant;

use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{
    BenchOptions, FIGURES, Selected, Soft, epoch, net, repeat, serving_latency, sgd, steps_ms,
};
use crate::data::{Dataset, DeviceSplit, ImageShape, Split};
use crate::distill::{DistillConfig, DistillParams, ViewSpec, ViewTargets, log_soft_targets};
use crate::error::Result;
use crate::eval::median;
use crate::model::{Classifier, Dropout, Network};
use crate::train::{Stepper, TrainConfig};

/// What the timed figures share: the examples, the models, the training settings and the
/// batches' random stream (drawn from in the order the figures are timed).
pub(super) struct Timed<'a> {
    /// Repeats, warm-up and the figures asked for.
    pub opts: &'a BenchOptions,
    /// The training images; the first `n` are timed.
    pub train: &'a Split,
    /// Examples per timed epoch.
    pub n: usize,
    /// The first `n` training images on the device.
    pub data: DeviceSplit,
    /// The step's optimization settings (SGD, the presets' batch).
    pub cfg: TrainConfig,
    /// The KD loss the distillation figures use.
    pub kd: DistillConfig,
    /// The images' shape.
    pub shape: ImageShape,
    /// Output classes.
    pub classes: usize,
    /// The paper's teacher, freshly initialized.
    pub teacher: Network,
    /// The paper's student, freshly initialized.
    pub student: Network,
    /// Compute device.
    pub device: &'a Device,
    /// The batches' random stream.
    pub rng: StdRng,
}

impl<'a> Timed<'a> {
    /// The paper's teacher and student sized to `dataset`, to time on its first `n` training
    /// images.
    pub fn new(
        opts: &'a BenchOptions,
        dataset: &'a Dataset,
        n: usize,
        device: &'a Device,
    ) -> Result<Timed<'a>> {
        let split = &dataset.train;
        let data = split.head(n).to_device(device);
        let cfg = sgd()?;
        let kd = DistillParams {
            temperature: 20.0,
            alpha: 0.9,
        }
        .check()?;
        let (shape, classes) = (dataset.shape, dataset.classes);
        let teacher_dropout = Dropout {
            input: 0.2,
            hidden: 0.5,
        };
        let teacher = net("mlp:1200,1200", teacher_dropout, shape, classes, device)?;
        let student = net("mlp:800,800", Dropout::NONE, shape, classes, device)?;
        Ok(Timed {
            opts,
            train: split,
            n,
            data,
            cfg,
            kd,
            shape,
            classes,
            teacher,
            student,
            device,
            rng: StdRng::seed_from_u64(1),
        })
    }

    /// The teacher's training steps and epochs on hard labels.
    pub fn teacher(&mut self, figs: &mut Selected, progress: &dyn Fn(&str)) {
        if figs.wants_any(&["teacher_step_ms", "teacher_epoch_s"]) {
            progress("teacher training");
        }
        let mut st = Stepper::new(&self.teacher, &self.cfg, self.device);
        let (opts, data, device, rng) = (self.opts, &self.data, self.device, &mut self.rng);
        figs.time("teacher_step_ms", || {
            repeat(opts, || {
                steps_ms(&mut st, data, &Soft::None, device, rng, 50)
            })
        });
        figs.time("teacher_epoch_s", || {
            repeat(opts, || epoch(&mut st, data, &Soft::None, device, rng))
        });
    }

    /// The student's steps and epochs distilled from a live teacher, from cached soft targets,
    /// and from soft targets cached per shifted view.
    pub fn distillation(&mut self, figs: &mut Selected, progress: &dyn Fn(&str)) -> Result<()> {
        if figs.wants_any(&["kd_step_live_ms", "kd_epoch_live_s"]) {
            progress("distillation, live teacher");
        }
        let (opts, data, device, rng) = (self.opts, &self.data, self.device, &mut self.rng);
        let kd = &self.kd;
        let live = Soft::Live(&self.teacher, kd);
        let mut ss = Stepper::new(&self.student, &self.cfg, device);
        figs.time("kd_step_live_ms", || {
            repeat(opts, || steps_ms(&mut ss, data, &live, device, rng, 50))
        });
        figs.time("kd_epoch_live_s", || {
            repeat(opts, || epoch(&mut ss, data, &live, device, rng))
        });

        let cached_names = ["kd_step_cached_ms", "kd_epoch_cached_s"];
        if figs.wants_any(&cached_names) {
            progress("distillation, cached soft targets");
        }
        let cached_targets = match figs.wants_any(&cached_names) {
            true => log_soft_targets(
                self.teacher.net.logits_chunked(&data.images),
                kd.temperature(),
            ),
            false => Tensor::empty([0, self.classes], device),
        };
        let cached = Soft::Cached(&cached_targets, kd);
        figs.time("kd_step_cached_ms", || {
            repeat(opts, || steps_ms(&mut ss, data, &cached, device, rng, 50))
        });
        figs.time("kd_epoch_cached_s", || {
            repeat(opts, || epoch(&mut ss, data, &cached, device, rng))
        });

        // Soft targets cached for 9 views (1-px shifts), filled outside the timing; every batch
        // is shifted on the host, as a jittered student's are.
        if figs.wants("kd_epoch_views_s") {
            progress("distillation, soft targets cached per shifted view");
            let host = self.train.head(self.n);
            let spec = ViewSpec {
                views: 9,
                max_shift: 1,
                shape: self.shape,
                seed: 7,
            };
            let teacher = Classifier::Single(self.teacher.clone());
            let views = ViewTargets::label(&teacher, &host, spec, kd.temperature(), device)?;
            let soft = Soft::Views(&views, &host, kd);
            figs.time("kd_epoch_views_s", || {
                repeat(opts, || epoch(&mut ss, data, &soft, device, rng))
            });
        }
        Ok(())
    }

    /// Training steps of a CNN teacher and student.
    pub fn cnn(&mut self, figs: &mut Selected, progress: &dyn Fn(&str)) -> Result<()> {
        if !figs.wants_any(&["cnn_teacher_step_ms", "cnn_student_step_ms"]) {
            return Ok(());
        }
        progress("CNN training steps");
        let (opts, data, device, rng) = (self.opts, &self.data, self.device, &mut self.rng);
        for (name, spec, dropout) in [
            ("cnn_teacher_step_ms", "cnn:32,64/256", 0.5),
            ("cnn_student_step_ms", "cnn:16,32/64", 0.0),
        ] {
            let dropout = Dropout {
                input: 0.0,
                hidden: dropout,
            };
            let model = net(spec, dropout, self.shape, self.classes, device)?;
            let mut st = Stepper::new(&model, &self.cfg, device);
            figs.time(name, || {
                repeat(opts, || {
                    steps_ms(&mut st, data, &Soft::None, device, rng, 20)
                })
            });
        }
        Ok(())
    }

    /// The teacher's and the student's latency (one image at a time) and throughput.
    pub fn inference(&self, figs: &mut Selected, progress: &dyn Fn(&str)) {
        let inference = |n: &&&str| n.contains("_latency_") || n.contains("_throughput_");
        if FIGURES.iter().filter(inference).any(|n| figs.wants(n)) {
            progress("inference");
        }
        let (opts, data) = (self.opts, &self.data);
        let rows = 200.min(self.n);
        let host: Vec<f32> = data
            .images
            .clone()
            .slice(0..rows)
            .into_data()
            .try_to_vec()
            .unwrap_or_default();
        let models = [("teacher", &self.teacher), ("student", &self.student)];
        serving_latency(figs, opts, models, &host);
        let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().ok();
        for (name, model) in models {
            // burn's tensor forward, on the pool's threads and on one.
            let tensor_latency = || {
                let mut t: Vec<f64> = (0..rows)
                    .map(|i| {
                        let x = data.images.clone().slice(i..i + 1);
                        let s = Instant::now();
                        let _ = model.net.forward(x).into_data();
                        1e6 * s.elapsed().as_secs_f64()
                    })
                    .collect();
                median(&mut t)
            };
            figs.time(format!("{name}_latency_b1_burn_us"), || {
                repeat(opts, tensor_latency)
            });
            if let Some(pool) = &one_thread {
                figs.time(format!("{name}_latency_b1_burn_1thread_us"), || {
                    repeat(opts, || pool.install(tensor_latency))
                });
            }
            let big = data.images.clone().slice(0..1024.min(self.n));
            figs.time(format!("{name}_throughput_b1024"), || {
                repeat(opts, || {
                    let s = Instant::now();
                    for _ in 0..5 {
                        let _ = model.net.forward(big.clone()).into_data();
                    }
                    5.0 * big.dims()[0] as f64 / s.elapsed().as_secs_f64()
                })
            });
        }
    }
}
