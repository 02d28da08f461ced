//! The order `run_many` starts its jobs in: input order, except that the
//! last jobs (as many as run at once) start longest first.
//!
//! At the end of a batch the pipeline drains: no job is left to start, and
//! the run lasts until its slowest last job is done. Started in input order,
//! an 11-garment job (some 22 s) among the last ones keeps the run going
//! long after the others; started first among them, it runs beside them,
//! and the run ends with the short jobs. Only the tail is reordered, so no
//! job waits behind others for long and a long input is still read lazily;
//! an input whose length is unknown (its size hint is not exact) keeps its
//! order. Each job keeps its input index.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::request::TryOnRequest;

/// Yields `(index, request)` in input order until `tail` are left, then
/// those longest expected duration first (ties in input order).
pub(crate) struct TailLongestFirst<I> {
    inner: std::iter::Enumerate<I>,
    tail: usize,
    /// The tail, once reached: the key orders by duration, then input order.
    heap: Option<BinaryHeap<(Duration, Reverse<usize>, Entry)>>,
}

/// A request in the heap; compares equal to every other (the key decides).
struct Entry(TryOnRequest);

impl PartialEq for Entry {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<I: Iterator<Item = TryOnRequest>> TailLongestFirst<I> {
    /// Orders the last `tail` requests of `requests` longest first.
    pub(crate) fn new(requests: I, tail: usize) -> Self {
        Self {
            inner: requests.enumerate(),
            tail,
            heap: None,
        }
    }

    /// Requests left, when the input knows exactly.
    fn exactly_left(&self) -> Option<usize> {
        match self.inner.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        }
    }
}

impl<I: Iterator<Item = TryOnRequest>> Iterator for TailLongestFirst<I> {
    type Item = (usize, TryOnRequest);

    fn next(&mut self) -> Option<Self::Item> {
        if self.heap.is_none() && self.exactly_left().is_some_and(|n| n <= self.tail) {
            let heap = self
                .inner
                .by_ref()
                .map(|(i, r)| (r.expected_duration(), Reverse(i), Entry(r)))
                .collect();
            self.heap = Some(heap);
        }
        match &mut self.heap {
            Some(heap) => heap.pop().map(|(_, Reverse(i), Entry(r))| (i, r)),
            None => self.inner.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Image;

    fn request(garments: usize, turbo: bool, seed: u64) -> TryOnRequest {
        TryOnRequest::builder()
            .seed(seed)
            .person(Image::url("https://example.com/p.jpg"))
            .garments((0..garments).map(|g| Image::url(format!("https://example.com/{g}.jpg"))))
            .turbo(turbo)
            .build()
            .unwrap()
    }

    #[test]
    fn only_the_tail_starts_longest_first_and_every_job_keeps_its_index() {
        // Expected: 2 s, 22 s, 6 s, 2 s, 1 s (turbo), 22 s, 6 s, 2 s.
        let shapes = [
            (1, false),
            (11, false),
            (3, false),
            (1, false),
            (1, true),
            (11, false),
            (3, false),
            (1, false),
        ];
        let requests = (0u64..).zip(shapes).map(|(i, (g, t))| request(g, t, i));
        let order: Vec<_> = TailLongestFirst::new(requests, 4)
            .map(|(i, r)| {
                assert_eq!(r.seed, Some(i as u64), "job {i} keeps its request");
                i
            })
            .collect();
        // The first four in input order; the last four (indices 4..8:
        // 1 s, 22 s, 6 s, 2 s) longest first.
        assert_eq!(order, [0, 1, 2, 3, 5, 6, 7, 4]);
    }

    #[test]
    fn an_input_of_unknown_length_keeps_its_order() {
        let shapes = [1usize, 11, 3, 11, 1];
        let unknown = shapes
            .iter()
            .map(|&g| request(g, false, 0))
            .filter(|_| true);
        let order: Vec<_> = TailLongestFirst::new(unknown, 10).map(|(i, _)| i).collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
    }
}
