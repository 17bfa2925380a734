//! [`MutexExt::locked`]: a mutex lock that outlives a panic.
//!
//! Why it exists: every critical section in the exporter leaves its data whole (a value
//! swapped in, a counter bumped, a list edited in one step), so a panic elsewhere while a
//! lock was held must not stop the collectors, scrapes and the API that share it. Poisoning
//! is ignored in one place, here, rather than at each `lock()`.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locking that ignores poisoning (see the module documentation for why that is sound).
pub trait MutexExt<T> {
    /// Locks, waiting as `Mutex::lock` does, and hands out the data even after a panic.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> MutexExt<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
