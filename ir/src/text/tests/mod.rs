//! Tests of the text format: fixtures covering every op and dtype, round trips, error
//! positions, weights files and properties.

mod errors;
mod fixtures;
mod props;
mod round_trip;
mod weights_io;
