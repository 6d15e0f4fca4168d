//! Verifier and shape inference. (to be written)
