//! Plan files: round trip, and every kind of bad file refused with a clear error.

mod common;

use common::*;
use dqc_codegen::spec::{BufferKind, Expr, Kernel, Scalar};
use dqc_ir::Target;
use dqc_runtime::plan::{
    PREFIX_LEN, Plan, PlanError, PlanHeader, PrecisionEntry, PtxModule, ValidationError,
    plan_bytes, write_plan,
};

fn err_text(r: Result<Plan, PlanError>) -> String {
    match r {
        Ok(_) => panic!("the plan loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn round_trip_keeps_program_weights_and_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bias.dqcplan");
    let mut parts = parts("cpu", bias_program());
    parts.precision = vec![PrecisionEntry {
        layer: "bias".into(),
        format: "f32".into(),
    }];
    parts.provenance.calibration_sha256 = Some("cd".repeat(32));
    write_plan(&path, &parts, &bias_weights(), &[]).unwrap();
    let plan = Plan::load(&path).unwrap();
    assert_eq!(plan.program(), &bias_program());
    assert_eq!(plan.provenance(), &parts.provenance);
    assert_eq!(plan.signature(), &parts.signature);
    assert_eq!(plan.precision(), parts.precision.as_slice());
    assert_eq!(plan.target().name, "cpu");
    assert!(plan.ptx_modules().is_empty());
    // The -inf constant survives JSON.
    let Kernel::Elementwise(e) = &plan.program().kernels[1].body else {
        panic!("not elementwise")
    };
    assert!(matches!(e.exprs.nodes[3].expr, Expr::Const(Scalar::F(v)) if v == f64::NEG_INFINITY));
    // Weights: equal, aligned, and zero-copy tensors equal too.
    let w = plan.weight_bytes("w").unwrap();
    assert_eq!(w, bias_weights()[0].1.bytes());
    assert_eq!(w.as_ptr() as usize % 64, 0);
    assert_eq!(plan.weight("w").unwrap(), bias_weights()[0].1);
    assert_eq!(plan.weight_names().collect::<Vec<_>>(), vec!["w"]);
    // The same bytes load from memory.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes, plan_bytes(&parts, &bias_weights(), &[]).unwrap());
    let mem = Plan::from_bytes("mem", &bytes).unwrap();
    assert_eq!(mem.program(), plan.program());
    assert_eq!(mem.weight("w").unwrap(), bias_weights()[0].1);
}

#[test]
fn many_weights_of_odd_sizes_all_start_aligned() {
    // Weights of 3, 5 and 7 bytes (packed i4, u8, bool) plus f32: every one 64-aligned.
    let mut p = bias_program();
    let extra = [
        ("a", dqc_ir::DType::I4, vec![5u64]),
        ("b", dqc_ir::DType::U8, vec![5]),
        ("c", dqc_ir::DType::Bool, vec![7]),
    ];
    let mut weights = bias_weights();
    for (n, d, s) in &extra {
        p.buffers.push(buf(
            n,
            *d,
            dqc_ir::Shape::fixed(s),
            BufferKind::Weight {
                name: n.to_string(),
            },
        ));
        let vals: Vec<i64> = (0..s[0] as i64).map(|i| i % 2).collect();
        weights.push((
            n.to_string(),
            dqc_ir::Tensor::from_i64(*d, s.clone(), &vals).unwrap(),
        ));
    }
    let bytes = plan_bytes(&parts("cpu", p), &weights, &[]).unwrap();
    let plan = Plan::from_bytes("mem", &bytes).unwrap();
    for (n, t) in &weights {
        let b = plan.weight_bytes(n).unwrap();
        assert_eq!(b, t.bytes(), "{n}");
        assert_eq!(b.as_ptr() as usize % 64, 0, "{n}");
        assert_eq!(&plan.weight(n).unwrap(), t, "{n}");
    }
}

#[test]
fn describe_lists_kernels_buffers_memory_and_provenance() {
    let plan = Plan::from_bytes("bias.dqcplan", &bias_plan_bytes()).unwrap();
    let d = plan.describe();
    for want in [
        "target cpu",
        "elementwise",
        "bias",
        "scale",
        "weight `w`",
        "arena @0",
        "peak memory: 128 B activation arena + 16 B weights",
        "precision: (no table)",
        &"ab".repeat(32),
        "--target cpu",
        "x: f32[B,4]",
    ] {
        assert!(d.contains(want), "missing {want:?} in\n{d}");
    }
}

#[test]
fn not_a_plan() {
    let e = Plan::from_bytes("f", b"PK\x03\x04 this is a zip").unwrap_err();
    assert!(matches!(e, PlanError::NotAPlan { .. }));
    assert!(e.to_string().contains("not a dqc plan"), "{e}");
    let e = Plan::from_bytes("f", b"abc").unwrap_err();
    assert!(matches!(e, PlanError::NotAPlan { .. }), "{e}");
}

#[test]
fn truncated_plans_say_so_with_sizes() {
    let bytes = bias_plan_bytes();
    let header_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let header_end = PREFIX_LEN + header_len;
    let cases = [
        (0, "fixed prefix"),
        (4, "fixed prefix"),
        (10, "fixed prefix"),
        (30, "fixed prefix"),
        (PREFIX_LEN + 10, "the header"),
        (header_end - 1, "the header"),
        (header_end + 70, "section `weights`"),
        (bytes.len() - 1, "section `ptx`"),
    ];
    for (cut, what) in cases {
        let e = Plan::from_bytes("cut", &bytes[..cut]).unwrap_err();
        let PlanError::Truncated {
            expected, actual, ..
        } = &e
        else {
            panic!("cut at {cut}: {e}");
        };
        let msg = e.to_string();
        assert!(
            msg.contains("truncated") && msg.contains(what),
            "cut at {cut}: {msg}"
        );
        assert_eq!(*actual, cut as u64);
        assert!(*expected > *actual);
        assert!(msg.contains(&expected.to_string()) && msg.contains(&actual.to_string()));
    }
}

#[test]
fn flipped_byte_in_header_is_a_checksum_error() {
    let mut bytes = bias_plan_bytes();
    bytes[PREFIX_LEN + 5] ^= 0x01;
    let e = err_text(Plan::from_bytes("p", &bytes));
    assert!(e.contains("checksum mismatch in the header"), "{e}");
}

#[test]
fn flipped_byte_in_weights_names_the_section() {
    let bytes = bias_plan_bytes();
    let plan = Plan::from_bytes("p", &bytes).unwrap();
    let s = &plan.header().sections[0];
    assert_eq!(s.name, "weights");
    // A byte of the data (the last one) and one of the safetensors header.
    for at in [s.offset + s.length - 1, s.offset + 10] {
        let mut b = bytes.clone();
        b[at as usize] ^= 0x80;
        let e = Plan::from_bytes("p", &b).unwrap_err();
        assert!(
            matches!(&e, PlanError::SectionChecksum { section, .. } if section == "weights"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("checksum mismatch in section `weights`")
        );
    }
}

#[test]
fn flipped_padding_or_trailing_bytes_are_refused() {
    let bytes = bias_plan_bytes();
    let plan = Plan::from_bytes("p", &bytes).unwrap();
    let s = &plan.header().sections[0];
    let header_end = PREFIX_LEN + u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    if (header_end as u64) < s.offset {
        let mut b = bytes.clone();
        b[header_end] = 1;
        let e = err_text(Plan::from_bytes("p", &b));
        assert!(e.contains("padding"), "{e}");
    }
    let mut b = bytes.clone();
    b.push(0);
    let e = err_text(Plan::from_bytes("p", &b));
    assert!(e.contains("1 bytes after the end"), "{e}");
}

#[test]
fn another_format_version_is_refused() {
    let mut bytes = bias_plan_bytes();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let e = Plan::from_bytes("p", &bytes).unwrap_err();
    assert!(matches!(
        e,
        PlanError::Version {
            found: 2,
            supported: 1,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "p: plan format version 2, this runtime reads version 1"
    );
}

#[test]
fn plan_for_another_target_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpu.dqcplan");
    let ptx = [PtxModule {
        name: "m".into(),
        target: "sm_90a".into(),
        text: ".version 8.0".into(),
    }];
    write_plan(&path, &parts("sm_90a", add_program()), &[], &ptx).unwrap();
    let plan = Plan::load(&path).unwrap();
    assert_eq!(plan.ptx_modules(), &ptx);
    let e = Plan::load_for_target(&path, &Target::cpu()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PlanError::WrongTarget { .. }));
    assert!(msg.contains("`sm_90a`") && msg.contains("`cpu`"), "{msg}");
    assert!(Plan::load_for_target(&path, &Target::parse("sm_90a").unwrap()).is_ok());
}

#[test]
fn unknown_target_and_misplaced_ptx_are_refused_at_write() {
    let e = plan_bytes(&parts("sm_75", add_program()), &[], &[]).unwrap_err();
    assert!(e.to_string().contains("sm_75"), "{e}");
    let ptx = [PtxModule {
        name: "m".into(),
        target: "sm_80".into(),
        text: String::new(),
    }];
    let e = plan_bytes(&parts("cpu", add_program()), &[], &ptx).unwrap_err();
    assert!(matches!(e, ValidationError::Ptx { .. }), "{e}");
    let e = plan_bytes(&parts("sm_90", add_program()), &[], &ptx).unwrap_err();
    assert!(
        e.to_string().contains("`sm_80`") && e.to_string().contains("`sm_90`"),
        "{e}"
    );
}

/// Re-encode a plan after editing its header, with valid checksums, so that the
/// program validation (not the checksum) is what refuses it.
fn with_header(edit: impl FnOnce(&mut PlanHeader)) -> Vec<u8> {
    let bytes = bias_plan_bytes();
    let header_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let mut h: PlanHeader =
        serde_json::from_slice(&bytes[PREFIX_LEN..PREFIX_LEN + header_len]).unwrap();
    let sections: Vec<Vec<u8>> = h
        .sections
        .iter()
        .map(|s| bytes[s.offset as usize..(s.offset + s.length) as usize].to_vec())
        .collect();
    edit(&mut h);
    // Place the sections after the (possibly longer) header; the offsets change the
    // header's length, so iterate to a fixed point.
    let mut hb2 = serde_json::to_vec(&h).unwrap();
    for _ in 0..8 {
        let mut at = (PREFIX_LEN + hb2.len()) as u64;
        for s in h.sections.iter_mut() {
            s.offset = at.next_multiple_of(64);
            at = s.offset + s.length;
        }
        hb2 = serde_json::to_vec(&h).unwrap();
    }
    let probe = h;
    let mut out = Vec::new();
    out.extend_from_slice(b"DQCPLAN\0");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(hb2.len() as u64).to_le_bytes());
    use sha2::Digest;
    out.extend_from_slice(sha2::Sha256::digest(&hb2).as_slice());
    out.extend_from_slice(&hb2);
    for (s, data) in probe.sections.iter().zip(&sections) {
        out.resize(s.offset as usize, 0);
        out.extend_from_slice(data);
    }
    out
}

#[test]
fn invalid_programs_are_refused_naming_what_is_wrong() {
    type Edit = Box<dyn FnOnce(&mut PlanHeader)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "refers to buffer 99",
            Box::new(|h| h.program.kernels[0].args[0] = 99),
        ),
        (
            "writes argument 7",
            Box::new(|h| h.program.kernels[0].writes = vec![7]),
        ),
        (
            "does not precede",
            Box::new(|h| {
                if let Kernel::Elementwise(e) = &mut h.program.kernels[0].body {
                    e.exprs.nodes.swap(0, 2);
                }
            }),
        ),
        (
            "ends past the arena",
            Box::new(|h| h.program.arena_bytes = 100),
        ),
        (
            "weight `w`",
            Box::new(|h| h.program.buffers[1].shape = dqc_ir::Shape::fixed(&[5])),
        ),
        (
            "program.inputs[0]",
            Box::new(|h| h.program.inputs = vec![2]),
        ),
        (
            "read-only buffer `x`",
            Box::new(|h| h.program.kernels[0].args[2] = 0),
        ),
        (
            "does not declare",
            Box::new(|h| h.program.buffers[2].shape = dqc_ir::Shape(vec!["N".into(), 4.into()])),
        ),
        (
            "writes argument 1 and reads argument 0, which share storage",
            Box::new(|h| h.program.kernels[1].args = vec![2, 2]),
        ),
        (
            "alias links form a cycle",
            Box::new(|h| {
                h.program.buffers[2].kind = BufferKind::Alias { base: 2 };
            }),
        ),
        (
            "runs kernel 5, but the program has 2 kernels",
            Box::new(|h| {
                h.schedule.push(dqc_runtime::plan::ScheduleStep {
                    name: "s".into(),
                    kernels: vec![0, 5],
                    bindings: Default::default(),
                })
            }),
        ),
        (
            "source_sha256",
            Box::new(|h| h.provenance.source_sha256 = "xyz".into()),
        ),
        (
            "appears in no input shape",
            Box::new(|h| h.program.symbols[0].name = "N".into()),
        ),
        (
            "unknown target `tpu`",
            Box::new(|h| h.target = "tpu".into()),
        ),
        (
            "signature",
            Box::new(|h| h.signature.inputs[0].dtype = dqc_ir::DType::F16),
        ),
        ("non-finite constant", Box::new(|h| h.nonfinite[0].node = 0)),
    ];
    for (want, edit) in cases {
        let e = err_text(Plan::from_bytes("p", &with_header(edit)));
        assert!(e.contains(want), "expected {want:?} in: {e}");
    }
    // The unedited re-encoding loads (so the refusals above come from the edits).
    assert!(Plan::from_bytes("p", &with_header(|_| {})).is_ok());
}

