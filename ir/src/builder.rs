//! Builder API for graphs. (to be written)
