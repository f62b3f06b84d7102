//! Preparing the next batch while the current one trains.
//!
//! A training step leaves cores idle in its serial stretches: the loss, the element-wise passes
//! too small for the thread pool, the wait for the slower of two products run side by side. On
//! a 2-core machine that was about a sixth of an epoch's CPU time. A live teacher's forward pass
//! over the next batch, and the host work of jitter and mixup, fill those gaps when they run as
//! a second task on the same pool.

/// Calls `step(prepare(item))` for each of `items` in order, preparing the next item on the
/// thread pool while the current step runs. Every item is prepared once, in order, and stepped
/// in order, so the values are a plain loop's. The steps run on the calling thread, whose
/// dropout stream is the seeded one. The first error ends the loop; a step's error wins over
/// one from preparing the item after it, which ran at the same time.
pub fn overlapped<I, B, E>(
    items: impl IntoIterator<Item = I>,
    mut prepare: impl FnMut(I) -> Result<B, E> + Send,
    mut step: impl FnMut(B) -> Result<(), E>,
) -> Result<(), E>
where
    I: Send,
    B: Send,
    E: Send,
{
    let mut items = items.into_iter();
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
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

    thread_local! {
        static MARK: Cell<u32> = const { Cell::new(0) };
    }

    #[test]
    fn steps_run_on_the_calling_thread() {
        // Dropout masks come from a thread-local stream seeded on the training thread.
        MARK.set(7);
        let seen = Mutex::new(Vec::new());
        let _: Result<(), ()> = overlapped(0..6, Ok, |_| {
            seen.lock().unwrap().push(MARK.get());
            Ok(())
        });
        assert_eq!(*seen.lock().unwrap(), [7; 6]);
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
