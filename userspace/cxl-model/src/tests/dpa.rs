//! Tests of the DPA region rules: mmap and transfer ranges, scrub chunk bookkeeping.

use std::vec;

use crate::dpa::*;

const MIB: u64 = 1 << 20;
const SIZE: u64 = 256 * MIB;

#[test]
fn mmap_must_lie_inside_the_region() {
    assert_eq!(check_mmap(SIZE, 0, SIZE), Ok(()));
    assert_eq!(check_mmap(SIZE, SIZE - 4096, 4096), Ok(()));
    assert_eq!(check_mmap(SIZE, 0, 0), Err(RangeError::Empty));
    assert_eq!(check_mmap(SIZE, SIZE, 4096), Err(RangeError::Outside));
    assert_eq!(
        check_mmap(SIZE, u64::MAX - 4095, 4096),
        Err(RangeError::Outside)
    );
    assert_eq!(check_mmap(SIZE, 4096, SIZE), Err(RangeError::TooLong));
    assert_eq!(check_mmap(SIZE, 0, SIZE + 1), Err(RangeError::TooLong));
    // Wrapping arithmetic must not turn a huge length into a small end.
    assert_eq!(check_mmap(SIZE, 4096, u64::MAX), Err(RangeError::TooLong));
    assert_eq!(
        check_mmap(u64::MAX, 4096, u64::MAX - 4095),
        Err(RangeError::TooLong)
    );
}

#[test]
fn transfers_are_clamped_to_the_region_end() {
    assert_eq!(clamp_transfer(SIZE, 0, 16), Ok(16));
    assert_eq!(clamp_transfer(SIZE, SIZE - 3, 16), Ok(3));
    assert_eq!(clamp_transfer(SIZE, SIZE - 1, usize::MAX), Ok(1));
    assert_eq!(clamp_transfer(SIZE, 12345, 0), Ok(0));
    assert_eq!(clamp_transfer(SIZE, SIZE, 1), Err(RangeError::Outside));
    assert_eq!(clamp_transfer(SIZE, u64::MAX, 1), Err(RangeError::Outside));
}

#[test]
fn chunks_touched_covers_exactly_the_bytes() {
    assert_eq!(chunks_touched(0, 0), 0..0);
    assert_eq!(chunks_touched(0, 1), 0..1);
    assert_eq!(chunks_touched(2 * MIB - 1, 1), 0..1);
    assert_eq!(chunks_touched(2 * MIB - 1, 2), 0..2);
    assert_eq!(chunks_touched(2 * MIB, 2 * MIB), 1..2);
    assert_eq!(chunks_touched(0, 1 << 30), 0..512);
    assert_eq!(chunks_touched(3 * MIB, 4096), 1..2);
    // No overflow at the top of the address space.
    assert_eq!(
        chunks_touched(u64::MAX - 10, 100),
        (u64::MAX - 10) / SCRUB_CHUNK..u64::MAX / SCRUB_CHUNK + 1
    );
}

#[test]
fn chunk_bytes_stop_at_the_region_end() {
    let size = 5 * MIB;
    assert_eq!(chunk_count(size), 3);
    assert_eq!(chunk_bytes(0, size), 0..2 * MIB);
    assert_eq!(chunk_bytes(2, size), 4 * MIB..5 * MIB);
    assert_eq!(chunk_bytes(3, size), size..size, "past the end: empty");
    assert_eq!(chunk_count(SIZE), 128);
    assert_eq!(scrub_map_words(SIZE), 2);
    assert_eq!(scrub_map_words(2 * MIB), 1);
    assert_eq!(scrub_map_words(1 << 40), (1 << 19) / 64);
}

#[test]
fn scrub_map_records_each_chunk_once_and_clears() {
    let mut words = vec![0u64; scrub_map_words(SIZE)];
    let mut map = ScrubMap::new(&mut words);
    assert!(!map.is_scrubbed(0));
    assert!(!map.is_scrubbed(127));
    assert!(map.is_scrubbed(128), "beyond the region: nothing to scrub");
    map.mark(63);
    map.mark(64);
    assert!(map.is_scrubbed(63) && map.is_scrubbed(64));
    assert!(!map.is_scrubbed(62) && !map.is_scrubbed(65));
    let pending: std::vec::Vec<u64> = map.pending(60..68).collect();
    assert_eq!(pending, vec![60, 61, 62, 65, 66, 67]);
    map.mark(1000); // out of range: ignored, no panic
    map.clear();
    assert_eq!(
        map.pending(0..128).count(),
        128,
        "a new open scrubs everything again"
    );
}

/// A gate of an open region whose first restore succeeded.
fn active_gate() -> Gate {
    let mut g = Gate::new();
    g.open();
    assert!(g.needs_restore());
    assert!(g.restored(RestoreOutcome::Done));
    g
}

