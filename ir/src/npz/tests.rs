//! Unit tests of the parent module.

use super::*;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dqc-npz-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `.npy` v1 file exactly as numpy 1.x/2.x writes it.
fn numpy_v1(dict: &str, data: &[u8]) -> Vec<u8> {
    let unpadded = 10 + dict.len() + 1;
    let pad = unpadded.next_multiple_of(64) - unpadded;
    let header = format!("{dict}{}\n", " ".repeat(pad));
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(header.len() as u16).to_le_bytes());
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn round_trip_every_supported_dtype() {
    let cases = vec![
        Tensor::from_f32(
            DType::F32,
            vec![2, 3],
            &[1.0, -2.5, 0.0, 3.25, f32::MAX, -0.0],
        )
        .unwrap(),
        Tensor::from_f32(DType::F16, vec![3], &[1.0, -0.5, 65504.0]).unwrap(),
        Tensor::from_i64(DType::I64, vec![2], &[i64::MIN, i64::MAX]).unwrap(),
        Tensor::from_i64(DType::I32, vec![1, 2], &[-7, 1 << 30]).unwrap(),
        Tensor::from_i64(DType::I8, vec![3], &[-128, 0, 127]).unwrap(),
        Tensor::from_i64(DType::U8, vec![2], &[0, 255]).unwrap(),
        Tensor::from_i64(DType::Bool, vec![2, 2], &[1, 0, 0, 1]).unwrap(),
        Tensor::from_f32(DType::F32, vec![], &[42.0]).unwrap(),
        Tensor::zeros(DType::F32, vec![0, 5]).unwrap(),
    ];
    for t in &cases {
        let bytes = write_npy(t).unwrap();
        assert_eq!(&bytes[..6], NPY_MAGIC);
        let data_start = bytes.len() - t.bytes().len();
        assert_eq!(data_start % 64, 0, "data is 64-byte aligned");
        let back = read_npy(&bytes).unwrap();
        assert_eq!(back.tensor, *t, "{t:?}");
        assert_eq!(back.note, None);
    }
    let dir = tmpdir("rt");
    let path = dir.join("all.npz");
    let named: Vec<(String, Tensor)> = cases
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("a{i}"), t.clone()))
        .collect();
    write_npz(&path, &named).unwrap();
    assert_eq!(read_npz(&path).unwrap(), named);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn hand_made_v1_header() {
    let bytes = numpy_v1(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
        &f32_bytes(&[1.0, 2.0, 3.0]),
    );
    assert_eq!(bytes.len(), 128 + 12);
    let a = read_npy(&bytes).unwrap();
    assert_eq!(a.tensor.shape(), &[3]);
    assert_eq!(a.tensor.to_f32_vec(), vec![1.0, 2.0, 3.0]);
    // Our writer produces the very same bytes numpy does.
    assert_eq!(write_npy(&a.tensor).unwrap(), bytes);
    // Key order and quoting are free in the header.
    let b = numpy_v1(
        "{\"shape\": (1, 2), \"fortran_order\": False, \"descr\": \"<i8\"}",
        &[
            5, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    );
    assert_eq!(read_npy(&b).unwrap().tensor.to_i64_vec(), vec![5, -1]);
}

#[test]
fn v2_and_v3_headers() {
    for major in [2u8, 3] {
        let dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }\n";
        let mut v = vec![0x93, b'N', b'U', b'M', b'P', b'Y', major, 0];
        v.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        v.extend_from_slice(dict.as_bytes());
        v.extend_from_slice(&[7, 9]);
        assert_eq!(read_npy(&v).unwrap().tensor.to_i64_vec(), vec![7, 9]);
    }
}

