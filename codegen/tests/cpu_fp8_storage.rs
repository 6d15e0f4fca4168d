//! The CPU backend's fp8 storage: the FNUZ formats load, round and store like
//! `dqc_ir::numeric`, and an f8e5m2 infinity (a value of the type) survives a literal and a
//! store, while casting an out-of-range f32 to f8e5m2 still saturates.

mod cpu_common;

use cpu_common::*;
use dqc_codegen::spec::{Elementwise, Expr, Exprs, Kernel, Scalar};
use dqc_ir::numeric::{E4M3FNUZ, E5M2, E5M2FNUZ};
use dqc_ir::{DType, Tensor};

fn ew(n: u64, exprs: Exprs, outputs: Vec<(u32, u32)>) -> Kernel {
    Kernel::Elementwise(Elementwise {
        shape: fixed(&[n]),
        exprs,
        outputs,
    })
}

#[test]
fn fnuz_every_code_loads_and_every_f32_rounds_like_the_ir() {
    for (dt, fmt) in [(DType::F8E4M3Fnuz, E4M3FNUZ), (DType::F8E5M2Fnuz, E5M2FNUZ)] {
        // every code → f32, and back into the same format
        let codes: Vec<u8> = (0..=255u8).collect();
        let x = Tensor::from_bytes(dt, vec![256], codes.clone().into()).unwrap();
        let mut e = Exprs::new();
        let l = load(&mut e, dt, 0, map(0, &[1]));
        let f = e.push(DType::F32, Expr::Cast { x: l });
        let back = e.push(dt, Expr::Cast { x: f });
        let p = program(
            &[(dt, vec![256]), (DType::F32, vec![256]), (dt, vec![256])],
            ew(256, e, vec![(1, f), (2, back)]),
            vec![1, 2],
        );
        let mut bufs = [
            Buf::from_tensor(&x),
            Buf::zeros(DType::F32, 256),
            Buf::zeros(dt, 256),
        ];
        run(&p, &mut bufs).unwrap();
        let want: Vec<f32> = codes.iter().map(|&c| fmt.decode(c)).collect();
        let got = bufs[1].to_f32();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "{dt} code {i}"
            );
        }
        let recoded: Vec<u8> = codes
            .iter()
            .map(|&c| fmt.encode(fmt.decode(c), true))
            .collect();
        assert_eq!(bufs[2].bytes(), recoded.as_slice(), "{dt} round trip");
        // f32 → fnuz rounds to nearest even and saturates, as the IR's encoder does
        let vals = rand_f32(64, 3)
            .iter()
            .map(|v| v * 300.0)
            .collect::<Vec<_>>();
        let mut e = Exprs::new();
        let l = load(&mut e, DType::F32, 0, map(0, &[1]));
        let c = e.push(dt, Expr::Cast { x: l });
        let p = program(
            &[(DType::F32, vec![64]), (dt, vec![64])],
            ew(64, e, vec![(1, c)]),
            vec![1],
        );
        let mut bufs = [Buf::f32(&vals), Buf::zeros(dt, 64)];
        run(&p, &mut bufs).unwrap();
        let want: Vec<u8> = vals.iter().map(|&v| fmt.encode(v, true)).collect();
        assert_eq!(bufs[1].bytes(), want.as_slice(), "{dt} encode");
    }
}

#[test]
fn e5m2_infinity_literal_is_stored_but_a_cast_saturates() {
    let mut e = Exprs::new();
    let inf = e.push(DType::F8E5M2, Expr::Const(Scalar::F(f64::NEG_INFINITY)));
    let l = load(&mut e, DType::F32, 0, map(0, &[1]));
    let c = e.push(DType::F8E5M2, Expr::Cast { x: l });
    let p = program(
        &[
            (DType::F32, vec![2]),
            (DType::F8E5M2, vec![2]),
            (DType::F8E5M2, vec![2]),
        ],
        ew(2, e, vec![(1, inf), (2, c)]),
        vec![1, 2],
    );
    let mut bufs = [
        Buf::f32(&[1e6, f32::INFINITY]),
        Buf::zeros(DType::F8E5M2, 2),
        Buf::zeros(DType::F8E5M2, 2),
    ];
    run(&p, &mut bufs).unwrap();
    assert_eq!(bufs[1].to_f32(), vec![f32::NEG_INFINITY; 2]);
    assert_eq!(bufs[2].to_f32(), vec![E5M2.decode(0x7b); 2]);
    assert_eq!(E5M2.decode(0x7b), 57344.0);
}
