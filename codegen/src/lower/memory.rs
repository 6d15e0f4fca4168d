//! Memory planning: liveness of activation buffers over the kernel order, then arena
//! offsets with reuse.
//!
//! A buffer is live from the first kernel that touches it (its writer) to the last one
//! that reads it; an `Alias` counts as its base, so it extends the base's life. Sizes are
//! taken at the symbols' maxima and rounded up to [`ALIGN`] bytes. Offsets are assigned
//! greedily, largest buffer first: each goes into the smallest gap (best fit) between the
//! already placed buffers whose lifetimes overlap its own, or after the last of them.
//! Two buffers that are live at the same time never overlap.

use super::LowerError;
use crate::spec::{BufferKind, Program};
use std::collections::BTreeMap;

/// Alignment of every arena offset, in bytes.
pub const ALIGN: u64 = 64;

/// One buffer to place: size in bytes and live range (kernel indices, inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Bytes (rounded up to [`ALIGN`] by the planner).
    pub size: u64,
    /// First kernel that touches it.
    pub first: usize,
    /// Last kernel that touches it.
    pub last: usize,
}

impl Interval {
    /// True if both are live at some kernel.
    pub fn overlaps_in_time(&self, o: &Interval) -> bool {
        self.first <= o.last && o.first <= self.last
    }
}

/// Arena offsets for `items` (same order) and the arena size.
pub fn assign_offsets(items: &[Interval]) -> (Vec<u64>, u64) {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        items[b]
            .size
            .cmp(&items[a].size)
            .then(items[a].first.cmp(&items[b].first))
            .then(a.cmp(&b))
    });
    let mut offsets = vec![0u64; items.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut total = 0u64;
    for i in order {
        let it = items[i];
        let size = it.size.div_ceil(ALIGN) * ALIGN;
        let mut busy: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&p| items[p].overlaps_in_time(&it))
            .map(|&p| {
                (
                    offsets[p],
                    offsets[p] + items[p].size.div_ceil(ALIGN) * ALIGN,
                )
            })
            .collect();
        busy.sort_unstable();
        let mut best: Option<(u64, u64)> = None; // (gap size, offset)
        let mut cursor = 0u64;
        for &(s, e) in &busy {
            if s > cursor {
                let gap = s - cursor;
                if gap >= size && best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, cursor));
                }
            }
            cursor = cursor.max(e);
        }
        let off = best.map_or(cursor, |(_, o)| o);
        offsets[i] = off;
        total = total.max(off + size);
        placed.push(i);
    }
    (offsets, total)
}

/// Plan the arena of `program`: set every `Activation` offset and `arena_bytes`, and
/// return the peak (= arena) bytes at the symbols' maxima `symbols`.
pub fn plan_memory(
    program: &mut Program,
    symbols: &BTreeMap<String, u64>,
) -> Result<u64, LowerError> {
    let n = program.buffers.len();
    let root = |mut id: usize, p: &Program| -> usize {
        for _ in 0..=n {
            match &p.buffers[id].kind {
                BufferKind::Alias { base } if (*base as usize) < n => id = *base as usize,
                _ => return id,
            }
        }
        id
    };
    let mut live: Vec<Option<(usize, usize)>> = vec![None; n];
    for (ki, k) in program.kernels.iter().enumerate() {
        for &a in &k.args {
            if (a as usize) >= n {
                continue;
            }
            let r = root(a as usize, program);
            live[r] = Some(match live[r] {
                None => (ki, ki),
                Some((f, l)) => (f.min(ki), l.max(ki)),
            });
        }
    }
    let mut ids = Vec::new();
    let mut items = Vec::new();
    for (id, b) in program.buffers.iter().enumerate() {
        if !matches!(b.kind, BufferKind::Activation { .. }) {
            continue;
        }
        let Some((first, last)) = live[id] else {
            continue;
        };
        let too_large = || LowerError::TooLarge {
            buffer: b.name.clone(),
        };
        let numel = b
            .shape
            .numel()
            .and_then(|d| d.eval(symbols))
            .ok_or_else(too_large)?;
        let numel = usize::try_from(numel).map_err(|_| too_large())?;
        let bytes = numel
            .checked_mul(b.dtype.bits())
            .map(|bits| bits.div_ceil(8) as u64)
            .ok_or_else(too_large)?;
        ids.push(id);
        items.push(Interval {
            size: bytes,
            first,
            last,
        });
    }
    let (offsets, total) = assign_offsets(&items);
    for (&id, &off) in ids.iter().zip(&offsets) {
        program.buffers[id].kind = BufferKind::Activation { offset: off };
    }
    program.arena_bytes = total;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_disjoint(items: &[Interval], offs: &[u64], total: u64) {
        for i in 0..items.len() {
            assert_eq!(offs[i] % ALIGN, 0);
            assert!(offs[i] + items[i].size <= total);
            for j in 0..i {
                if items[i].overlaps_in_time(&items[j]) && items[i].size > 0 && items[j].size > 0 {
                    let (a0, a1) = (offs[i], offs[i] + items[i].size);
                    let (b0, b1) = (offs[j], offs[j] + items[j].size);
                    assert!(a1 <= b0 || b1 <= a0, "{i} {j} overlap: {items:?} {offs:?}");
                }
            }
        }
    }

    #[test]
    fn reuses_dead_space() {
        // a (0..1) and c (2..3) never live together: c takes a's place.
        let items = [
            Interval {
                size: 1000,
                first: 0,
                last: 1,
            },
            Interval {
                size: 500,
                first: 1,
                last: 2,
            },
            Interval {
                size: 1000,
                first: 2,
                last: 3,
            },
        ];
        let (offs, total) = assign_offsets(&items);
        check_disjoint(&items, &offs, total);
        assert_eq!(offs[0], offs[2]);
        assert_eq!(total, 1024 + 512);
    }

    #[test]
    fn best_fit_picks_the_smallest_gap() {
        // Two holes (64 and 256 bytes) around live buffers; a 64-byte buffer takes the
        // small one.
        let items = [
            Interval {
                size: 64,
                first: 0,
                last: 0,
            },
            Interval {
                size: 128,
                first: 0,
                last: 5,
            },
            Interval {
                size: 256,
                first: 0,
                last: 0,
            },
            Interval {
                size: 192,
                first: 0,
                last: 5,
            },
            Interval {
                size: 64,
                first: 3,
                last: 4,
            },
        ];
        let (offs, total) = assign_offsets(&items);
        check_disjoint(&items, &offs, total);
        assert!(total <= 64 + 128 + 256 + 192);
    }

    proptest! {
        #[test]
        fn live_buffers_never_overlap(
            raw in proptest::collection::vec((1u64..5000, 0usize..20, 0usize..6), 0..40)
        ) {
            let items: Vec<Interval> = raw
                .iter()
                .map(|&(size, first, len)| Interval { size, first, last: first + len })
                .collect();
            let (offs, total) = assign_offsets(&items);
            check_disjoint(&items, &offs, total);
            // Never worse than no reuse.
            let sum: u64 = items.iter().map(|i| i.size.div_ceil(ALIGN) * ALIGN).sum();
            prop_assert!(total <= sum);
        }
    }
}
