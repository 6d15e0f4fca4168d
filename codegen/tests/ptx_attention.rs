//! PTX of the attention family (see `ptx_util` for what is checked: every target generated
//! and assembled by ptxas; snapshots for sm_80 / sm_90 / sm_100a), the structure of the
//! generated code (tensor cores for f16 / bf16, `cp.async`, exact f32 path), launch
//! configurations from the tile table, and refusals.
#![cfg(feature = "ptx")]

mod lower_util;
mod ptx_util;

use dqc_codegen::lower::{LowerOptions, lower};
use dqc_codegen::ptx::abi::{Bindings, launch_config};
use dqc_codegen::ptx::compile_program;
use dqc_codegen::ptx::tiles::{attention_tile, gemm_tile};
use dqc_codegen::spec::Kernel;
use dqc_ir::{DType, Target};
use lower_util::parse;
use ptx_util::{ptx_for, snapshot};

/// The attention module's PTX of `src` on one target.
fn attention_ptx(src: &str, target: &str) -> String {
    let lowered = lower(&parse(src), &LowerOptions::default()).unwrap();
    let t = Target::parse(target).unwrap();
    compile_program(&lowered.program, &t)
        .unwrap()
        .into_iter()
        .find(|m| m.module == "attention")
        .map(|m| m.text)
        .expect("an attention module")
}

const F32_D64: &str = "graph @g(%q: f32[B,S,128], %k: f32[B,T,64], %v: f32[B,T,64]) -> (f32[B,S,128]) {
  %a = attention(%q, %k, %v) {heads = 2, kv_heads = 1, scale = none, causal = false, has_mask = false}
  return %a
}";

const BF16_D72: &str = "graph @g(%q: bf16[B,S,144], %k: bf16[B,T,144], %v: bf16[B,T,144]) -> (bf16[B,S,144]) {
  %a = attention(%q, %k, %v) {heads = 2, kv_heads = 2, scale = none, causal = false, has_mask = false}
  return %a
}";

#[test]
fn f32_non_causal_head_dim_64() {
    let snaps = ptx_for(F32_D64, "attention");
    for (t, text) in &snaps {
        if let Ok(dir) = std::env::var("DQC_DUMP_PTX") {
            std::fs::write(format!("{dir}/attention_f32_d64_{t}.ptx"), text).unwrap();
        }
        // exact f32: FMA dot products, no tensor-core instruction, shared-memory tiles
        assert!(text.contains("fma.rn.f32"), "{t}");
        assert!(!text.contains("mma.sync"), "{t}");
        assert!(text.contains("ld.shared.v4"), "{t}: float4 shared reads");
        assert!(text.contains("bar.sync"), "{t}");
        assert!(
            text.contains("shfl.sync.bfly"),
            "{t}: row sums over the lanes of a row"
        );
    }
}

#[test]
fn small_snapshots() {
    // head dim 16, one head: small enough to read
    for dt in ["f32", "bf16"] {
        let src = format!(
            "graph @g(%q: {dt}[B,S,16], %k: {dt}[B,T,16], %v: {dt}[B,T,16]) -> ({dt}[B,S,16]) {{
              %a = attention(%q, %k, %v) {{heads = 1, kv_heads = 1, scale = none, causal = true, has_mask = false}}
              return %a
            }}"
        );
        let snaps = ptx_for(&src, "attention");
        if dt == "bf16" {
            for (t, text) in &snaps {
                assert!(text.contains("mma.sync.aligned.m16n8k16"), "{t}");
            }
        }
        snapshot(&format!("attention_{dt}_d16_causal"), snaps);
    }
}

#[test]
fn f32_causal_on_a_split_projection() {
    // q, k, v are strided views of one projection (seq stride 384)
    let snaps = ptx_for(
        "graph @g(%x: f32[2,S,384]) -> (f32[2,S,128]) {
          %q, %k, %v = split(%x) {axis = 2, sizes = [128, 128, 128]}
          %a = attention(%q, %k, %v) {heads = 2, kv_heads = 2, scale = 0.125, causal = true, has_mask = false}
          return %a
        }",
        "attention",
    );
    assert_eq!(snaps.len(), 3);
}