#[test]
fn gate_is_closed_until_open_and_restored() {
    let mut g = Gate::new();
    assert_eq!(g.status(), Status::Revoked);
    // A restore attempt that raced the open changes nothing while closed.
    assert!(!g.restored(RestoreOutcome::Done));
    g.open();
    assert_eq!(g.status(), Status::NeedsRestore);
    assert!(g.restored(RestoreOutcome::Done));
    g.close();
    assert_eq!(g.status(), Status::Revoked);
    assert!(!g.restored(RestoreOutcome::Done));
}

#[test]
fn gate_reset_revokes_then_waits_for_restore() {
    let mut g = active_gate();
    g.begin_change();
    assert_eq!(g.status(), Status::Revoked);
    assert!(!g.restored(RestoreOutcome::Done));
    g.end_change();
    assert_eq!(g.status(), Status::NeedsRestore);
    // A device still completing its reset: try again later.
    assert!(!g.restored(RestoreOutcome::NotYet));
    assert!(g.needs_restore());
    assert!(g.restored(RestoreOutcome::Done));
}

#[test]
fn gate_failed_restore_waits_for_the_next_reset() {
    let mut g = active_gate();
    g.begin_change();
    g.end_change();
    assert!(!g.restored(RestoreOutcome::Impossible));
    assert_eq!(g.status(), Status::Failed);
    assert!(!g.needs_restore());
    g.begin_change();
    g.end_change();
    assert!(g.needs_restore());
    assert!(g.restored(RestoreOutcome::Done));
}

#[test]
fn gate_overlapping_changes_restore_after_the_last() {
    let mut g = active_gate();
    // A user reset and a power change (or two resets of a hot reset set) overlap.
    g.begin_change();
    g.begin_change();
    assert_eq!(g.changes_under_way(), 2);
    g.end_change();
    assert_eq!(g.status(), Status::Revoked);
    assert!(!g.restored(RestoreOutcome::Done));
    g.end_change();
    assert!(g.needs_restore());
    assert!(g.restored(RestoreOutcome::Done));
}

#[test]
fn gate_user_reset_during_error_recovery_stays_revoked() {
    let mut g = active_gate();
    g.error_detected();
    assert_eq!(g.status(), Status::Revoked);
    // A VFIO_DEVICE_RESET runs to completion before the recovery's own bus reset.
    g.begin_change();
    g.end_change();
    assert_eq!(g.status(), Status::Revoked);
    assert!(!g.restored(RestoreOutcome::Done));
    g.error_resumed();
    assert!(g.needs_restore());
    assert!(g.restored(RestoreOutcome::Done));
}

#[test]
fn gate_error_recovery_ending_during_a_reset_waits_for_it() {
    let mut g = active_gate();
    g.begin_change();
    g.error_detected();
    g.error_resumed();
    assert_eq!(g.status(), Status::Revoked);
    g.end_change();
    assert!(g.needs_restore());
}

#[test]
fn gate_failed_error_recovery_lasts_until_close() {
    let mut g = active_gate();
    // A recovery that fails never resumes: user resets do not bring the region back.
    g.error_detected();
    g.begin_change();
    g.end_change();
    assert!(g.in_error_recovery());
    assert_eq!(g.status(), Status::Revoked);
    assert!(!g.restored(RestoreOutcome::Done));
    // The next open starts afresh.
    g.close();
    assert!(!g.in_error_recovery());
    g.open();
    assert!(g.needs_restore());
    assert!(g.restored(RestoreOutcome::Done));
}

#[test]
fn gate_changes_while_closed_balance() {
    let mut g = Gate::new();
    // A sysfs reset of the closed device, then an open during another one.
    g.begin_change();
    g.end_change();
    assert_eq!(g.status(), Status::Revoked);
    g.begin_change();
    g.open();
    assert_eq!(g.status(), Status::Revoked);
    g.end_change();
    assert!(g.needs_restore());
}

#[test]
fn gate_unbalanced_end_does_not_underflow() {
    let mut g = active_gate();
    g.end_change();
    assert_eq!(g.changes_under_way(), 0);
    assert!(g.needs_restore());
    g.begin_change();
    assert_eq!(g.status(), Status::Revoked);
    g.end_change();
    assert!(g.needs_restore());
}

#[test]
fn accesses_wait_only_for_changes_of_an_open_region() {
    let mut g = active_gate();
    assert!(!g.must_wait());
    g.begin_change();
    assert!(g.must_wait(), "a reset under way: wait, do not fail");
    g.begin_change();
    g.end_change();
    assert!(g.must_wait(), "one of two changes still under way");
    g.end_change();
    assert!(!g.must_wait());
    // An error recovery may never end: accesses fail rather than wait.
    g.error_detected();
    g.begin_change();
    assert!(!g.must_wait());
    g.error_resumed();
    assert!(g.must_wait());
    g.end_change();
    // A closed region makes nobody wait, whatever is under way.
    g.begin_change();
    g.close();
    assert!(!g.must_wait());
    assert!(!Gate::new().must_wait());
}
