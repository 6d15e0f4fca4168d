//! TensorProto conversion, hand-computed per data type and storage field.

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use dqc_frontend::FrontendError;
use dqc_frontend::onnx::proto::{DataType, TensorProto};
use dqc_frontend::onnx::{DataFiles, dtype_for_onnx, load_model, tensor_from_proto};
use dqc_ir::DType;
use dqc_ir::tensor::Storage;

fn files() -> DataFiles {
    DataFiles::new(Path::new("test.onnx"), Path::new("."), None)
}

fn t(dt: DataType, dims: &[i64]) -> TensorProto {
    TensorProto {
        name: "t".into(),
        dims: dims.to_vec(),
        data_type: dt as i32,
        ..Default::default()
    }
}

fn raw(dt: DataType, dims: &[i64], bytes: &[u8]) -> TensorProto {
    TensorProto {
        raw_data: Bytes::copy_from_slice(bytes),
        ..t(dt, dims)
    }
}

fn int32(dt: DataType, dims: &[i64], v: &[i32]) -> TensorProto {
    TensorProto {
        int32_data: v.to_vec(),
        ..t(dt, dims)
    }
}

fn conv(p: &TensorProto) -> dqc_ir::Tensor {
    tensor_from_proto(p, &files()).unwrap_or_else(|e| panic!("{e}"))
}

fn err(p: &TensorProto) -> FrontendError {
    tensor_from_proto(p, &files()).expect_err("must be refused")
}

#[test]
fn float_from_float_data_and_raw() {
    let mut p = t(DataType::Float, &[3]);
    p.float_data = vec![1.0, -2.5, 0.125];
    let a = conv(&p);
    assert_eq!(a.dtype(), DType::F32);
    assert_eq!(a.to_f32_vec(), vec![1.0, -2.5, 0.125]);
    let b = conv(&f32_raw("t", &[3], &[1.0, -2.5, 0.125]));
    assert!(a.bit_eq(&b));
}

#[test]
fn scalar_and_empty_tensors() {
    let mut p = t(DataType::Float, &[]);
    p.float_data = vec![3.0];
    let s = conv(&p);
    assert_eq!(s.shape(), &[] as &[u64]);
    assert_eq!(s.to_f32_vec(), vec![3.0]);
    let e = conv(&t(DataType::Float, &[0, 3]));
    assert_eq!(e.numel(), 0);
    assert_eq!(e.shape(), &[0, 3]);
}

#[test]
fn half_types_from_int32_bit_patterns() {
    // f16: 1.0 = 0x3C00, -2.0 = 0xC000 (also accepted sign-extended).
    let a = conv(&int32(
        DataType::Float16,
        &[3],
        &[0x3C00, 0xC000, 0xC000u16 as i16 as i32],
    ));
    assert_eq!(a.dtype(), DType::F16);
    assert_eq!(a.to_f32_vec(), vec![1.0, -2.0, -2.0]);
    // bf16: 1.0 = 0x3F80, -0.5 = 0xBF00.
    let b = conv(&int32(DataType::Bfloat16, &[2], &[0x3F80, 0xBF00]));
    assert_eq!(b.dtype(), DType::BF16);
    assert_eq!(b.to_f32_vec(), vec![1.0, -0.5]);
    // Raw little-endian f16.
    let c = conv(&raw(DataType::Float16, &[1], &[0x00, 0x3C]));
    assert_eq!(c.to_f32_vec(), vec![1.0]);
    let e = err(&int32(DataType::Float16, &[1], &[70000]));
    assert!(e.to_string().contains("70000"), "{e}");
}

#[test]
fn fp8_from_int32_and_raw() {
    // E4M3FN: 1.0 = 0x38, -448 = 0xFE. E5M2: 1.0 = 0x3C, 2.0 = 0x40.
    let a = conv(&int32(DataType::Float8e4m3fn, &[2], &[0x38, 0xFE]));
    assert_eq!(a.dtype(), DType::F8E4M3);
    assert_eq!(a.to_f32_vec(), vec![1.0, -448.0]);
    let b = conv(&raw(DataType::Float8e5m2, &[2], &[0x3C, 0x40]));
    assert_eq!(b.dtype(), DType::F8E5M2);
    assert_eq!(b.to_f32_vec(), vec![1.0, 2.0]);
}

#[test]
fn int4_packed_and_unpacked() {
    // [1, -2, 3]: bytes 0xE1 (1 low, -2 = 0xE high), 0x03.
    let packed = conv(&int32(DataType::Int4, &[3], &[0xE1, 0x03]));
    assert_eq!(packed.dtype(), DType::I4);
    assert_eq!(packed.to_i64_vec(), vec![1, -2, 3]);
    assert_eq!(packed.bytes(), &[0xE1, 0x03]);
    let one_each = conv(&int32(DataType::Int4, &[3], &[1, -2, 3]));
    assert!(packed.bit_eq(&one_each));
    let from_raw = conv(&raw(DataType::Int4, &[3], &[0xE1, 0x03]));
    assert!(packed.bit_eq(&from_raw));
    assert!(
        err(&int32(DataType::Int4, &[3], &[1, 9, 3]))
            .to_string()
            .contains("int32_data[1]")
    );
    assert!(
        err(&raw(DataType::Int4, &[3], &[0xE1]))
            .to_string()
            .contains("raw_data")
    );
}