#[test]
fn f32_with_bool_and_float_masks() {
    for mask in ["bool[S,T]", "f32[B,1,S,T]", "f16[T]"] {
        let src = format!(
            "graph @g(%q: f32[B,S,64], %k: f32[B,T,64], %v: f32[B,T,32], %m: {mask}) -> (f32[B,S,32]) {{
              %a = attention(%q, %k, %v, %m) {{heads = 1, kv_heads = 1, scale = none, causal = true, has_mask = true}}
              return %a
            }}"
        );
        let snaps = ptx_for(&src, "attention");
        assert_eq!(snaps.len(), 3, "{mask}");
    }
}

#[test]
fn bf16_head_dim_72_on_tensor_cores() {
    let snaps = ptx_for(BF16_D72, "attention");
    for (t, text) in &snaps {
        assert!(
            text.contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"),
            "{t}"
        );
        assert!(
            text.contains("cp.async.cg.shared.global"),
            "{t}: aligned tiles by cp.async"
        );
        assert!(text.contains("cp.async.wait_group"), "{t}");
        assert!(text.contains("ex2.approx"), "{t}");
    }
}

#[test]
fn f16_causal_head_dim_128_and_differing_value_dim() {
    let snaps = ptx_for(
        "graph @g(%q: f16[B,S,256], %k: f16[B,T,128], %v: f16[B,T,64]) -> (f16[B,S,64]) {
          %a = attention(%q, %k, %v) {heads = 2, kv_heads = 1, scale = none, causal = true, has_mask = false}
          return %a
        }",
        "attention",
    );
    for (t, text) in &snaps {
        assert!(
            text.contains("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"),
            "{t}"
        );
    }
}

#[test]
fn bf16_odd_head_dim_uses_element_copies() {
    // head dim 20: not a multiple of 8, so no 16-byte chunks — scalar tile copies only
    let ptx = attention_ptx(
        "graph @g(%q: bf16[1,S,20], %k: bf16[1,T,20], %v: bf16[1,T,20], %m: f32[S,T]) -> (bf16[1,S,20]) {
          %a = attention(%q, %k, %v, %m) {heads = 1, kv_heads = 1, scale = none, causal = false, has_mask = true}
          return %a
        }",
        "sm_90",
    );
    assert!(ptx.contains("mma.sync.aligned.m16n8k16"));
    assert!(!ptx.contains("cp.async"));
}

#[test]
fn head_dim_256_generates_and_assembles() {
    for dt in ["f32", "bf16"] {
        let src = format!(
            "graph @g(%q: {dt}[1,S,256], %k: {dt}[1,T,256], %v: {dt}[1,T,256]) -> ({dt}[1,S,256]) {{
              %a = attention(%q, %k, %v) {{heads = 1, kv_heads = 1, scale = none, causal = true, has_mask = false}}
              return %a
            }}"
        );
        let snaps = ptx_for(&src, "attention");
        assert_eq!(snaps.len(), 3, "{dt}");
    }
}

#[test]
fn head_dim_above_256_is_refused() {
    let g = parse(
        "graph @g(%q: f32[1,4,320], %k: f32[1,4,320], %v: f32[1,4,320]) -> (f32[1,4,320]) {
          %a = attention(%q, %k, %v) {heads = 1, kv_heads = 1, scale = none, causal = false, has_mask = false}
          return %a
        }",
    );
    let lowered = lower(&g, &LowerOptions::default()).unwrap();
    let err = compile_program(&lowered.program, &Target::parse("sm_90").unwrap()).unwrap_err();
    assert!(err.to_string().contains("head dimension 320"), "{err}");
}

fn bindings(pairs: &[(&str, u64)]) -> Bindings {
    pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
}

