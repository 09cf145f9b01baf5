//! The last operations of a thread, kept to print when an invariant breaks.

use std::collections::VecDeque;

/// A ring of the last `cap` operation descriptions, numbered from the thread's first.
#[derive(Debug, Clone)]
pub struct OpRing {
    cap: usize,
    next: u64,
    entries: VecDeque<(u64, String)>,
}

impl OpRing {
    /// An empty ring keeping the last `cap` entries (at least one).
    pub fn new(cap: usize) -> Self {
        OpRing {
            cap: cap.max(1),
            next: 0,
            entries: VecDeque::with_capacity(cap.max(1)),
        }
    }

    /// Appends an entry, dropping the oldest when full; returns its number.
    pub fn push(&mut self, what: String) -> u64 {
        if self.entries.len() == self.cap {
            self.entries.pop_front();
        }
        let n = self.next;
        self.entries.push_back((n, what));
        self.next += 1;
        n
    }

    /// Adds to the text of the newest entry (its outcome, once known).
    pub fn amend(&mut self, more: &str) {
        if let Some((_, s)) = self.entries.back_mut() {
            s.push_str(more);
        }
    }

    /// Entries pushed so far, including those dropped.
    pub fn total(&self) -> u64 {
        self.next
    }

    /// The kept entries, oldest first, as `#N what`.
    pub fn lines(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(n, s)| format!("#{n} {s}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_entries_in_order() {
        let mut r = OpRing::new(3);
        assert!(r.lines().is_empty());
        for i in 0..5 {
            assert_eq!(r.push(format!("op{i}")), i);
        }
        r.amend(" -> ok");
        assert_eq!(r.total(), 5);
        assert_eq!(r.lines(), vec!["#2 op2", "#3 op3", "#4 op4 -> ok"]);
        let mut one = OpRing::new(0);
        one.push("a".into());
        one.push("b".into());
        assert_eq!(one.lines(), vec!["#1 b"]);
    }
}
