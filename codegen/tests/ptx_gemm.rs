//! PTX of the GEMM family on small specs (see `ptx_util` for what is checked: every target
//! generates and assembles with ptxas), plus checks that the tensor-core paths really use
//! `mma.sync`, `ldmatrix` and `cp.async`, and that the launch configuration matches the tile.
#![cfg(feature = "ptx")]

mod lower_util;
mod ptx_util;

use dqc_codegen::lower::{LowerOptions, lower};
use dqc_codegen::ptx::abi::{Bindings, launch_config};
use dqc_codegen::ptx::compile_program;
use dqc_codegen::ptx::tiles::gemm_tile;
use dqc_codegen::spec::{
    Buffer, BufferKind, Expr, Exprs, Gemm, Kernel, KernelSpec, MatOperand, Program, Term,
};
use dqc_ir::{DType, Dim, Shape, Target};
use lower_util::parse;
use ptx_util::{ALL_TARGETS, assemble, ptx_for, snapshot};

fn text_of(snaps: &[(String, String)], target: &str) -> String {
    snaps
        .iter()
        .find(|(t, _)| t == target)
        .map(|(_, s)| s.clone())
        .unwrap_or_else(|| panic!("no PTX for {target}"))
}

#[test]
fn f32_matmul_transposed_operand_bias_gelu_epilogue() {
    let snaps = ptx_for(
        "graph @g(%x: f32[B,5,6], %w: f32[7,6], %b: f32[7]) -> (f32[B,5,7]) {
          %t = transpose(%w) {perm = [1, 0]}
          %m = matmul(%x, %t)
          %a = add(%m, %b)
          %y = gelu(%a) {approx = erf}
          return %y
        }",
        "gemm",
    );
    let ptx = text_of(&snaps, "sm_90");
    // f32 stays on the FMA path: no tensor cores, no reduced precision.
    assert!(ptx.contains("fma.rn.f32"), "{ptx}");
    assert!(!ptx.contains("mma.sync"), "{ptx}");
}

#[test]
fn f32_batched_matmul_with_broadcast() {
    // %a broadcasts over the leading batch axis (stride 0), %b over the second.
    ptx_for(
        "graph @g(%a: f32[1,3,9,4], %b: f32[2,1,4,10]) -> (f32[2,3,9,10]) {
          %m = matmul(%a, %b)
          return %m
        }",
        "gemm",
    );
}

#[test]
fn bf16_matmul_uses_tensor_cores() {
    let snaps = ptx_for(
        "graph @g(%x: bf16[5,24], %w: bf16[24,3]) -> (bf16[5,3]) {
          %m = matmul(%x, %w)
          return %m
        }",
        "gemm",
    );
    for (t, ptx) in &snaps {
        assert!(
            ptx.contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"),
            "{t}: {ptx}"
        );
        assert!(
            ptx.contains("ldmatrix.sync.aligned.m8n8.x4.shared.b16"),
            "{t}"
        );
        assert!(ptx.contains("cp.async.cg.shared.global"), "{t}");
        // 4 stages: wait until at most 2 groups are pending; 8 warps, 2 blocks per SM
        let flat = ptx.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains("cp.async.wait_group 2;"), "{t}: {ptx}");
        assert!(flat.contains(".maxntid 256 .minnctapersm 2"), "{t}");
    }
    // GEMM kernels are ~20 KB of PTX whatever the spec size, and the three targets differ
    // only in their headers: one snapshot.
    snapshot(
        "gemm_bf16",
        snaps.into_iter().filter(|(t, _)| t == "sm_90").collect(),
    );
}

#[test]
fn row_major_16_bit_b_is_staged_n_major_and_loaded_transposed() {
    // N = 64: rows of B are 128 bytes, so a 16-byte aligned B takes the n-major tile
    // (16-byte cp.async along n) and `ldmatrix.trans` fragments; a k-contiguous B would
    // take the k-major tile and plain `ldmatrix`
    let snaps = ptx_for(
        "graph @g(%x: bf16[5,24], %w: bf16[24,64]) -> (bf16[5,64]) {
          %m = matmul(%x, %w)
          return %m
        }",
        "gemm",
    );
    for (t, ptx) in &snaps {
        assert!(
            ptx.contains("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"),
            "{t}"
        );
        assert!(
            ptx.contains("ldmatrix.sync.aligned.m8n8.x4.shared.b16"),
            "{t}"
        );
    }
}

