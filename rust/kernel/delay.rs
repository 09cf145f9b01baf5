// SPDX-License-Identifier: GPL-2.0

//! Sleeping for a while.
//!
//! C header: [`include/linux/delay.h`](srctree/include/linux/delay.h)

/// Sleeps for at least `ms` milliseconds. May only be called where sleeping is allowed.
///
/// # Examples
///
/// ```
/// use kernel::time::{ktime_ms_delta, Ktime};
///
/// let before = Ktime::ktime_get();
/// kernel::delay::msleep(20);
/// assert!(ktime_ms_delta(Ktime::ktime_get(), before) >= 20);
/// ```
pub fn msleep(ms: u32) {
    // SAFETY: `msleep` has no preconditions beyond a sleepable context, which callers of a
    // sleeping function provide (`might_sleep` checks it with `DEBUG_ATOMIC_SLEEP`).
    unsafe { crate::bindings::msleep(ms) }
}

/// Lets the scheduler run another task if this one has used up its time slice, in a long loop
/// of work done in process context. May only be called where sleeping is allowed.
pub fn cond_resched() {
    // SAFETY: `cond_resched` has no preconditions beyond a sleepable context, which callers of
    // a sleeping function provide.
    unsafe { crate::bindings::cond_resched() };
}
