//! Golden filetests: every `tests/filetests/<topic>/*.dqc` names its pass on a first line
//! `// pass: NAME`; the runner parses it, runs that pass alone (the pipeline verifies
//! the result), snapshots the IR text after it (one snapshot per file, `<topic>__<file>`)
//! and checks on random inputs that the interpreter gives the same outputs before and
//! after (1e-5 relative). `tests/rules_keep_values.rs` repeats the value check as a
//! proptest over input seeds.

mod common;

use std::path::{Path, PathBuf};

use dqc_ir::Graph;

/// The filetest files of `topic`, sorted.
pub fn files(topic: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/filetests")
        .join(topic);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "dqc"))
        .collect();
    v.sort();
    v
}

/// The graph of a filetest and the pass its first line names.
fn load(path: &Path) -> (Graph, String) {
    let src = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let pass = src
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("// pass:"))
        .map(|p| p.trim().to_string())
        .unwrap_or_else(|| panic!("{}: first line must be `// pass: NAME`", path.display()));
    let mut g =
        dqc_ir::text::parse(&src, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    dqc_ir::verify::verify(&mut g).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (g, pass)
}

fn run_topic(topic: &str) {
    let files = files(topic);
    assert!(!files.is_empty(), "no filetests in {topic}");
    for path in files {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (before, pass) = load(&path);
        let mut after = before.clone();
        let report = common::run_only(&mut after, &pass).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let changed = report.passes.iter().any(|p| p.changed);
        let text = format!(
            "// {pass}: changed = {changed}\n{}",
            dqc_ir::text::print(&after)
        );
        for seed in [1, 2, 3] {
            let mut rng = common::Rng::new(seed);
            let inputs =
                common::random_inputs(&before, &mut rng).unwrap_or_else(|e| panic!("{stem}: {e}"));
            common::same_outputs(&before, &after, &inputs, 1e-5)
                .unwrap_or_else(|e| panic!("{stem}: {e}"));
        }
        insta::assert_snapshot!(format!("{topic}__{stem}"), text);
    }
}

#[test]
fn patterns() {
    run_topic("patterns");
}

#[test]
fn algebra() {
    run_topic("algebra");
}

#[test]
fn layout() {
    run_topic("layout");
}

#[test]
fn fusion() {
    run_topic("fusion");
}

#[test]
fn canonicalize() {
    run_topic("canonicalize");
}
