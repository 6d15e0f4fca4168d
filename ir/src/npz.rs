//! `.npy` / `.npz` reading and writing. (to be written)
