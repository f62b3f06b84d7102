//! The students of `distill distill`: one at the settings given, or one per setting of a grid
//! with the best on validation kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;

use super::train::DistillCmd;
use distill::data::Splits;
use distill::distill::{DistillLoss, LossParams, StudentInputs};
use distill::error::Result;
use distill::experiment::grid::{GridStudent, grid_dir, grid_reason, search};
use distill::experiment::{Distillation, StudentRun, distill_student};
use distill::model::{Classifier, is_onnx};
use distill::train::{RoleConfig, Trained};

/// One distilled student of `distill distill`, at one temperature or chosen from several.
pub(super) struct Student<'a> {
    pub c: &'a DistillCmd,
    pub role: &'a RoleConfig,
    pub teacher: &'a Classifier,
    pub transfer: &'a Splits,
    /// What the transfer set holds, announced before the first student trains.
    pub note: String,
    pub device: &'a Device,
}

impl Student<'_> {
    /// Where the soft targets are cached.
    fn cache_dir(&self) -> PathBuf {
        let c = self.c;
        c.cache_dir
            .clone()
            .unwrap_or_else(|| default_cache(&c.teacher, &c.out))
    }

    /// What distilling towards `loss` needs, with the soft targets cached in `cache` and
    /// `announce` printed before the first student trains.
    fn distillation<'a>(
        &'a self,
        loss: Arc<dyn DistillLoss>,
        cache: &'a Path,
        announce: &'a str,
    ) -> Result<Distillation<'a>> {
        let (c, s) = (self.c, self.role.train.settings());
        let inputs = StudentInputs::new(
            s.jitter,
            s.mixup,
            c.augment_cache,
            self.transfer.dataset.shape,
            s.seed,
        )?;
        Ok(Distillation {
            teacher: self.teacher,
            teacher_dir: &c.teacher,
            loss,
            inputs,
            transfer: self.transfer,
            cache_dir: cache,
            device: self.device,
            announce: Some(announce),
        })
    }

    /// Trains the student towards `loss` into `out`.
    pub(super) fn train(
        &self,
        loss: Arc<dyn DistillLoss>,
        out: &Path,
        label: &str,
    ) -> Result<Trained> {
        let cache = self.cache_dir();
        let announce = format!("transfer set: {}; ", self.note);
        let distillation = self.distillation(loss, &cache, &announce)?;
        let student = StudentRun {
            role: self.role,
            output: self.c.resume.output(out, label),
        };
        Ok(distill_student(distillation, student)?.0.trained)
    }

    /// One student per temperature (at the given alpha) into `OUT/grid/T<t>-a<alpha>`, then
    /// with `alpha_auto` one per alpha at the best T; the one with the fewest validation errors
    /// (the first of equals, so the lower T) is copied to `OUT`, and `OUT/choice.json` records
    /// the grid.
    pub(super) fn choose(
        &self,
        settings: &LossParams,
        temperatures: &[f32],
        alpha_auto: bool,
    ) -> Result<Trained> {
        let cache = self.cache_dir();
        let announce = format!("transfer set: {}; ", self.note);
        let distillation = self.distillation(settings.check()?, &cache, &announce)?;
        let student = |temperature, alpha| {
            let loss = LossParams {
                temperature,
                alpha,
                ..*settings
            }
            .check()?;
            let dir = grid_dir(&self.c.out, temperature, alpha);
            let label = format!("T = {temperature}, alpha = {alpha}");
            Ok(GridStudent {
                temperature,
                alpha,
                loss,
                output: self.c.resume.output(&dir, &label),
            })
        };
        let what = (temperatures, settings.alpha, alpha_auto);
        let (grid, _) = search(&distillation, self.role, what, student)?;
        let reason = grid_reason(temperatures.len() > 1, alpha_auto);
        let (best, choice) = grid.finish(&self.c.out, reason)?;
        distill::fsutil::write_json(&self.c.out.join("choice.json"), &choice)?;
        eprintln!("{}", choice.sentence());
        Ok(best.trained)
    }
}

/// Where soft targets are cached by default: inside a teacher directory distill wrote, but
/// beside the output directory for an ONNX file, so that nothing is written next to a file
/// the user owns.
pub(super) fn default_cache(teacher: &Path, out: &Path) -> PathBuf {
    if is_onnx(teacher) {
        let parent = out.parent().unwrap_or(Path::new("."));
        parent.join("soft-target-cache")
    } else {
        teacher.join("cache")
    }
}