#[test]
fn f16_matmul_uses_tensor_cores() {
    let snaps = ptx_for(
        "graph @g(%x: f16[2,5,24], %w: f16[2,24,3]) -> (f16[2,5,3]) {
          %m = matmul(%x, %w)
          return %m
        }",
        "gemm",
    );
    let ptx = text_of(&snaps, "sm_80");
    assert!(
        ptx.contains("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"),
        "{ptx}"
    );
}

#[test]
fn int8_matmul_is_exact_on_tensor_cores() {
    let snaps = ptx_for(
        "graph @g(%x: i8[5,40], %w: i8[40,3], %u: u8[5,40], %v: u8[40,3], %p: i32[4,6], %q: i32[6,2]) -> (i32[5,3], i32[5,3], i32[4,2]) {
          %m = matmul(%x, %w)
          %n = matmul(%u, %v)
          %o = matmul(%p, %q)
          return %m, %n, %o
        }",
        "gemm",
    );
    let ptx = text_of(&snaps, "sm_90");
    assert!(
        ptx.contains("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32"),
        "{ptx}"
    );
    assert!(
        ptx.contains("mma.sync.aligned.m16n8k32.row.col.s32.u8.u8.s32"),
        "{ptx}"
    );
    // the exact fallback (long contractions, i32 operands) accumulates in 128 bits
    assert!(ptx.contains("addc"), "{ptx}");
}

/// A single-GEMM program built by hand (the IR rounds every f8 matmul result to f8, which
/// the PTX epilogue cannot store): `out: f32[M, N] = A · B`, A `[M, K]` and B `[K, N]`
/// dense row-major of `dtype`.
fn hand_gemm(dtype: DType, m: u64, n: u64, k: u64) -> Program {
    let buf = |name: &str, dtype: DType, dims: [u64; 2], index: u32, input: bool| Buffer {
        name: name.to_string(),
        dtype,
        shape: Shape(dims.iter().map(|&d| Dim::fixed(d)).collect()),
        kind: if input {
            BufferKind::Input { index }
        } else {
            BufferKind::Output { index }
        },
    };
    let mut exprs = Exprs::new();
    let acc = exprs.push(DType::F32, Expr::Acc);
    let operand = |arg: u32, cols: u64| MatOperand {
        arg,
        offset: vec![],
        batch_strides: vec![],
        row_stride: Term::constant(cols as i64),
        col_stride: Term::constant(1),
    };
    Program {
        symbols: vec![],
        buffers: vec![
            buf("a", dtype, [m, k], 0, true),
            buf("b", dtype, [k, n], 1, true),
            buf("out", DType::F32, [m, n], 0, false),
        ],
        inputs: vec![0, 1],
        outputs: vec![2],
        kernels: vec![KernelSpec {
            name: "mm".to_string(),
            args: vec![0, 1, 2],
            writes: vec![2],
            body: Kernel::Gemm(Gemm {
                batch: Shape(vec![]),
                m: Dim::fixed(m),
                n: Dim::fixed(n),
                k: Dim::fixed(k),
                a: operand(0, k),
                b: operand(1, n),
                in_dtype: dtype,
                acc_dtype: DType::F32,
                alpha: 0.5,
                exprs,
                epilogue: acc,
                out: 2,
            }),
        }],
        arena_bytes: 0,
    }
}

/// PTX of `program` for every target, each assembled by ptxas when available.
fn all_targets(program: &Program) -> Vec<(String, String)> {
    ALL_TARGETS
        .iter()
        .map(|t| {
            let target = Target::parse(t).unwrap();
            let mods = compile_program(program, &target).unwrap_or_else(|e| panic!("{t}: {e}"));
            let text = mods.into_iter().map(|m| m.text).collect::<String>();
            if let Some(r) = assemble(&text, t) {
                r.unwrap_or_else(|e| panic!("ptxas -arch={t}: {e}"));
            }
            (t.to_string(), text)
        })
        .collect()
}

#[test]
fn f8e4m3_gemm_uses_e4m3_mma_only_from_sm_100() {
    let snaps = all_targets(&hand_gemm(DType::F8E4M3, 5, 3, 40));
    let e4m3 = "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32";
    // before sm_100: the SIMT path on decoded values (sm_89/sm_90 have the instruction,
    // but LLVM's default PTX ISA for them predates it)
    for t in ["sm_80", "sm_86", "sm_89", "sm_90", "sm_90a"] {
        assert!(!text_of(&snaps, t).contains("mma.sync"), "{t}");
        assert!(text_of(&snaps, t).contains("fma.rn.f32"), "{t}");
    }
    for t in ["sm_100", "sm_100a", "sm_120"] {
        assert!(text_of(&snaps, t).contains(e4m3), "{t}");
    }
}

