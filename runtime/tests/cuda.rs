//! The CUDA executor. Without a GPU (this build machine): a GPU plan gives a clear
//! "no driver" error instead of a crash. With one (`#[ignore]`d here; the device check
//! runs them with `--ignored`): hand-written PTX that follows the `dqc_codegen::ptx::abi`
//! contract runs, faults and launch failures are reported, newer architectures refused.
#![cfg(feature = "cuda")]

mod common;

use common::*;
use dqc_ir::target::{TARGETS, TargetKind};
use dqc_runtime::gpu::driver_available;
use dqc_runtime::plan::{Plan, PtxModule, plan_bytes};
use dqc_runtime::{Device, RuntimeError, Session};

/// PTX of `bias_program`'s two kernels: `t = x + w` (w broadcast over rows of 4) and
/// `out = 2·t`. `fault` makes the second kernel store the gather fault of kernel 1;
/// `maxntid` caps the first kernel's block size (so a 256-thread launch fails).
fn bias_ptx(fault: bool, maxntid: Option<u32>) -> String {
    let cap = maxntid.map_or(String::new(), |n| format!(".maxntid {n}, 1, 1"));
    let fault_code = if fault {
        "    setp.ne.u64 %p2, %rd5, 0;\n    @%p2 bra SKIP;\n    ld.param.u64 %rd9, [p_fault];\n    cvta.to.global.u64 %rd9, %rd9;\n    atom.global.cas.b32 %r5, [%rd9], 0, 257;\nSKIP:\n"
    } else {
        ""
    };
    format!(
        r#".version 7.0
.target sm_80
.address_size 64

.visible .entry dqc_k0(
    .param .u64 p_fault, .param .u32 p_kernel, .param .u64 p_x, .param .u64 p_w, .param .u64 p_t, .param .u64 p_B
) {cap}
{{
    .reg .pred %p<3>;
    .reg .b32 %r<6>;
    .reg .b64 %rd<12>;
    .reg .f32 %f<4>;
    ld.param.u64 %rd1, [p_x];
    ld.param.u64 %rd2, [p_w];
    ld.param.u64 %rd3, [p_t];
    ld.param.u64 %rd4, [p_B];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    cvta.to.global.u64 %rd3, %rd3;
    mov.u32 %r1, %ctaid.x;
    mov.u32 %r2, %ntid.x;
    mov.u32 %r3, %tid.x;
    mad.lo.u32 %r4, %r1, %r2, %r3;
    cvt.u64.u32 %rd5, %r4;
    shl.b64 %rd6, %rd4, 2;
    setp.ge.u64 %p1, %rd5, %rd6;
    @%p1 bra DONE;
    shl.b64 %rd7, %rd5, 2;
    add.u64 %rd8, %rd1, %rd7;
    ld.global.f32 %f1, [%rd8];
    and.b64 %rd9, %rd5, 3;
    shl.b64 %rd9, %rd9, 2;
    add.u64 %rd10, %rd2, %rd9;
    ld.global.f32 %f2, [%rd10];
    add.f32 %f3, %f1, %f2;
    add.u64 %rd11, %rd3, %rd7;
    st.global.f32 [%rd11], %f3;
DONE:
    ret;
}}

.visible .entry dqc_k1(
    .param .u64 p_fault, .param .u32 p_kernel, .param .u64 p_t, .param .u64 p_out, .param .u64 p_B
)
{{
    .reg .pred %p<3>;
    .reg .b32 %r<6>;
    .reg .b64 %rd<12>;
    .reg .f32 %f<4>;
    ld.param.u64 %rd1, [p_t];
    ld.param.u64 %rd2, [p_out];
    ld.param.u64 %rd4, [p_B];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r1, %ctaid.x;
    mov.u32 %r2, %ntid.x;
    mov.u32 %r3, %tid.x;
    mad.lo.u32 %r4, %r1, %r2, %r3;
    cvt.u64.u32 %rd5, %r4;
{fault_code}    shl.b64 %rd6, %rd4, 2;
    setp.ge.u64 %p1, %rd5, %rd6;
    @%p1 bra DONE;
    shl.b64 %rd7, %rd5, 2;
    add.u64 %rd8, %rd1, %rd7;
    ld.global.f32 %f1, [%rd8];
    add.f32 %f2, %f1, %f1;
    add.u64 %rd10, %rd2, %rd7;
    st.global.f32 [%rd10], %f2;
DONE:
    ret;
}}
"#
    )
}

fn bias_gpu_plan(target: &str, ptx_text: String) -> Plan {
    let ptx = [PtxModule {
        name: "elementwise".into(),
        target: target.into(),
        text: ptx_text,
    }];
    let bytes = plan_bytes(&parts(target, bias_program()), &bias_weights(), &ptx).unwrap();
    Plan::from_bytes("bias-gpu.dqcplan", &bytes).unwrap()
}

fn expected(xs: &[f32]) -> Vec<f32> {
    xs.iter()
        .zip([1., -2., 0.5, 3.].iter().cycle())
        .map(|(x, w)| 2.0 * (x + w))
        .collect()
}