#[test]
fn f64_is_converted_with_a_note() {
    let data: Vec<u8> = [0.1f64, -3.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let bytes = numpy_v1(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
        &data,
    );
    let a = read_npy(&bytes).unwrap();
    assert_eq!(a.tensor.dtype(), DType::F32);
    assert_eq!(a.tensor.to_f32_vec(), vec![0.1f32, -3.0]);
    assert!(a.note.unwrap().contains("float64"));
}

#[test]
fn refusals() {
    let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    let good = numpy_v1(ok, &f32_bytes(&[1.0, 2.0]));
    // Truncated data and header.
    assert!(matches!(
        read_npy(&good[..good.len() - 1]),
        Err(NpyError::Truncated {
            what: "data",
            needed: 8,
            available: 7
        })
    ));
    assert!(matches!(
        read_npy(&good[..40]),
        Err(NpyError::Truncated { what: "header", .. })
    ));
    assert!(matches!(
        read_npy(&good[..5]),
        Err(NpyError::Truncated { .. })
    ));
    // Trailing bytes.
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(
        read_npy(&long),
        Err(NpyError::TrailingBytes { extra: 1, .. })
    ));
    // Bad magic and version.
    let mut bad = good.clone();
    bad[1] = b'X';
    assert_eq!(read_npy(&bad), Err(NpyError::BadMagic));
    let mut bad = good.clone();
    bad[6] = 4;
    assert!(matches!(
        read_npy(&bad),
        Err(NpyError::UnsupportedVersion { major: 4, minor: 0 })
    ));
    // Fortran order, big endian, unknown dtypes.
    let f = numpy_v1(
        "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
        &f32_bytes(&[1.0, 2.0]),
    );
    assert_eq!(read_npy(&f), Err(NpyError::FortranOrder));
    let be = numpy_v1(
        "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
        &f32_bytes(&[1.0, 2.0]),
    );
    assert!(matches!(read_npy(&be), Err(NpyError::BigEndian { .. })));
    let c = numpy_v1(
        "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
        &[0; 8],
    );
    assert!(matches!(
        read_npy(&c),
        Err(NpyError::UnsupportedDtype { .. })
    ));
    let rec = numpy_v1(
        "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
        &[0; 4],
    );
    assert!(matches!(
        read_npy(&rec),
        Err(NpyError::UnsupportedDtype { .. })
    ));
    // Malformed header.
    let m = numpy_v1("{'descr': '<f4', 'shape': (2,), }", &f32_bytes(&[1.0, 2.0]));
    assert!(matches!(read_npy(&m), Err(NpyError::BadHeader { .. })));
    let m = numpy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2,", &[]);
    assert!(matches!(read_npy(&m), Err(NpyError::BadHeader { .. })));
}

#[test]
fn huge_dimensions_are_refused_before_allocating() {
    // Overflowing element count.
    let h = numpy_v1(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
        &[],
    );
    assert!(matches!(read_npy(&h), Err(NpyError::TooLarge { .. })));
    // A plausible count that the file does not hold.
    let h = numpy_v1(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000,), }",
        &[0; 16],
    );
    assert!(matches!(
        read_npy(&h),
        Err(NpyError::Truncated {
            what: "data",
            needed: 4_000_000_000,
            available: 16
        })
    ));
}