#[test]
fn every_float_dtype_generates() {
    for dt in [DType::F8E5M2, DType::Fp4E2M1] {
        all_targets(&hand_gemm(dt, 17, 9, 33));
    }
}

#[test]
fn launch_config_matches_the_tile() {
    let g = parse(
        "graph @g(%x: bf16[B,300,70], %w: bf16[70,260]) -> (bf16[B,300,260]) {
          %m = matmul(%x, %w)
          return %m
        }",
    );
    let l = lower(&g, &LowerOptions::default()).unwrap();
    let target = Target::parse("sm_90").unwrap();
    let mut b = Bindings::new();
    b.insert("B".to_string(), 3);
    let c = launch_config(&l.program, 0, &b, &target).unwrap();
    let t = gemm_tile(DType::BF16, &target);
    assert_eq!(c.grid, [3, 3, 3]); // ⌈260/128⌉, ⌈300/128⌉, B
    assert_eq!(c.block, [t.threads(), 1, 1]);
    assert_eq!(c.block, [256, 1, 1]); // 2 × 4 warps of 64 × 32
    assert_eq!(c.shared_bytes, t.gemm_shared_bytes());
    // 4 stages × (128 A rows + 128 k-major B rows) × (32 bf16 + 16 bytes of padding)
    assert_eq!(c.shared_bytes, 4 * 256 * 80);
    // int8: 256 × 128 tiles, 16 warps, 4 stages × (256 + 128 rows) × (64 + 16 bytes)
    let t8 = gemm_tile(DType::I8, &target);
    assert_eq!((t8.bm, t8.bn, t8.threads()), (256, 128, 512));
    assert_eq!(t8.gemm_shared_bytes(), 4 * 384 * 80);
    // f32 (SIMT) stays within the default 48 KiB of dynamic shared memory
    for dt in [DType::F32, DType::F8E5M2, DType::I32] {
        let s = gemm_tile(dt, &target).gemm_shared_bytes();
        assert!(s <= 48 * 1024, "{dt}: {s}");
    }
}

/// A kernel that declares `.maxntid N` refuses to launch with more than N threads: the
/// launch configuration's block must be exactly what the generator declared, for every
/// operand type of both tensor-core families and every target.
#[test]
fn declared_launch_bounds_match_the_launch_configuration() {
    let models = [
        "graph @g(%x: bf16[B,40,24], %w: bf16[24,64]) -> (bf16[B,40,64]) {
          %m = matmul(%x, %w)
          return %m
        }",
        "graph @g(%x: i8[B,40,64], %w: i8[64,32]) -> (i32[B,40,32]) {
          %m = matmul(%x, %w)
          return %m
        }",
        "graph @g(%q: bf16[B,40,144], %k: bf16[B,40,144], %v: bf16[B,40,144]) -> (bf16[B,40,144]) {
          %o = attention(%q, %k, %v) {heads = 2, kv_heads = 2, scale = none, causal = false, has_mask = false}
          return %o
        }",
        "graph @g(%q: f16[B,40,256], %k: f16[B,40,256], %v: f16[B,40,256]) -> (f16[B,40,256]) {
          %o = attention(%q, %k, %v) {heads = 2, kv_heads = 2, scale = none, causal = true, has_mask = false}
          return %o
        }",
    ];
    let mut b = Bindings::new();
    b.insert("B".to_string(), 2);
    for src in models {
        let program = lower(&parse(src), &LowerOptions::default())
            .unwrap()
            .program;
        let i = program
            .kernels
            .iter()
            .position(|k| matches!(k.body, Kernel::Gemm(_) | Kernel::Attention(_)))
            .unwrap();
        for t in ALL_TARGETS {
            let target = Target::parse(t).unwrap();
            let text: String = compile_program(&program, &target)
                .unwrap()
                .into_iter()
                .map(|m| m.text)
                .collect();
            let declared: u32 = text
                .split(".maxntid")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(|n| n.trim_end_matches(',').parse().unwrap())
                .unwrap_or_else(|| panic!("{t}: no .maxntid in {src}"));
            let c = launch_config(&program, i, &b, &target).unwrap();
            assert_eq!(c.block, [declared, 1, 1], "{t}: {src}");
        }
    }
}
