//! Golden snapshots of IR text: a reviewer sees exactly what a change does to the models'
//! IR. Update with `cargo insta review` after checking the diff.

use dqc_models::dit::{self, DitConfig};

#[test]
fn tiny_dit_ir() {
    let mut g = dit::build(&DitConfig::tiny()).expect("tiny DiT builds");
    dqc_ir::verify::verify(&mut g).expect("tiny DiT verifies");
    let (text, _weights) = dqc_ir::text::print_with_weights(&g, 16);
    insta::assert_snapshot!("tiny_dit", text);
}

#[test]
fn dit_block_ir() {
    let mut g = dit::block(&DitConfig::tiny()).expect("DiT block builds");
    dqc_ir::verify::verify(&mut g).expect("DiT block verifies");
    let (text, _weights) = dqc_ir::text::print_with_weights(&g, 16);
    insta::assert_snapshot!("dit_block", text);
}