#[test]
fn non_numpy_dtypes_are_refused_on_write() {
    let t = Tensor::from_f32(DType::BF16, vec![2], &[1.0, 2.0]).unwrap();
    assert_eq!(
        write_npy(&t),
        Err(NpyError::NotNumpyDtype { dtype: DType::BF16 })
    );
    let dir = tmpdir("refuse");
    let path = dir.join("x.npz");
    let err = write_npz(&path, &[("weights".to_string(), t)]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("weights") && msg.contains("bf16"), "{msg}");
    assert!(!path.exists(), "nothing is written on error");
    let one = Tensor::scalar_f32(1.0);
    let dup = [("a".to_string(), one.clone()), ("a".to_string(), one)];
    assert!(matches!(
        write_npz(&path, &dup),
        Err(NpzError::BadName { .. })
    ));
    std::fs::remove_dir_all(dir).unwrap();
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A one-member zip archive laid out as Python's `zipfile` (numpy's `savez`) writes
/// it: local header, data, central directory, end record. `method` 0 is stored, 8 is
/// deflate (here a deflate stream made of one stored block).
fn hand_zip(name: &str, content: &[u8], method: u16) -> Vec<u8> {
    let payload = if method == 8 {
        let len = content.len() as u16;
        let mut d = vec![0x01];
        d.extend_from_slice(&len.to_le_bytes());
        d.extend_from_slice(&(!len).to_le_bytes());
        d.extend_from_slice(content);
        d
    } else {
        content.to_vec()
    };
    let crc = crc32(content);
    let le16 = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&x.to_le_bytes());
    let le32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
    let mut z = Vec::new();
    le32(&mut z, 0x0403_4b50);
    for x in [20u16, 0, method, 0, 0x21] {
        le16(&mut z, x); // version, flags, method, time, date
    }
    le32(&mut z, crc);
    le32(&mut z, payload.len() as u32);
    le32(&mut z, content.len() as u32);
    le16(&mut z, name.len() as u16);
    le16(&mut z, 0);
    z.extend_from_slice(name.as_bytes());
    z.extend_from_slice(&payload);
    let cd_start = z.len() as u32;
    le32(&mut z, 0x0201_4b50);
    for x in [20u16, 20, 0, method, 0, 0x21] {
        le16(&mut z, x); // made by, needed, flags, method, time, date
    }
    le32(&mut z, crc);
    le32(&mut z, payload.len() as u32);
    le32(&mut z, content.len() as u32);
    for x in [name.len() as u16, 0, 0, 0, 0] {
        le16(&mut z, x); // name len, extra, comment, disk, internal attrs
    }
    le32(&mut z, 0o100644 << 16);
    le32(&mut z, 0); // local header offset
    z.extend_from_slice(name.as_bytes());
    let cd_len = z.len() as u32 - cd_start;
    le32(&mut z, 0x0605_4b50);
    for x in [0u16, 0, 1, 1] {
        le16(&mut z, x);
    }
    le32(&mut z, cd_len);
    le32(&mut z, cd_start);
    le16(&mut z, 0);
    z
}

#[test]
fn reads_numpy_style_archives_stored_and_deflated() {
    let npy = numpy_v1(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
        &f32_bytes(&[1.0, 2.0, 3.0, 4.0]),
    );
    let dir = tmpdir("numpy");
    for method in [0u16, 8] {
        let path = dir.join(format!("m{method}.npz"));
        std::fs::write(&path, hand_zip("x.npy", &npy, method)).unwrap();
        let arrays = read_npz(&path).unwrap();
        assert_eq!(arrays.len(), 1);
        assert_eq!(arrays[0].0, "x");
        assert_eq!(arrays[0].1.shape(), &[2, 2]);
        assert_eq!(arrays[0].1.to_f32_vec(), vec![1.0, 2.0, 3.0, 4.0]);
    }
    // A bad array inside an archive names both the file and the array.
    let path = dir.join("bad.npz");
    std::fs::write(&path, hand_zip("y.npy", &npy[..npy.len() - 2], 0)).unwrap();
    let msg = read_npz(&path).unwrap_err().to_string();
    assert!(
        msg.contains("bad.npz") && msg.contains("`y`") && msg.contains("truncated"),
        "{msg}"
    );
    // Not a zip at all.
    std::fs::write(&path, b"hello").unwrap();
    assert!(matches!(read_npz(&path), Err(NpzError::Zip { .. })));
    // Missing file.
    assert!(matches!(
        read_npz(dir.join("none.npz")),
        Err(NpzError::Io { .. })
    ));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn write_replaces_existing_file() {
    let dir = tmpdir("replace");
    let path = dir.join("o.npz");
    std::fs::write(&path, b"old").unwrap();
    let arrays = vec![("out".to_string(), Tensor::scalar_f32(2.0))];
    write_npz(&path, &arrays).unwrap();
    assert_eq!(read_npz(&path).unwrap(), arrays);
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    std::fs::remove_dir_all(dir).unwrap();
}