#[test]
fn two_bit_ints_widen_to_one_byte() {
    // Four per byte, element 0 in the low bits: 0b01_11_10_01, 0b10 → 1, 2, 3, 1, 2.
    assert_eq!(dtype_for_onnx(DataType::Int2 as i32), Ok(DType::I8));
    assert_eq!(dtype_for_onnx(DataType::Uint2 as i32), Ok(DType::U8));
    let u = conv(&raw(DataType::Uint2, &[5], &[0b01_11_10_01, 0b10]));
    assert_eq!(u.dtype(), DType::U8);
    assert_eq!(u.to_i64_vec(), vec![1, 2, 3, 1, 2]);
    let i = conv(&raw(DataType::Int2, &[5], &[0b01_11_10_01, 0b10]));
    assert_eq!(i.to_i64_vec(), vec![1, -2, -1, 1, -2]);
    // int32_data: packed (one entry per four) or one element per entry.
    let p = conv(&int32(DataType::Int2, &[5], &[0b01_11_10_01, 0b10]));
    assert_eq!(p.to_i64_vec(), vec![1, -2, -1, 1, -2]);
    let e = conv(&int32(DataType::Int2, &[3], &[-2, 1, 0]));
    assert_eq!(e.to_i64_vec(), vec![-2, 1, 0]);
    assert!(
        err(&int32(DataType::Int2, &[3], &[-3, 1, 0]))
            .to_string()
            .contains("INT2")
    );
}

#[test]
fn fnuz_fp8_loads_exactly() {
    let a = conv(&raw(DataType::Float8e4m3fnuz, &[3], &[0x40, 0x80, 0xff]));
    assert_eq!(a.dtype(), DType::F8E4M3Fnuz);
    let v = a.to_f32_vec();
    assert_eq!(v[0], 1.0);
    assert!(v[1].is_nan());
    assert_eq!(v[2], -240.0);
    let b = conv(&int32(DataType::Float8e5m2fnuz, &[1], &[0x40]));
    assert_eq!(b.dtype(), DType::F8E5M2Fnuz);
    assert_eq!(b.to_f32_vec(), vec![1.0]);
}

#[test]
fn uint4_widens_to_u8() {
    assert_eq!(dtype_for_onnx(DataType::Uint4 as i32), Ok(DType::U8));
    let a = conv(&raw(DataType::Uint4, &[3], &[0xE1, 0x03]));
    assert_eq!(a.dtype(), DType::U8);
    assert_eq!(a.to_i64_vec(), vec![1, 14, 3]);
    let b = conv(&int32(DataType::Uint4, &[3], &[0xE1, 0x03]));
    assert!(a.bit_eq(&b));
    let c = conv(&int32(DataType::Uint4, &[3], &[1, 14, 3]));
    assert!(a.bit_eq(&c));
}

#[test]
fn fp4_packed() {
    // E2M1: 0x2 = 1.0, 0xA = -1.0, 0x7 = 6.0.
    let a = conv(&raw(DataType::Float4e2m1, &[3], &[0xA2, 0x07]));
    assert_eq!(a.dtype(), DType::Fp4E2M1);
    assert_eq!(a.to_f32_vec(), vec![1.0, -1.0, 6.0]);
}

#[test]
fn narrow_integers_from_int32_data_are_range_checked() {
    assert_eq!(
        conv(&int32(DataType::Int8, &[2], &[-128, 127])).to_i64_vec(),
        vec![-128, 127]
    );
    assert_eq!(
        conv(&int32(DataType::Uint8, &[1], &[255])).to_i64_vec(),
        vec![255]
    );
    assert!(
        err(&int32(DataType::Int8, &[1], &[200]))
            .to_string()
            .contains("INT8")
    );
    assert!(
        err(&int32(DataType::Uint8, &[1], &[-1]))
            .to_string()
            .contains("UINT8")
    );
}

