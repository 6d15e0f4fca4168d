//! Every fixture compiles for every GPU target: passes, lowering and PTX generation succeed,
//! the plan writes and loads back, and (when `ptxas` can be found: `$PTXAS`, `ptxas` on the
//! PATH, or the CUDA wheel that `scripts/setup.sh` unpacks) every module assembles for its
//! architecture.

use dqc::driver::{CompileOptions, compile_file};
use dqc_ir::Target;
use dqc_runtime::plan::{Plan, write_plan};
use std::path::{Path, PathBuf};
use std::process::Command;

const GPU_TARGETS: [&str; 8] = [
    "sm_80", "sm_86", "sm_89", "sm_90", "sm_90a", "sm_100", "sm_100a", "sm_120",
];

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("model.onnx"))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// `ptxas`, if this machine has one.
pub fn ptxas() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PTXAS") {
        return Some(PathBuf::from(p));
    }
    let candidates = [
        PathBuf::from("/opt/cuda-nvcc/nvidia/cu13/bin/ptxas"),
        PathBuf::from("/usr/local/cuda/bin/ptxas"),
    ];
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return Some(p.clone());
    }
    Command::new("ptxas")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("ptxas"))
}

/// Compile every fixture for `t`, write and load the plan, assemble the PTX; failures as text.
fn check_target(t: &str, tmp: &Path, ptxas: Option<&Path>) -> Vec<String> {
    let mut failures = Vec::new();
    let target = Target::parse(t).unwrap();
    for model in fixtures() {
        let name = model
            .parent()
            .and_then(|p| p.file_name())
            .unwrap()
            .to_string_lossy()
            .to_string();
        let compiled = match compile_file(&model, &CompileOptions::new(target)) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name} {t}: {e:#}"));
                continue;
            }
        };
        assert!(!compiled.ptx.is_empty(), "{name} {t}: no PTX");
        let plan = tmp.join(format!("{name}-{t}.dqcplan"));
        write_plan(
            &plan,
            &compiled.parts,
            &compiled.lowered.weights,
            &compiled.ptx,
        )
        .unwrap();
        let loaded = Plan::load(&plan).unwrap();
        assert_eq!(loaded.ptx_modules().len(), compiled.ptx.len());
        let Some(ptxas) = ptxas else { continue };
        for m in &compiled.ptx {
            let f = tmp.join(format!("{name}-{t}-{}.ptx", m.name));
            std::fs::write(&f, &m.text).unwrap();
            let out = Command::new(ptxas)
                .arg(format!("-arch={t}"))
                .arg("-o")
                .arg(tmp.join(format!("{name}-{t}-{}.cubin", m.name)))
                .arg(&f)
                .output()
                .unwrap();
            if !out.status.success() {
                failures.push(format!(
                    "{name} {t} module {}: ptxas: {}",
                    m.name,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    failures
}

#[test]
fn every_fixture_compiles_for_every_gpu_target() {
    let tmp = tempfile::tempdir().unwrap();
    let ptxas = ptxas();
    if ptxas.is_none() {
        eprintln!("note: no ptxas found; PTX is generated but not assembled");
    }
    // two workers (CI has two cores), each a share of the targets
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = [0usize, 1]
            .into_iter()
            .map(|w| {
                let (tmp, ptxas) = (tmp.path(), ptxas.as_deref());
                s.spawn(move || {
                    GPU_TARGETS
                        .iter()
                        .skip(w)
                        .step_by(2)
                        .flat_map(|t| check_target(t, tmp, ptxas))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
