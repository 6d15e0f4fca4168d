//! Property: for each rule file's filetests, the pass gives the same interpreter outputs
//! before and after (1e-5 relative) on random inputs of random magnitude.

mod common;

use std::path::{Path, PathBuf};

use proptest::prelude::*;

fn files(topic: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/filetests")
        .join(topic);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|x| x == "dqc"));
    v.sort();
    v
}

/// Every `(before, after)` pair of `topic`, the pass run once.
fn pairs(topic: &str) -> Vec<(String, dqc_ir::Graph, dqc_ir::Graph)> {
    let mut out = Vec::new();
    for path in files(topic) {
        let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let pass = src
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("// pass:"))
            .map(|p| p.trim().to_string())
            .unwrap_or_else(|| panic!("{}: no pass line", path.display()));
        let mut before = dqc_ir::text::parse(&src, None).unwrap_or_else(|e| panic!("{e}"));
        dqc_ir::verify::verify(&mut before).unwrap_or_else(|e| panic!("{e}"));
        let mut after = before.clone();
        common::run_only(&mut after, &pass).unwrap_or_else(|e| panic!("{e}"));
        out.push((path.display().to_string(), before, after));
    }
    assert!(!out.is_empty(), "no filetests for {topic}");
    out
}

fn check(topic: &str, seed: u64, scale: f32) -> Result<(), TestCaseError> {
    for (name, before, after) in pairs(topic) {
        let mut rng = common::Rng::new(seed);
        let mut inputs = common::random_inputs(&before, &mut rng).map_err(TestCaseError::fail)?;
        for t in &mut inputs {
            if t.dtype().is_float() {
                let v: Vec<f32> = t.to_f32_vec().iter().map(|x| x * scale).collect();
                *t = dqc_ir::Tensor::from_f32(t.dtype(), t.shape().to_vec(), &v)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
        common::same_outputs(&before, &after, &inputs, 1e-5)
            .map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn patterns_keep_values(seed in 1u64.., scale in 0.1f32..4.0) {
        check("patterns", seed, scale)?;
    }

    #[test]
    fn algebra_keeps_values(seed in 1u64.., scale in 0.1f32..4.0) {
        check("algebra", seed, scale)?;
    }

    #[test]
    fn layout_keeps_values(seed in 1u64.., scale in 0.1f32..4.0) {
        check("layout", seed, scale)?;
    }

    #[test]
    fn fusion_keeps_values(seed in 1u64.., scale in 0.1f32..4.0) {
        check("fusion", seed, scale)?;
    }

    #[test]
    fn canonicalize_keeps_values(seed in 1u64.., scale in 0.1f32..4.0) {
        check("canonicalize", seed, scale)?;
    }
}
