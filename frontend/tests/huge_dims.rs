//! A tensor that claims an absurd size is refused before anything of that size is
//! allocated. A counting global allocator (this test binary only) records the largest
//! single allocation.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use dqc_frontend::FrontendError;
use dqc_frontend::onnx::load_model_from_bytes;
use dqc_frontend::onnx::proto::{DataType, TensorProto};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
/// Serializes the tests of this binary so that one's allocations don't count for another.
static LOCK: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn load_with(t: TensorProto) -> (FrontendError, usize) {
    let mut m = small_model();
    if let Some(g) = m.graph.as_mut() {
        g.initializer = vec![t];
    }
    let bytes = encode(&m);
    LARGEST.store(0, Ordering::Relaxed);
    let r = load_model_from_bytes(&bytes, Path::new("."));
    let largest = LARGEST.load(Ordering::Relaxed);
    (r.expect_err("must be refused"), largest)
}

const LIMIT: usize = 1 << 20;

#[test]
fn dimension_of_2_pow_40_is_refused_without_allocating() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let t = f32_raw("w", &[1 << 40], &[1.0]);
    let (e, largest) = load_with(t);
    assert!(
        matches!(&e, FrontendError::BadShape { tensor, .. } if tensor == "w"),
        "{e}"
    );
    assert!(largest < LIMIT, "allocated {largest} bytes");
}

#[test]
fn size_just_under_the_limit_is_refused_by_the_data_check() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // 2^36 f32 = 256 GiB: under the 1 TiB cap, but only 4 bytes of data are present.
    let t = f32_raw("w", &[1 << 18, 1 << 18], &[1.0]);
    let (e, largest) = load_with(t);
    assert!(
        matches!(&e, FrontendError::BadData { tensor, .. } if tensor == "w"),
        "{e}"
    );
    assert!(largest < LIMIT, "allocated {largest} bytes");

    // The same with a typed field.
    let t = TensorProto {
        name: "w".into(),
        dims: vec![1 << 34],
        data_type: DataType::Int64 as i32,
        int64_data: vec![7],
        ..Default::default()
    };
    let (e, largest) = load_with(t);
    assert!(
        matches!(&e, FrontendError::BadData { tensor, .. } if tensor == "w"),
        "{e}"
    );
    assert!(largest < LIMIT, "allocated {largest} bytes");
}

#[test]
fn element_count_overflow_is_refused() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let t = f32_raw("w", &[1 << 40, 1 << 40, 1 << 40], &[1.0]);
    let (e, largest) = load_with(t);
    assert!(
        matches!(&e, FrontendError::BadShape { tensor, .. } if tensor == "w"),
        "{e}"
    );
    assert!(largest < LIMIT, "allocated {largest} bytes");
}
