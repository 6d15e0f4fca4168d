//! `dqc`: the command-line front of the dqc compiler.
//!
//! Every subcommand reports failures as one `error: …` message and a non-zero exit status;
//! nothing here panics on bad input.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// dqc — a compiler for quantized diffusion graphs.
#[derive(Parser)]
#[command(name = "dqc", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a model's IR and a summary (`.dqc`, `.onnx`), or a plan's contents (`.dqcplan`).
    Inspect(cmd::inspect::Args),
    /// Convert an ONNX model to the IR; print it or write it (`-o model.dqc`).
    Import(cmd::import::Args),
    /// Run a model in the reference interpreter on inputs from an `.npz` file.
    Eval(cmd::eval::Args),
    /// Write a model built by dqc-models (a DiT) as `.dqc` + `.safetensors`.
    NewModel(cmd::new_model::Args),
    /// Write random inputs for a model's signature to an `.npz` file.
    MakeInputs(cmd::make_inputs::Args),
    /// Compile a model (`.onnx` or `.dqc`) into a plan file for a target.
    Compile(cmd::compile::Args),
    /// Run a plan on inputs from an `.npz` file.
    Run(cmd::run::Args),
    /// Time a plan's forward pass (median, p10, p90).
    Bench(cmd::bench::Args),
}

fn main() -> ExitCode {
    dqc_runtime::default_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Import(a) => cmd::import::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::NewModel(a) => cmd::new_model::run(a),
        Command::MakeInputs(a) => cmd::make_inputs::run(a),
        Command::Compile(a) => cmd::compile::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Bench(a) => cmd::bench::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the message already
/// contains (library errors often print their source themselves).
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}
