//! The human summary of a plan that `dqc inspect` prints.

use super::Plan;
use crate::sizes::{maxima, tensor_bytes};
use dqc_codegen::spec::{BufferKind, Program};
use std::fmt::Write as _;

fn kind_text(p: &Program, k: &BufferKind) -> String {
    match k {
        BufferKind::Input { index } => format!("input {index}"),
        BufferKind::Output { index } => format!("output {index}"),
        BufferKind::Weight { name } => format!("weight `{name}`"),
        BufferKind::Activation { offset } => format!("arena @{offset}"),
        BufferKind::Alias { base } => match p.buffers.get(*base as usize) {
            Some(b) => format!("alias of `{}`", b.name),
            None => format!("alias of #{base}"),
        },
    }
}

/// Bytes in a readable unit.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Plan {
    /// A readable summary: target, signature, symbols, kernels (family and name),
    /// buffers, peak memory, precision table and provenance. Text only, for people; its
    /// exact form may change.
    pub fn describe(&self) -> String {
        let h = self.header();
        let p = &h.program;
        let max = maxima(p);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "plan {} (format v{}, target {})",
            self.path().display(),
            h.format_version,
            h.target
        );
        let _ = writeln!(s, "inputs:");
        for t in &h.signature.inputs {
            let _ = writeln!(s, "  {}: {}{}", t.name, t.dtype, t.shape);
        }
        let _ = writeln!(s, "outputs:");
        for t in &h.signature.outputs {
            let _ = writeln!(s, "  {}: {}{}", t.name, t.dtype, t.shape);
        }
        if !p.symbols.is_empty() {
            let syms: Vec<String> = p
                .symbols
                .iter()
                .map(|y| format!("{} ≤ {}", y.name, y.max))
                .collect();
            let _ = writeln!(s, "symbols: {}", syms.join(", "));
        }
        let gpu = dqc_ir::Target::parse(&h.target)
            .ok()
            .filter(|t| !t.is_cpu());
        let entries = dqc_codegen::ptx::abi::entry_names(p);
        let _ = writeln!(s, "kernels: {}", p.kernels.len());
        for (i, k) in p.kernels.iter().enumerate() {
            let _ = write!(s, "  #{i:<4} {:<15} {}", k.body.family(), k.name);
            if let Some(t) = &gpu {
                // GPU plans: the entry and its launch at the symbols' maxima
                let launch = dqc_codegen::ptx::abi::launch_config(p, i, &max, t)
                    .map(|l| l.to_string())
                    .unwrap_or_else(|e| format!("no launch: {e}"));
                let _ = write!(s, "  [{} {launch}]", entries[i]);
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s, "buffers: {}", p.buffers.len());
        for (i, b) in p.buffers.iter().enumerate() {
            let _ = writeln!(
                s,
                "  #{i:<4} {}{} {} ({})",
                b.dtype,
                b.shape,
                b.name,
                kind_text(p, &b.kind)
            );
        }
        let io_bytes: u64 = p
            .inputs
            .iter()
            .chain(&p.outputs)
            .filter_map(|&id| p.buffers.get(id as usize))
            .filter_map(|b| tensor_bytes(b.dtype, &b.shape, &max))
            .sum();
        let weights = self.weights_bytes_total();
        let _ = writeln!(
            s,
            "peak memory: {} activation arena + {} weights + {} inputs/outputs (at the symbols' maxima) = {}",
            human_bytes(p.arena_bytes),
            human_bytes(weights),
            human_bytes(io_bytes),
            human_bytes(p.arena_bytes + weights + io_bytes)
        );
        if h.precision.is_empty() {
            let _ = writeln!(s, "precision: (no table)");
        } else {
            let _ = writeln!(s, "precision:");
            for e in &h.precision {
                let _ = writeln!(s, "  {}: {}", e.layer, e.format);
            }
        }
        let pv = &h.provenance;
        let _ = writeln!(s, "provenance:");
        let _ = writeln!(s, "  dqc {}", pv.dqc_version);
        let _ = writeln!(s, "  source sha256 {}", pv.source_sha256);
        if let Some(c) = &pv.calibration_sha256 {
            let _ = writeln!(s, "  calibration sha256 {c}");
        }
        let _ = writeln!(s, "  options: {}", pv.compile_options);
        if !self.ptx_modules().is_empty() {
            let _ = writeln!(s, "ptx modules: {}", self.ptx_modules().len());
            for m in self.ptx_modules() {
                let _ = writeln!(
                    s,
                    "  {} ({}, {})",
                    m.name,
                    m.target,
                    human_bytes(m.text.len() as u64)
                );
            }
        }
        s
    }
}
