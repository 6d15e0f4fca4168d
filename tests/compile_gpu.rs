//! Fixtures compile for the GPU targets: passes, lowering and PTX generation succeed, the
//! plan writes and loads back, and (when `ptxas` can be found: `$PTXAS`, `ptxas` on the
//! PATH, or the CUDA wheel that `scripts/setup.sh` unpacks) every module assembles for its
//! architecture.
//!
//! The default test covers every fixture for the oldest and the newest arch-specific target
//! (sm_80, sm_100a) and every target for the two smallest fixtures; the whole matrix (every
//! fixture × every target, ~5 minutes on two cores) is `every_fixture_for_every_gpu_target`,
//! ignored by default: `cargo test --test compile_gpu -- --ignored`.

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
    dqc_codegen::ptx::tools::find_ptxas()
}

/// Compile the fixtures `only` (all when empty) for `t`, write and load the plan, assemble the
/// PTX; failures as text.
fn check_target(t: &str, only: &[&str], tmp: &Path, ptxas: Option<&Path>) -> Vec<String> {
    let mut failures = Vec::new();
    let target = Target::parse(t).unwrap();
    for model in fixtures() {
        let dir_name = model
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if !only.is_empty() && !only.contains(&dir_name.as_str()) {
            continue;
        }
        let name = model
            .parent()
            .and_then(|p| p.file_name())
            .unwrap()
            .to_string_lossy()
            .to_string();
        let t0 = std::time::Instant::now();
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
        let t1 = std::time::Instant::now();
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
        eprintln!(
            "{name} {t}: compile {:.1} s, ptxas {:.1} s",
            (t1 - t0).as_secs_f64(),
            t1.elapsed().as_secs_f64()
        );
    }
    failures
}

/// Run `jobs` (target, fixtures) on two workers (CI has two cores); all failures.
fn run_jobs(jobs: &[(&str, &[&str])]) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let ptxas = ptxas();
    if ptxas.is_none() {
        eprintln!("note: no ptxas found; PTX is generated but not assembled");
    }
    std::thread::scope(|s| {
        let workers: Vec<_> = [0usize, 1]
            .into_iter()
            .map(|w| {
                let (tmp, ptxas) = (tmp.path(), ptxas.as_deref());
                s.spawn(move || {
                    jobs.iter()
                        .skip(w)
                        .step_by(2)
                        .flat_map(|(t, only)| check_target(t, only, tmp, ptxas))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

#[test]
fn fixtures_compile_for_gpu_targets() {
    const SMALL: &[&str] = &["dit", "gpt2"];
    let mut jobs: Vec<(&str, &[&str])> = vec![("sm_80", &[]), ("sm_100a", &[])];
    jobs.extend(
        GPU_TARGETS
            .iter()
            .filter(|t| !["sm_80", "sm_100a"].contains(t))
            .map(|t| (*t, SMALL)),
    );
    let failures = run_jobs(&jobs);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
#[ignore = "the whole matrix takes ~5 minutes on two cores; run with --ignored"]
fn every_fixture_for_every_gpu_target() {
    let jobs: Vec<(&str, &[&str])> = GPU_TARGETS.iter().map(|t| (*t, &[][..])).collect();
    let failures = run_jobs(&jobs);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The per-family check models the device bundle compiles (`scripts/device/families`,
/// listed in its MANIFEST) compile for sm_90 and sm_100a, and for the CPU, so a broken
/// model is caught here rather than on the GPU machine.
#[test]
fn device_family_models_compile() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/device/families");
    let manifest = std::fs::read_to_string(dir.join("MANIFEST")).unwrap();
    let names: Vec<&str> = manifest
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split('|').next().map(str::trim))
        .collect();
    assert!(names.len() >= 20, "{names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let model = dir.join(format!("{name}.dqc"));
        for t in ["cpu", "sm_90", "sm_100a"] {
            let opts = CompileOptions::new(Target::parse(t).unwrap());
            if let Err(e) = compile_file(&model, &opts) {
                failures.push(format!("{name} for {t}: {e:#}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
