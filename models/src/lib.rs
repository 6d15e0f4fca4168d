//! dqc-models: builders for DiT, Mamba and transformer graphs. (to be written)