#[test]
fn weights_must_match_the_program() {
    let p = parts("cpu", bias_program());
    let e = plan_bytes(&p, &[], &[]).unwrap_err().to_string();
    assert!(
        e.contains("weight `w`") && e.contains("no such tensor"),
        "{e}"
    );
    let wrong = vec![("w".to_string(), f32_tensor(vec![2, 2], &[0.0; 4]))];
    let e = plan_bytes(&p, &wrong, &[]).unwrap_err().to_string();
    assert!(e.contains("f32[2,2]") && e.contains("f32[4]"), "{e}");
    let mut extra = bias_weights();
    extra.push(("unused".into(), f32_tensor(vec![1], &[0.0])));
    let e = plan_bytes(&p, &extra, &[]).unwrap_err().to_string();
    assert!(e.contains("`unused`") && e.contains("no buffer"), "{e}");
}

#[test]
fn failed_write_leaves_the_existing_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.dqcplan");
    write_plan(&path, &parts("cpu", bias_program()), &bias_weights(), &[]).unwrap();
    let before = std::fs::read(&path).unwrap();
    // Invalid contents: refused before anything is written.
    let e = write_plan(&path, &parts("cpu", bias_program()), &[], &[]).unwrap_err();
    assert!(matches!(e, PlanError::Invalid { .. }), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // An I/O failure at the rename (the target is a non-empty directory): the temporary
    // file is removed.
    let blocker = dir.path().join("blocked.dqcplan");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("keep"), b"x").unwrap();
    let e = write_plan(
        &blocker,
        &parts("cpu", bias_program()),
        &bias_weights(),
        &[],
    );
    assert!(matches!(e, Err(PlanError::Io { .. })), "{e:?}");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "left behind: {names:?}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Overwriting with a valid plan works and is loadable.
    write_plan(&path, &parts("cpu", add_program()), &[], &[]).unwrap();
    assert_eq!(Plan::load(&path).unwrap().program(), &add_program());
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let e = Plan::load("/nonexistent/x.dqcplan").unwrap_err();
    assert!(matches!(e, PlanError::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/x.dqcplan"));
}
