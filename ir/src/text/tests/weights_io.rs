//! `.dqc` + `.safetensors` files: write, read back mapped and bit-exact; refusals.

use std::path::{Path, PathBuf};

use super::fixtures::assert_same;
use crate::DType;
use crate::graph::{Graph, Value};
use crate::op::{BinaryOp, Op};
use crate::shape::{Shape, TensorType};
use crate::tensor::{Storage, Tensor};
use crate::text::{
    SafetensorsWeights, TextError, WeightStore, WeightsError, print, read_model, write_model,
    write_safetensors,
};

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("dqc-text-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes.
fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 24) as u8
        })
        .collect()
}

fn big_constants() -> Vec<Tensor> {
    let mk = |d: DType, shape: Vec<u64>, seed: u32| {
        let n: u64 = shape.iter().product();
        let mut b = bytes(d.storage_bytes(n as usize), seed);
        if d == DType::Bool {
            b.iter_mut().for_each(|x| *x &= 1);
        }
        if d.is_packed()
            && n % 2 == 1
            && let Some(l) = b.last_mut()
        {
            *l &= 0x0f;
        }
        Tensor::from_bytes(d, shape, b.into()).expect("sized")
    };
    vec![
        mk(DType::F32, vec![16, 16], 1),
        mk(DType::I4, vec![7, 5], 2),
        mk(DType::Fp4E2M1, vec![33], 3),
        mk(DType::Bool, vec![10], 4),
        mk(DType::F8E4M3, vec![2, 8], 5),
        mk(DType::F8E5M2, vec![9], 6),
        mk(DType::BF16, vec![3, 3], 7),
        mk(DType::I64, vec![6], 8),
        mk(DType::U8, vec![12], 9),
    ]
}

fn model() -> Graph {
    let mut g = Graph::new("weights test");
    let x = g.add_input("x", TensorType::new(DType::F32, Shape::fixed(&[16, 16])));
    let mut outs = vec![];
    for (i, t) in big_constants().into_iter().enumerate() {
        let id = g
            .add_node(Op::Constant(t), &[], &format!("blocks.{i}.weight"))
            .expect("node");
        outs.push(Value::new(id, 0));
    }
    let small = g
        .add_node(Op::Constant(Tensor::scalar_f32(0.5)), &[], "small")
        .expect("node");
    let y = g
        .add_node(Op::Binary(BinaryOp::Add), &[x, outs[0]], "y")
        .expect("node");
    outs.push(Value::new(small, 0));
    outs.push(Value::new(y, 0));
    g.set_outputs(outs);
    g
}

#[test]
fn model_round_trips_through_safetensors_mapped() {
    let dir = TempDir::new("model");
    let path = dir.path().join("m.dqc");
    let g = model();
    write_model(&path, &g, 4).expect("write");
    let text = std::fs::read_to_string(&path).expect("read text");
    assert!(
        text.starts_with("weights \"m.safetensors\"\ngraph @\"weights test\"("),
        "{text}"
    );
    assert!(
        text.contains("external<i4[7,5]> \"blocks.1.weight\""),
        "{text}"
    );
    assert!(text.contains("dense<f32[]> [0.5]"), "{text}");
    assert!(dir.path().join("m.safetensors").exists());

    let g2 = read_model(&path).expect("read model");
    assert_same(&g, &g2);
    for id in g2.node_ids() {
        if let Op::Constant(t) = &g2.node(id).op {
            let mapped = matches!(t.storage(), Storage::Mapped { .. });
            assert_eq!(mapped, t.numel() > 4, "{}", g2.node(id).name());
        }
    }
    // The text without the weights line is what `print` gives with everything inline.
    assert_eq!(print(&g2), print(&g));

    // Writing again over the same files works (atomic replace) and reads back the same.
    write_model(&path, &g2, 4).expect("rewrite");
    assert_same(&g, &read_model(&path).expect("read again"));
}

#[test]
fn small_model_writes_no_weights_file() {
    let dir = TempDir::new("small");
    let path = dir.path().join("s.dqc");
    let g = model();
    write_model(&path, &g, usize::MAX).expect("write");
    assert!(!dir.path().join("s.safetensors").exists());
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(!text.starts_with("weights"), "{text}");
    assert_same(&g, &read_model(&path).expect("read"));
}

