//! Random corruption of a valid plan never panics the loader, and since every byte of a
//! plan is covered by a check, changing any single byte is always refused.

mod common;

use common::*;
use dqc_runtime::plan::Plan;
use proptest::prelude::*;
use std::sync::OnceLock;

fn valid() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(bias_plan_bytes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_single_byte_change_is_refused(at in any::<prop::sample::Index>(), delta in 1u8..=255) {
        let mut b = valid().to_vec();
        let i = at.index(b.len());
        b[i] = b[i].wrapping_add(delta);
        prop_assert!(Plan::from_bytes("p", &b).is_err(), "byte {} changed and the plan loaded", i);
    }

    #[test]
    fn random_corruption_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut b = valid().to_vec();
        for (at, v) in edits {
            let i = at.index(b.len());
            b[i] = v;
        }
        if let Some(c) = cut {
            let n = c.index(b.len());
            b.truncate(n);
        }
        // Loading either fails cleanly or yields a plan; it must not panic.
        let _ = Plan::from_bytes("p", &b);
    }

    #[test]
    fn random_bytes_after_a_valid_prefix_never_panic(
        keep in 0usize..120,
        tail in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let v = valid();
        let mut b = v[..keep.min(v.len())].to_vec();
        b.extend(tail);
        let _ = Plan::from_bytes("p", &b);
    }
}