#[test]
fn launch_configurations_follow_the_tile_table() {
    let f32_prog = lower(&parse(F32_D64), &LowerOptions::default())
        .unwrap()
        .program;
    let bf16_prog = lower(&parse(BF16_D72), &LowerOptions::default())
        .unwrap()
        .program;
    let b = bindings(&[("B", 3), ("S", 100), ("T", 7)]);
    let idx = |p: &dqc_codegen::spec::Program| {
        p.kernels
            .iter()
            .position(|k| matches!(k.body, Kernel::Attention(_)))
            .unwrap()
    };
    let h100 = Target::parse("sm_90").unwrap();
    // f32, D = 64: 4 lanes per row, 32 rows per block, K and V tiles of 32 × 64 f32
    let c = launch_config(&f32_prog, idx(&f32_prog), &b, &h100).unwrap();
    assert_eq!(c.grid, [4, 2, 3]); // ⌈100 / 32⌉, heads, batch
    assert_eq!(c.block, [128, 1, 1]);
    assert_eq!(c.shared_bytes, 2 * 32 * 64 * 4);
    // bf16, D = 72 → dpad 80: 128 queries, 4 warps × 2 m-tiles of 16 rows, 64 keys per
    // tile, rows of 160 + 16 bytes, K and V tiles double-buffered
    let c = launch_config(&bf16_prog, idx(&bf16_prog), &b, &h100).unwrap();
    assert_eq!(c.grid, [1, 2, 3]);
    assert_eq!(c.block, [128, 1, 1]);
    assert_eq!(c.shared_bytes, 2 * 2 * 64 * 176);
    // consumer parts take 64 queries (2 warps) and half the keys per tile at this head dim
    let ada = Target::parse("sm_89").unwrap();
    let c = launch_config(&bf16_prog, idx(&bf16_prog), &b, &ada).unwrap();
    assert_eq!(c.block, [64, 1, 1]);
    assert_eq!(c.shared_bytes, 2 * 2 * 32 * 176);
}

/// Dynamic shared memory one block may opt into on the smallest part of each family
/// (sm_86 / sm_89 / sm_120: 99 KiB; sm_80: 163 KiB; sm_90+: 227 KiB).
fn shared_optin_limit(target: &str) -> u32 {
    match target {
        "sm_86" | "sm_89" | "sm_120" => 99 * 1024,
        "sm_80" => 163 * 1024,
        _ => 227 * 1024,
    }
}

#[test]
fn gemm_tiles_fit_each_targets_shared_memory() {
    for t in ptx_util::ALL_TARGETS {
        let target = Target::parse(t).unwrap();
        for dt in [
            DType::F32,
            DType::F16,
            DType::BF16,
            DType::I8,
            DType::F8E4M3,
        ] {
            let tile = gemm_tile(dt, &target);
            assert!(
                tile.gemm_shared_bytes() <= shared_optin_limit(t),
                "{t} {dt}: {tile:?} needs {} B",
                tile.gemm_shared_bytes()
            );
            assert!(tile.threads() <= 1024 && tile.threads().is_multiple_of(32));
        }
    }
}

#[test]
fn tile_table_fits_each_targets_shared_memory() {
    for t in ptx_util::ALL_TARGETS {
        let target = Target::parse(t).unwrap();
        for dt in [DType::F32, DType::F16, DType::BF16] {
            for d in 1..=256u64 {
                let tile = attention_tile(d, dt, &target);
                assert!(
                    tile.shared_bytes() <= shared_optin_limit(t),
                    "{t} {dt} d={d}: {tile:?}"
                );
                assert!(tile.dpad as u64 >= d, "{t} {dt} d={d}: {tile:?}");
                assert!(
                    tile.threads() <= 256 && tile.threads().is_multiple_of(32),
                    "{tile:?}"
                );
                if tile.tensor_cores() {
                    assert!(tile.dpad.is_multiple_of(16));
                    assert!(tile.bq.is_multiple_of(16 * tile.m_tiles));
                    assert!(tile.bk.is_multiple_of(16));
                } else {
                    assert!(tile.dpad.is_multiple_of(4 * tile.row_lanes));
                    assert!((tile.bk * tile.dpad).is_multiple_of(tile.threads()));
                }
            }
        }
    }
}
