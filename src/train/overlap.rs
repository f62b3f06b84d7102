//! Preparing the next batch while the current one trains.
//!
//! A training step leaves cores idle in its serial stretches: the loss, the element-wise passes
//! too small for the thread pool, the wait for the slower of two products run side by side
//! (a sizeable share of an epoch on a few cores, `docs/speed.md`). A live teacher's forward pass
//! over the next batch, and the host work of jitter and mixup, fill those gaps when they run as
//! a second task on the same pool.

use crate::compute::DropoutStream;

/// Calls `step(prepare(item))` for each of `items` in order, preparing the next item on the
/// thread pool while the current step runs. Every item is prepared once, in order, and stepped
/// in order, so the values are a plain loop's. The loop runs on a worker of the pool
/// ([`on_pool`]) with the calling thread's dropout stream, which it hands back at the end. The
/// first error ends the loop; a step's error wins over one from preparing the item after it,
/// which ran at the same time.
pub fn overlapped<I, B, E>(
    items: impl IntoIterator<Item = I, IntoIter: Send>,
    mut prepare: impl FnMut(I) -> Result<B, E> + Send,
    mut step: impl FnMut(B) -> Result<(), E> + Send,
) -> Result<(), E>
where
    I: Send,
    B: Send,
    E: Send,
{
    let mut items = items.into_iter();
    on_pool(move || {
        let mut next = items.next().map(&mut prepare).transpose()?;
        while let Some(batch) = next.take() {
            let upcoming = items.next();
            let mut prepared = None;
            let stepped = rayon::in_place_scope(|scope| {
                scope.spawn(|_| prepared = upcoming.map(&mut prepare));
                step(batch)
            });
            stepped?;
            next = prepared.transpose()?;
        }
        Ok(())
    })
}

/// Runs `f` on a worker of the CPU pool, with this thread's dropout stream, then gives this
/// thread the stream as `f` left it. On a worker of a pool already, runs `f` in place.
///
/// Why: each parallel product of a step hands parts to the pool and waits for them. From a
/// thread outside the pool, every hand-off goes through the pool's shared queue and the caller
/// sleeps until it is woken; from a worker, the caller computes one part itself while the other
/// worker takes the rest from its queue, which made distillation epochs measurably faster
/// (`docs/speed.md`, round ten).
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let run = DropoutStream::current();
    let (out, after) = rayon::scope(|_| {
        // A worker that waits for part of a product may run another thread's loop meanwhile
        // (another call of this function, nested on the same stack); each loop puts back the
        // stream it found, so that the one below it resumes with its own, even on a panic.
        let _found = Restore(DropoutStream::current());
        run.install();
        let out = f();
        (out, DropoutStream::current())
    });
    after.install();
    out
}

/// Puts a thread's dropout stream back when dropped.
struct Restore(DropoutStream);

impl Drop for Restore {
    fn drop(&mut self) {
        self.0.install();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::seed_dropout;
    use crate::model::DropoutLayer;
    use std::sync::Mutex;

    #[test]
    fn prepares_and_steps_in_order() {
        let log = Mutex::new(Vec::new());
        let prepared = Mutex::new(Vec::new());
        let result: Result<(), String> = overlapped(
            0..5,
            |i| {
                prepared.lock().unwrap().push(i);
                Ok(i * 10)
            },
            |b| {
                log.lock().unwrap().push(b);
                Ok(())
            },
        );
        assert_eq!(result, Ok(()));
        assert_eq!(*log.lock().unwrap(), [0, 10, 20, 30, 40]);
        assert_eq!(*prepared.lock().unwrap(), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn steps_take_over_the_calling_threads_dropout_stream_and_hand_it_back() {
        // Masks come from a thread-local stream seeded on the training thread. Three runs loop
        // at once, each step waiting on parallel work, so that a worker may run another loop
        // while it waits.
        std::thread::scope(|threads| {
            for seed in 0..3u64 {
                threads.spawn(move || {
                    let device = burn::tensor::Device::flex().autodiff();
                    let layer = DropoutLayer::new(0.5);
                    let draw = || layer.next_draw(&device);
                    seed_dropout(seed);
                    let want: Vec<_> = (0..41).map(|_| draw()).collect();
                    seed_dropout(seed);
                    let got = Mutex::new(Vec::new());
                    let _: Result<(), ()> = overlapped(0..40, Ok, |_| {
                        let busy = || (0..20_000u64).map(std::hint::black_box).sum::<u64>();
                        let (mask, _) = rayon::join(draw, busy);
                        got.lock().unwrap().push(mask);
                        Ok(())
                    });
                    let mut got = got.into_inner().unwrap();
                    got.push(draw());
                    assert_eq!(got, want, "run {seed}");
                });
            }
        });
    }

    /// Runs five items whose preparation fails at `bad_prepare` and whose step fails at
    /// `bad_step`; gives the result and the items stepped.
    fn failing(bad_prepare: usize, bad_step: usize) -> (Result<(), String>, Vec<usize>) {
        let steps = Mutex::new(Vec::new());
        let result = overlapped(
            0..5,
            |i| match i == bad_prepare {
                true => Err(format!("prepare {i}")),
                false => Ok(i),
            },
            |b| {
                steps.lock().unwrap().push(b);
                match b == bad_step {
                    true => Err(format!("step {b}")),
                    false => Ok(()),
                }
            },
        );
        (result, steps.into_inner().unwrap())
    }

    #[test]
    fn the_first_error_ends_the_loop() {
        // Step 1 fails while item 2 fails to prepare: the step's error is the one reported.
        assert_eq!(failing(2, 1), (Err("step 1".into()), vec![0, 1]));
        // A preparation error alone stops the loop before that item is stepped.
        assert_eq!(failing(3, 9), (Err("prepare 3".into()), vec![0, 1, 2]));
        assert_eq!(failing(9, 9), (Ok(()), vec![0, 1, 2, 3, 4]));
    }
}