#[test]
fn no_driver_is_a_clear_error_not_a_crash() {
    match driver_available() {
        Err(RuntimeError::NoDriver { detail }) => {
            assert!(
                detail.contains("libcuda") || detail.contains("driver"),
                "{detail}"
            );
            let plan = bias_gpu_plan("sm_90", bias_ptx(false, None));
            let e = Session::new(&plan).unwrap_err();
            assert!(matches!(e, RuntimeError::NoDriver { .. }), "{e}");
            assert!(e.to_string().starts_with("no usable CUDA driver: "), "{e}");
            // The CPU still runs the GPU plan's program.
            let s = Session::on_device(&plan, Device::Cpu).unwrap();
            let xs = [0., 1., 2., 3., 4., 5., 6., 7.];
            let out = s.run(&[("x", &f32_tensor(vec![2, 4], &xs))]).unwrap();
            assert_eq!(out[0].1.to_f32_vec(), expected(&xs));
        }
        // A machine with a driver but no GPU: cuInit fails with the driver's message.
        Err(RuntimeError::Driver { call, .. }) => assert!(call.contains("cuInit"), "{call}"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(()) => {}
    }
}

#[test]
fn cpu_plans_do_not_run_on_the_gpu() {
    let bytes = plan_bytes(&parts("cpu", add_program()), &[], &[]).unwrap();
    let plan = Plan::from_bytes("add", &bytes).unwrap();
    let e = Session::on_device(&plan, Device::Cuda(0)).unwrap_err();
    assert!(matches!(e, RuntimeError::NotGpuPlan), "{e}");
}

/// A GPU session of the bias plan for `sm_80` (runs on every GPU the project targets).
fn gpu_session(ptx: String) -> Result<Session, RuntimeError> {
    Session::new(&bias_gpu_plan("sm_80", ptx))
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_runs_hand_written_ptx() {
    let s = gpu_session(bias_ptx(false, None)).unwrap();
    assert!(s.is_gpu());
    eprintln!("device: {}", s.device_description());
    for b in [2u64, 5, 3, 8] {
        let xs: Vec<f32> = (0..b * 4).map(|i| i as f32 * 0.25 - 1.0).collect();
        let x = f32_tensor(vec![b, 4], &xs);
        let out = s.run(&[("x", &x)]).unwrap();
        assert_eq!(out[0].0, "out");
        assert_eq!(out[0].1.shape(), &[b, 4]);
        assert_eq!(out[0].1.to_f32_vec(), expected(&xs), "B = {b}");
    }
    let x = f32_tensor(vec![8, 4], &[1.0; 32]);
    for graph in [false, true] {
        let ms = s.time_device(&[("x", &x)], 2, 5, graph).unwrap().unwrap();
        assert_eq!(ms.len(), 5);
        assert!(ms.iter().all(|&t| t > 0.0 && t < 1000.0), "{ms:?}");
    }
    // Still correct after the timed replays.
    let out = s.run(&[("x", &x)]).unwrap();
    assert_eq!(out[0].1.to_f32_vec(), expected(&[1.0; 32]));
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_fault_word_becomes_an_error() {
    let s = gpu_session(bias_ptx(true, None)).unwrap();
    let e = s
        .run(&[("x", &f32_tensor(vec![1, 4], &[0.0; 4]))])
        .unwrap_err();
    assert!(matches!(e, RuntimeError::Fault { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "kernel 1 `scale` (elementwise): a gather index is out of range"
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_launch_failure_names_the_kernel_and_configuration() {
    let s = gpu_session(bias_ptx(false, Some(32))).unwrap();
    let e = s
        .run(&[("x", &f32_tensor(vec![1, 4], &[0.0; 4]))])
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RuntimeError::Launch { index: 0, .. }), "{msg}");
    assert!(
        msg.contains("kernel #0 `bias` (elementwise, grid (1, 1, 1) block (256, 1, 1) shared 0 B)"),
        "{msg}"
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_bad_ptx_reports_the_jit_log() {
    let bad = bias_ptx(false, None).replace("add.f32 %f3, %f1, %f2;", "add.f32 %f3, %f1, %nope;");
    let e = gpu_session(bad).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RuntimeError::PtxLoad { .. }), "{msg}");
    assert!(
        msg.contains("`elementwise`") && msg.contains("JIT log"),
        "{msg}"
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_missing_module_is_named() {
    let bytes = plan_bytes(&parts("sm_80", bias_program()), &bias_weights(), &[]).unwrap();
    let plan = Plan::from_bytes("no-ptx", &bytes).unwrap();
    let e = Session::new(&plan).unwrap_err().to_string();
    assert_eq!(
        e,
        "kernel #0 `bias`: the plan has no PTX module `elementwise`"
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_refuses_a_plan_for_a_newer_architecture() {
    let s = gpu_session(bias_ptx(false, None)).unwrap();
    let dev = s.gpu().unwrap().clone();
    let newer = TARGETS.iter().find(|t| {
        matches!(t.kind, TargetKind::Cuda { major, arch_specific: false, .. } if major > dev.major)
    });
    let Some(newer) = newer else {
        eprintln!("no target newer than {} to test with", dev.sm());
        return;
    };
    let e = Session::new(&bias_gpu_plan(newer.name, bias_ptx(false, None)))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "plan targets {} but the GPU is {} (",
            newer.name,
            dev.sm()
        )),
        "{e}"
    );
}

/// The hand-written PTX above is valid (checked with `ptxas` where the CUDA toolkit is
/// installed, as on the build machine; elsewhere there is nothing to check it with).
#[test]
fn hand_written_ptx_assembles() {
    let ptxas = dqc_codegen::ptx::tools::find_ptxas();
    let Some(ptxas) = ptxas else {
        eprintln!("ptxas not found: skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (i, text) in [
        bias_ptx(false, None),
        bias_ptx(true, None),
        bias_ptx(false, Some(32)),
    ]
    .iter()
    .enumerate()
    {
        let f = dir.path().join(format!("v{i}.ptx"));
        std::fs::write(&f, text).unwrap();
        for arch in ["sm_80", "sm_90"] {
            let out = std::process::Command::new(&ptxas)
                .arg(format!("-arch={arch}"))
                .arg("-o")
                .arg(dir.path().join("out.cubin"))
                .arg(&f)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "variant {i} for {arch}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn sessions_stay_send_and_sync_with_the_cuda_executor() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Session>();
}
