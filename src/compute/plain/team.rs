//! Helper threads that take part of each layer's columns in the serving path.
//!
//! At batch 1 a layer is tens of microseconds of work, too little for a thread pool: waking a
//! parked worker costs about as much as it saves (`docs/speed.md`). A helper spins for a short
//! while after each part it computes, so the next layer's hand-off costs well under a
//! microsecond while images keep coming, and parks when they stop. The caller never waits on
//! a helper that has not started: after its own part it claims every part that no helper has
//! claimed yet and computes it itself, so a slow or parked helper costs a hand-off, not a
//! stall.
//!
//! One team serves the whole process, whatever network is called (as rayon has one global
//! pool): two teams would spin on the same cores. A caller that finds it busy runs alone.
//! Each output column is summed by one thread in the same order whoever computes it, so the
//! logits are the same bits for every number of helpers.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{HostLayer, Input, dense_part, part_range};

/// How long a helper spins for the next part before it parks. Between the layers of one image
/// and between images sent back to back the gap is a few microseconds; an idle server stops
/// spending the other cores after this.
const SPIN: Duration = Duration::from_micros(200);

/// The caller's side: the helpers started so far.
pub(super) struct Team {
    helpers: Vec<Helper>,
    /// The number of the last layer handed out; it only grows.
    epoch: u64,
}

/// One helper thread and the slot through which it gets its parts.
struct Helper {
    slot: Arc<Slot>,
    thread: JoinHandle<()>,
}

/// What the caller and one helper share.
#[derive(Default)]
struct Slot {
    /// The epoch of the latest task, read by the spinning helper without the lock.
    posted: AtomicU64,
    /// The latest task; replaced before `posted` announces it.
    task: Mutex<Task>,
    /// The latest epoch whose part was claimed, by the helper or by the caller.
    claimed: AtomicU64,
    /// The latest epoch whose part the helper finished into `out`.
    done: AtomicU64,
    out: Mutex<Vec<f32>>,
}

/// One part of one layer: which columns of which network's layer, for which inputs.
#[derive(Clone, Default)]
struct Task {
    epoch: u64,
    layers: Option<Arc<[HostLayer]>>,
    layer: usize,
    columns: Range<usize>,
    input: Arc<Input>,
}

/// Locks a mutex whose data stays valid even if a holder panicked (plain values).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The process's team, or `None` while another caller uses it.
pub(super) fn try_team() -> Option<MutexGuard<'static, Team>> {
    static TEAM: OnceLock<Mutex<Team>> = OnceLock::new();
    let team = TEAM.get_or_init(|| {
        Mutex::new(Team {
            helpers: Vec::new(),
            epoch: 0,
        })
    });
    match team.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

impl Team {
    /// Starts helpers until there are `count`, or as many as the system allows; returns how
    /// many there are.
    fn grow(&mut self, count: usize) -> usize {
        while self.helpers.len() < count {
            let slot = Arc::new(Slot::default());
            let theirs = Arc::clone(&slot);
            let started = thread::Builder::new()
                .name(format!("distill-serve-{}", self.helpers.len() + 1))
                .spawn(move || serve(&theirs));
            match started {
                Ok(thread) => self.helpers.push(Helper { slot, thread }),
                Err(_) => break,
            }
        }
        self.helpers.len().min(count)
    }

    /// Layer `index` of `layers` for `input`, its columns split in up to `parts`.
    pub(super) fn layer(
        &mut self,
        layers: &Arc<[HostLayer]>,
        index: usize,
        input: Arc<Input>,
        parts: usize,
    ) -> Vec<f32> {
        let layer = &layers[index];
        let n = layer.outputs();
        let parts = self.grow(parts.max(1) - 1) + 1;
        self.epoch += 1;
        let epoch = self.epoch;
        let helpers = &self.helpers[..parts - 1];
        for (p, helper) in helpers.iter().enumerate() {
            *lock(&helper.slot.task) = Task {
                epoch,
                layers: Some(Arc::clone(layers)),
                layer: index,
                columns: part_range(n, parts, p),
                input: Arc::clone(&input),
            };
            helper.slot.posted.store(epoch, Ordering::Release);
            helper.thread.thread().unpark();
        }
        // The caller starts at once and the helpers a hand-off later, so it takes the last
        // part, which holds any tail of columns short of a whole block.
        let mut y = vec![0.0; n];
        let own = part_range(n, parts, parts - 1);
        dense_part(&input, layer, own.clone(), &mut y[own]);
        for (p, helper) in helpers.iter().enumerate() {
            let range = part_range(n, parts, p);
            let slot = &*helper.slot;
            if slot.claimed.swap(epoch, Ordering::AcqRel) < epoch || !wait_for(helper, epoch) {
                dense_part(&input, layer, range.clone(), &mut y[range]);
            } else {
                y[range].copy_from_slice(&lock(&slot.out));
            }
        }
        y
    }
}

/// Spins until a helper that claimed its part has finished it, yielding the core after a
/// while in case the helper was descheduled. False if the helper's thread ended instead (it
/// can only end by a panic): the caller then computes the part itself.
fn wait_for(helper: &Helper, epoch: u64) -> bool {
    let mut spins = 0u32;
    while helper.slot.done.load(Ordering::Acquire) < epoch {
        spins = spins.saturating_add(1);
        if spins < 1 << 16 {
            std::hint::spin_loop();
        } else if helper.thread.is_finished() {
            return false;
        } else {
            thread::yield_now();
        }
    }
    true
}

/// A helper's loop: compute each new task unless the caller claimed it first.
fn serve(slot: &Slot) {
    let mut seen = 0;
    let mut idle = Instant::now();
    let mut spins = 0u32;
    loop {
        if slot.posted.load(Ordering::Acquire) > seen {
            let task = lock(&slot.task).clone();
            seen = task.epoch;
            if let Some(layers) = &task.layers
                && slot.claimed.swap(seen, Ordering::AcqRel) < seen
            {
                let mut out = lock(&slot.out);
                out.clear();
                out.resize(task.columns.len(), 0.0);
                dense_part(&task.input, &layers[task.layer], task.columns, &mut out);
                drop(out);
                slot.done.store(seen, Ordering::Release);
            }
            // Let go of the network's weights, which may be the last reference to them.
            let mut posted = lock(&slot.task);
            if posted.epoch == seen {
                *posted = Task::default();
            }
            drop(posted);
            idle = Instant::now();
        } else {
            spins = spins.wrapping_add(1);
            // Reading the clock costs more than a spin; look at it now and then.
            if spins.is_multiple_of(64) && idle.elapsed() > SPIN {
                thread::park();
                idle = Instant::now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}
