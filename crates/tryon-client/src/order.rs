//! The order `run_many` and `tryon batch` start their jobs in: input
//! order, except that the last jobs (as many as run at once) start longest
//! first.
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

/// An iterator yielding `(index, item)`: input order until `tail` items are
/// left, then those longest expected duration first (ties in input order).
/// Made by [`tail_longest_first`].
pub struct TailLongestFirst<I: Iterator, F> {
    inner: std::iter::Enumerate<I>,
    tail: usize,
    key: F,
    /// The tail, once reached: the key orders by duration, then input order.
    heap: Option<BinaryHeap<Keyed<I::Item>>>,
}

/// A tail item with its heap key: longest first, then input order.
type Keyed<T> = (Duration, Reverse<usize>, Entry<T>);

impl<I: Iterator, F> std::fmt::Debug for TailLongestFirst<I, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailLongestFirst")
            .field("tail", &self.tail)
            .field("tail_reached", &self.heap.is_some())
            .finish_non_exhaustive()
    }
}

/// An item in the heap; compares equal to every other (the key decides).
struct Entry<T>(T);

impl<T> PartialEq for Entry<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// The order [`Client::run_many`](crate::Client::run_many) and `tryon
/// batch` start jobs in: `items` in input order, except the last `tail`
/// (as many as run at once), which start longest `key` first, so a run does
/// not end waiting on a long job that started last. Each item comes with
/// its input index. An input whose length is unknown (its size hint is not
/// exact) keeps its order; only the tail is ever held in memory.
///
/// ```
/// use std::time::Duration;
/// let secs = [2, 22, 6, 2, 1, 22, 6, 2];
/// let order: Vec<usize> =
///     tryon_client::tail_longest_first(secs, 4, |s| Duration::from_secs(*s))
///         .map(|(i, _)| i)
///         .collect();
/// assert_eq!(order, [0, 1, 2, 3, 5, 6, 7, 4]);
/// ```
pub fn tail_longest_first<I, F>(items: I, tail: usize, key: F) -> TailLongestFirst<I::IntoIter, F>
where
    I: IntoIterator,
    F: FnMut(&I::Item) -> Duration,
{
    TailLongestFirst {
        inner: items.into_iter().enumerate(),
        tail,
        key,
        heap: None,
    }
}

impl<I: Iterator, F> TailLongestFirst<I, F> {
    /// Items left, when the input knows exactly.
    fn exactly_left(&self) -> Option<usize> {
        match self.inner.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        }
    }
}

impl<I, F> Iterator for TailLongestFirst<I, F>
where
    I: Iterator,
    F: FnMut(&I::Item) -> Duration,
{
    type Item = (usize, I::Item);

    fn next(&mut self) -> Option<Self::Item> {
        if self.heap.is_none() && self.exactly_left().is_some_and(|n| n <= self.tail) {
            let key = &mut self.key;
            let heap = self
                .inner
                .by_ref()
                .map(|(i, item)| (key(&item), Reverse(i), Entry(item)))
                .collect();
            self.heap = Some(heap);
        }
        match &mut self.heap {
            Some(heap) => heap.pop().map(|(_, Reverse(i), Entry(item))| (i, item)),
            None => self.inner.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Image, TryOnRequest};

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
        let order: Vec<_> = tail_longest_first(requests, 4, TryOnRequest::expected_duration)
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
        let order: Vec<_> = tail_longest_first(unknown, 10, TryOnRequest::expected_duration)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
    }
}