#[test]
fn int16_and_uint16_widen_to_i32() {
    let bytes: Vec<u8> = [-300i16, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
    let a = conv(&raw(DataType::Int16, &[2], &bytes));
    assert_eq!(a.dtype(), DType::I32);
    assert_eq!(a.to_i64_vec(), vec![-300, 7]);
    let b = conv(&raw(DataType::Uint16, &[1], &65535u16.to_le_bytes()));
    assert_eq!(b.to_i64_vec(), vec![65535]);
    let c = conv(&int32(DataType::Uint16, &[1], &[65535]));
    assert!(b.bit_eq(&c));
    assert!(
        err(&int32(DataType::Int16, &[1], &[40000]))
            .to_string()
            .contains("INT16")
    );
}

#[test]
fn unsigned_32_and_64_become_i64() {
    let mut p = t(DataType::Uint32, &[1]);
    p.uint64_data = vec![4_000_000_000];
    assert_eq!(conv(&p).to_i64_vec(), vec![4_000_000_000]);
    let a = conv(&raw(
        DataType::Uint32,
        &[1],
        &4_000_000_000u32.to_le_bytes(),
    ));
    assert_eq!(a.dtype(), DType::I64);
    assert_eq!(a.to_i64_vec(), vec![4_000_000_000]);
    let b = conv(&raw(DataType::Uint64, &[1], &5u64.to_le_bytes()));
    assert_eq!(b.to_i64_vec(), vec![5]);
    let e = err(&raw(DataType::Uint64, &[1], &u64::MAX.to_le_bytes()));
    assert!(e.to_string().contains("i64::MAX"), "{e}");
    let mut p = t(DataType::Uint64, &[1]);
    p.uint64_data = vec![u64::MAX];
    assert!(matches!(err(&p), FrontendError::BadData { .. }));
}

#[test]
fn double_narrows_to_f32() {
    let bytes: Vec<u8> = [1.5f64, 1e300]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let a = conv(&raw(DataType::Double, &[2], &bytes));
    assert_eq!(a.dtype(), DType::F32);
    assert_eq!(a.to_f32_vec(), vec![1.5, f32::INFINITY]);
    let mut p = t(DataType::Double, &[1]);
    p.double_data = vec![0.1];
    assert_eq!(conv(&p).to_f32_vec(), vec![0.1f32]);
}

#[test]
fn int64_and_int32() {
    let mut p = t(DataType::Int64, &[2]);
    p.int64_data = vec![i64::MIN, 42];
    assert_eq!(conv(&p).to_i64_vec(), vec![i64::MIN, 42]);
    let a = conv(&int32(DataType::Int32, &[2], &[i32::MIN, 9]));
    assert_eq!(a.dtype(), DType::I32);
    assert_eq!(a.to_i64_vec(), vec![i32::MIN as i64, 9]);
}

#[test]
fn bool_is_normalized_to_0_and_1() {
    let a = conv(&raw(DataType::Bool, &[3], &[0, 1, 2]));
    assert_eq!(a.dtype(), DType::Bool);
    assert_eq!(a.bytes(), &[0, 1, 1]);
    let b = conv(&int32(DataType::Bool, &[2], &[0, 5]));
    assert_eq!(b.bytes(), &[0, 1]);
}

#[test]
fn typed_field_count_must_match() {
    let mut p = t(DataType::Float, &[3]);
    p.float_data = vec![1.0];
    let e = err(&p);
    assert!(e.to_string().contains("float_data"), "{e}");
    // Data in the wrong field: INT64 tensor with float_data.
    let mut p = t(DataType::Int64, &[1]);
    p.float_data = vec![1.0];
    assert!(err(&p).to_string().contains("int64_data"));
}

#[test]
fn unsupported_types_are_named() {
    for (dt, word) in [
        (DataType::String, "STRING"),
        (DataType::Complex64, "COMPLEX64"),
        (DataType::Float8e8m0, "FLOAT8E8M0"),
        (DataType::Undefined, "UNDEFINED"),
    ] {
        let e = err(&t(dt, &[1]));
        assert!(matches!(&e, FrontendError::UnsupportedDataType { tensor, .. } if tensor == "t"));
        assert!(e.to_string().contains(word), "{e}");
    }
    let mut p = t(DataType::Float, &[1]);
    p.data_type = 999;
    assert!(err(&p).to_string().contains("999"));
}

#[test]
fn external_data_is_mapped_once_and_not_copied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    bytes.extend([5.0f32, 6.0].iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(dir.path().join("weights.bin"), &bytes).expect("write");
    let files = DataFiles::new(&dir.path().join("m.onnx"), dir.path(), None);
    let a = tensor_from_proto(&external("a", &[2, 2], "weights.bin", None), &files).expect("a");
    let b = tensor_from_proto(&external("b", &[2], "weights.bin", Some(16)), &files).expect("b");
    assert_eq!(a.to_f32_vec(), vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(b.to_f32_vec(), vec![5.0, 6.0]);
    assert_eq!(files.mapped_files(), 1);
    match (a.storage(), b.storage()) {
        (
            Storage::Mapped { map: ma, .. },
            Storage::Mapped {
                map: mb, offset, ..
            },
        ) => {
            assert!(Arc::ptr_eq(ma, mb));
            assert_eq!(*offset, 16);
        }
        _ => panic!("external tensors must be mapped"),
    }
}

#[test]
fn raw_data_initializers_stay_in_the_model_mapping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.onnx");
    std::fs::write(&path, encode(&small_model())).expect("write");
    let m = load_model(&path).expect("load");
    let w = m.initializer("w").expect("w").clone();
    assert!(
        matches!(w.storage(), Storage::Mapped { .. }),
        "raw_data was copied"
    );
    assert_eq!(w.to_f32_vec(), vec![1.0, -2.0, 3.0, -4.0, 5.0, -6.0]);
    drop(m);
    // The tensor keeps the mapping alive on its own.
    assert_eq!(w.to_f32_vec()[0], 1.0);
}
