//! Property: random small chains of elementwise and movement ops lower to programs whose
//! reference execution equals the interpreter's.

mod lower_util;

use lower_util::*;
use proptest::prelude::*;

/// Build the text of a chain from op codes; returns `None` for a chain that degenerates.
fn chain(codes: &[(u8, u8)]) -> String {
    let mut shape: Vec<u64> = vec![2, 3, 4];
    let mut lines = Vec::new();
    let mut vals: Vec<(String, Vec<u64>)> = vec![("x".into(), shape.clone())];
    let mut cur = "x".to_string();
    let fmt = |s: &[u64]| {
        s.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    for (i, &(op, arg)) in codes.iter().enumerate() {
        let name = format!("v{i}");
        let line = match op % 7 {
            0 => {
                let u = ["tanh", "sigmoid", "neg", "abs", "sin", "relu"][arg as usize % 6];
                format!("%{name} = {u}(%{cur})")
            }
            1 => {
                // Binary with an earlier value of the same shape, or a broadcast scalar.
                let b = ["add", "mul", "sub", "max"][arg as usize % 4];
                let other = vals
                    .iter()
                    .rev()
                    .skip(arg as usize % 3)
                    .find(|(_, s)| *s == shape)
                    .map(|(n, _)| n.clone());
                match other {
                    Some(o) => format!("%{name} = {b}(%{cur}, %{o})"),
                    None => {
                        lines.push(format!(
                            "%c{i} = constant() {{value = dense<f32[]> [0.75]}}"
                        ));
                        format!("%{name} = {b}(%{cur}, %c{i})")
                    }
                }
            }
            2 => {
                let r = shape.len();
                let k = 1 + arg as usize % r.max(1);
                let perm: Vec<usize> = (0..r).map(|d| (d + k) % r).collect();
                shape = perm.iter().map(|&p| shape[p]).collect();
                format!(
                    "%{name} = transpose(%{cur}) {{perm = [{}]}}",
                    perm.iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            3 => {
                let a = arg as usize % shape.len();
                if shape[a] < 2 {
                    continue;
                }
                let (start, step) = if arg % 2 == 0 { (1i64, 1i64) } else { (-1, -2) };
                let n = shape[a] as i64;
                let len = if step > 0 { n - 1 } else { (n + 1) / 2 };
                shape[a] = len as u64;
                let end = if step > 0 { n } else { -n - 1 };
                format!(
                    "%{name} = slice(%{cur}) {{axes = [{a}], starts = [{start}], ends = [{end}], steps = [{step}]}}"
                )
            }
            4 => {
                // Flatten everything, or unflatten into two axes.
                let n: u64 = shape.iter().product();
                shape = if shape.len() > 1 || !n.is_multiple_of(2) {
                    vec![n]
                } else {
                    vec![2, n / 2]
                };
                format!("%{name} = reshape(%{cur}) {{shape = [{}]}}", fmt(&shape))
            }
            5 => {
                let a = arg as usize % shape.len();
                shape[a] *= 2;
                format!("%{name} = concat(%{cur}, %{cur}) {{axis = {a}}}")
            }
            _ => {
                let r = shape.len();
                let mut pads = vec![0u64; 2 * r];
                pads[arg as usize % r] = 1;
                pads[r + (arg as usize / 2) % r] = 2;
                for (d, s) in shape.iter_mut().enumerate() {
                    *s += pads[d] + pads[d + r];
                }
                format!(
                    "%{name} = pad(%{cur}) {{pads = [{}], mode = constant(-0.5)}}",
                    fmt(&pads)
                )
            }
        };
        lines.push(line);
        cur = name.clone();
        vals.push((name, shape.clone()));
    }
    let mid = vals
        .get(vals.len() / 2)
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| "x".into());
    format!(
        "graph @p(%x: f32[2,3,4]) -> (?, ?) {{\n  {}\n  return %{cur}, %{mid}\n}}",
        lines.join("\n  ")
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn random_chains_match_the_interpreter(codes in proptest::collection::vec((0u8..7, 0u8..12), 1..7)) {
        let src = chain(&codes);
        let g = parse(&src);
        let inputs = inputs_for(&g, 2);
        check_against_interp(&g, &inputs, 1e-6);
    }
}
