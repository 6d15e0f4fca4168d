//! `dqc new-model dit …`: write a model built by dqc-models.

use std::path::PathBuf;

use anyhow::{Result, bail};
use dqc_models::dit::DitConfig;

/// Arguments of `dqc new-model`.
#[derive(clap::Args)]
pub struct Args {
    /// Model family (only `dit` for now).
    pub family: String,
    /// Start from a preset (`tiny`, `dit-s-2`); flags below override its fields.
    #[arg(long)]
    pub preset: Option<String>,
    /// Hidden size.
    #[arg(long)]
    pub hidden: Option<u64>,
    /// Number of DiT blocks.
    #[arg(long)]
    pub depth: Option<u64>,
    /// Attention heads.
    #[arg(long)]
    pub heads: Option<u64>,
    /// Patch size.
    #[arg(long)]
    pub patch: Option<u64>,
    /// Latent spatial size (height = width).
    #[arg(long)]
    pub latent: Option<u64>,
    /// Number of classes for the label embedding.
    #[arg(long)]
    pub classes: Option<u64>,
    /// Seed of the random weights.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output file (`.dqc`; large weights go to a `.safetensors` beside it).
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    if args.family != "dit" {
        bail!("unknown model family `{}` (available: dit)", args.family);
    }
    let mut cfg = match args.preset.as_deref() {
        None | Some("dit-s-2") => DitConfig::dit_s_2(),
        Some("tiny") => DitConfig::tiny(),
        Some(other) => bail!("unknown preset `{other}` (available: tiny, dit-s-2)"),
    };
    if let Some(v) = args.hidden {
        cfg.hidden = v;
    }
    if let Some(v) = args.depth {
        cfg.depth = v;
    }
    if let Some(v) = args.heads {
        cfg.heads = v;
    }
    if let Some(v) = args.patch {
        cfg.patch = v;
    }
    if let Some(v) = args.latent {
        cfg.latent = v;
    }
    if let Some(v) = args.classes {
        cfg.num_classes = v;
    }
    if let Some(v) = args.seed {
        cfg.seed = v;
    }
    let mut g = dqc_models::dit::build(&cfg)?;
    dqc_ir::verify::verify(&mut g)?;
    super::ensure_parent(&args.output)?;
    dqc_ir::text::write_model(&args.output, &g, 64)?;
    println!("wrote {} ({} nodes)", args.output.display(), g.node_count());
    Ok(())
}