#[test]
fn packed_dtypes_are_stored_as_bytes_with_metadata() {
    let dir = TempDir::new("packed");
    let path = dir.path().join("w.safetensors");
    let ts: Vec<(String, Tensor)> = big_constants()
        .into_iter()
        .enumerate()
        .map(|(i, t)| (format!("t{i}"), t))
        .collect();
    write_safetensors(&path, &ts).expect("write");
    let raw = std::fs::read(&path).expect("raw");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&raw).expect("valid safetensors");
    let info = meta.info("t1").expect("t1");
    assert_eq!(info.dtype, safetensors::Dtype::U8);
    assert_eq!(info.shape, vec![18]);
    let extra = meta.metadata().clone().unwrap_or_default();
    assert_eq!(
        extra.get("dqc.type.t1").map(String::as_str),
        Some("i4[7,5]")
    );
    assert_eq!(
        extra.get("dqc.type.t2").map(String::as_str),
        Some("fp4e2m1[33]")
    );
    assert_eq!(
        meta.info("t4").expect("t4").dtype,
        safetensors::Dtype::F8_E4M3
    );

    let store = SafetensorsWeights::open(&path).expect("open");
    assert_eq!(store.len(), ts.len());
    for (name, t) in &ts {
        let back = store.get(name).expect("present");
        assert!(back.bit_eq(t), "{name}");
        assert!(matches!(back.storage(), Storage::Mapped { .. }));
    }
    assert!(store.get("nope").is_none());
    let dup = vec![ts[0].clone(), ts[0].clone()];
    assert!(matches!(
        write_safetensors(&path, &dup),
        Err(WeightsError::DuplicateName { .. })
    ));
}

#[test]
fn unsupported_safetensors_dtype_is_refused() {
    let dir = TempDir::new("f64");
    let path = dir.path().join("f.safetensors");
    let data = [0u8; 16];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![2], &data)
        .expect("view");
    let bytes = safetensors::tensor::serialize(vec![("d", view)], None).expect("serialize");
    std::fs::write(&path, bytes).expect("write");
    let e = SafetensorsWeights::open(&path).expect_err("refused");
    assert!(
        matches!(&e, WeightsError::Entry { name, .. } if name == "d"),
        "{e}"
    );
    std::fs::write(&path, b"not a safetensors file").expect("write");
    assert!(matches!(
        SafetensorsWeights::open(&path),
        Err(WeightsError::Format { .. })
    ));
}

#[test]
fn weights_path_escapes_are_refused() {
    let dir = TempDir::new("escape");
    for bad in [
        "../m.safetensors",
        "/tmp/m.safetensors",
        "a/../../m.safetensors",
        "",
    ] {
        let path = dir.path().join("e.dqc");
        let src = format!("weights \"{bad}\"\ngraph @g(%x: f32[2]) -> (?) {{\n  return %x\n}}\n");
        std::fs::write(&path, src).expect("write");
        match read_model(&path) {
            Err(TextError::WeightsPath { name, .. }) => assert_eq!(name, bad),
            other => panic!("{bad}: expected a refusal, got {other:?}"),
        }
    }
    // A relative path inside the folder is fine.
    std::fs::create_dir_all(dir.path().join("sub")).expect("mkdir");
    write_safetensors(&dir.path().join("sub/w.safetensors"), &[]).expect("write");
    let path = dir.path().join("ok.dqc");
    std::fs::write(
        &path,
        "weights \"sub/w.safetensors\"\ngraph @g(%x: f32[2]) -> (?) {\n  return %x\n}\n",
    )
    .expect("write");
    assert!(read_model(&path).is_ok());
}

#[test]
fn file_errors_name_the_file() {
    let dir = TempDir::new("err");
    let path = dir.path().join("bad.dqc");
    std::fs::write(
        &path,
        "graph @g(%x: f32[2]) -> (?) {\n  %y = nope(%x)\n  return %y\n}\n",
    )
    .expect("write");
    let e = read_model(&path).expect_err("error");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("{}:2:8: unknown op `nope`", path.display())),
        "{msg}"
    );
    let missing = read_model(&dir.path().join("missing.dqc")).expect_err("error");
    assert!(matches!(missing, TextError::Io { .. }));
    // A weights line naming a file that does not exist.
    std::fs::write(
        &path,
        "weights \"w.safetensors\"\ngraph @g(%x: f32[2]) -> (?) {\n  return %x\n}\n",
    )
    .expect("write");
    assert!(matches!(
        read_model(&path),
        Err(TextError::Weights(WeightsError::Io { .. }))
    ));
}
