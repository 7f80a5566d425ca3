//! One dense layer, `x · W + b` with an optional tanh or relu, as a single
//! operation with its own backward on the CPU backend.
//!
//! Why (perf of a 256-env PPO update on burn-ndarray 0.21, see the trainer
//! docs): burn-ndarray computes `tanh` in f64 through libm and burn-autodiff's
//! backward recomputes it and makes four more passes; that was half of all
//! CPU time. Its matmul also copies every transposed operand into a fresh
//! contiguous array before calling matrixmultiply, which the backward of a
//! matmul always has (`dW = Xᵀ·dZ`, `dX = dZ·Wᵀ`); those copies and the
//! broadcast bias add were another fifth. Here the layer is one node of the
//! autodiff graph: the forward writes the bias, accumulates the product into
//! it and applies the runtime's own f32 tanh in place (`tanh_fast`, the
//! rational approximation of XLA and Eigen, a few ulp from exact), so a
//! trained hidden layer gives the activations the runtime will compute from
//! the same pre-activations; the backward scales the incoming
//! gradient by `1 - y²` in place (relu: keeps it where `y > 0`, which is
//! where `z > 0`) and hands strided (transposed) views to matrixmultiply,
//! with no copies. relu is the runtime's own `z > 0 ? z : 0` too.
//!
//! The backend is recognised by the tensor primitive's type at run time, so
//! the trainer stays generic over `AutodiffBackend`; any other backend (CUDA)
//! gets burn's own `matmul + add + tanh` (or `relu`).

use std::any::{Any, TypeId};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ndarray::NdArrayTensor;
use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{activation, Tensor, TensorPrimitive};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Ix2};
use nq_formats::checkpoint::Activation;
use nq_runtime::policy::mlp::tanh_fast;

/// `x [rows, in] · w [in, out] + b [1, out]`, then `act` if any (a head has none).
pub fn linear<B: Backend>(
    x: Tensor<B, 2>,
    w: Tensor<B, 2>,
    b: Tensor<B, 2>,
    act: Option<Activation>,
) -> Tensor<B, 2> {
    let (Some(xp), Some(wp), Some(bp)) = (float(&x), float(&w), float(&b)) else {
        return generic_linear(x, w, b, act);
    };
    let inputs: [Box<dyn Any>; 3] = [Box::new(xp), Box::new(wp), Box::new(bp)];
    if let Some([x, w, b]) = downcast_all::<NdArrayTensor>(&inputs) {
        if let Some(y) = ndarray_forward(&x, &w, &b, act) {
            return rewrap(y);
        }
    } else if let Some([x, w, b]) = downcast_all::<AutodiffTensor>(&inputs) {
        if let Some(y) = autodiff_forward(x, w, b, act) {
            return rewrap(y);
        }
    }
    generic_linear(x, w, b, act)
}

fn generic_linear<B: Backend>(
    x: Tensor<B, 2>,
    w: Tensor<B, 2>,
    b: Tensor<B, 2>,
    act: Option<Activation>,
) -> Tensor<B, 2> {
    let z = x.matmul(w) + b;
    match act {
        Some(Activation::Tanh) => z.tanh(),
        Some(Activation::Relu) => activation::relu(z),
        None => z,
    }
}

fn float<B: Backend>(t: &Tensor<B, 2>) -> Option<B::FloatTensorPrimitive> {
    match t.clone().into_primitive() {
        TensorPrimitive::Float(p) => Some(p),
        TensorPrimitive::QFloat(_) => None,
    }
}

fn downcast_all<T: Clone + 'static>(inputs: &[Box<dyn Any>; 3]) -> Option<[T; 3]> {
    let get = |i: usize| inputs[i].downcast_ref::<T>().cloned();
    Some([get(0)?, get(1)?, get(2)?])
}

/// Hands a primitive recognised as a concrete type back as `B`'s own.
fn rewrap<B: Backend, T: 'static>(t: T) -> Tensor<B, 2> {
    let boxed: Box<dyn Any> = Box::new(t);
    let p = *boxed
        .downcast::<B::FloatTensorPrimitive>()
        .expect("B's float primitive is the type it was recognised as");
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

/// burn-autodiff's tensor type (not exported under its own name).
type AutodiffTensor = FloatTensor<Autodiff<NdArray>>;

fn view2(t: &NdArrayTensor) -> Option<ArrayView2<'_, f32>> {
    match t {
        NdArrayTensor::F32(s) => s.view().into_dimensionality::<Ix2>().ok(),
        _ => None,
    }
}

fn to_tensor(a: Array2<f32>) -> NdArrayTensor {
    NdArrayTensor::from(a.into_shared().into_dyn())
}

/// `None` when an operand is not a 2-D f32 array of matching shapes.
fn ndarray_forward(
    x: &NdArrayTensor,
    w: &NdArrayTensor,
    b: &NdArrayTensor,
    act: Option<Activation>,
) -> Option<NdArrayTensor> {
    let (x, w, b) = (view2(x)?, view2(w)?, view2(b)?);
    let (rows, inputs, outputs) = (x.nrows(), x.ncols(), w.ncols());
    if w.nrows() != inputs || b.dim() != (1, outputs) {
        return None;
    }
    let bias: Vec<f32> = b.iter().copied().collect();
    let mut z = Vec::with_capacity(rows * outputs);
    for _ in 0..rows {
        z.extend_from_slice(&bias);
    }
    let mut z = Array2::from_shape_vec((rows, outputs), z).ok()?;
    matmul_into(x, w, z.view_mut(), true);
    let values = z.as_slice_mut().expect("fresh arrays are contiguous");
    match act {
        Some(Activation::Tanh) => tanh_in_place(values),
        Some(Activation::Relu) => relu_in_place(values),
        None => {}
    }
    Some(to_tensor(z))
}

#[derive(Debug, Clone)]
struct LinearState {
    x: NdArrayTensor,
    w: NdArrayTensor,
    /// The output and the activation applied to it, if any: both
    /// derivatives are functions of the output (`1 - y²`; `y > 0`).
    y: Option<(NdArrayTensor, Activation)>,
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<NdArray, 3> for LinearBackward {
    type State = LinearState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        // burn-autodiff runs every backward step under its one graph lock. A
        // product split over the rayon pool would wait for workers that may
        // be waiting for that lock themselves (another thread's autodiff op,
        // e.g. the other half of `join_on_cpu` or a concurrent test): a
        // deadlock. So the products of a backward step run on this thread.
        alone(|| linear_backward(ops, grads));
    }
}

fn linear_backward(ops: Ops<LinearState, 3>, grads: &mut Gradients) {
    let grad = grads.consume::<NdArray>(&ops.node);
    let [x_node, w_node, b_node] = ops.parents;
    let st = ops.state;
    let NdArrayTensor::F32(storage) = grad else {
        unreachable!("the layer's output is f32, so is its gradient")
    };
    let mut dz = storage
        .into_owned()
        .into_dimensionality::<Ix2>()
        .expect("the layer's output is 2-D");
    if let Some((y, act)) = &st.y {
        let y = view2(y).expect("saved output is 2-D f32");
        match act {
            Activation::Tanh => scale_by_derivative(dz.view_mut(), y, tanh_grad),
            Activation::Relu => scale_by_derivative(dz.view_mut(), y, relu_grad),
        }
    }
    let x = view2(&st.x).expect("saved input is 2-D f32");
    let w = view2(&st.w).expect("saved weight is 2-D f32");
    if let Some(node) = x_node {
        let mut dx = Array2::<f32>::zeros(x.raw_dim());
        matmul_into(dz.view(), w.t(), dx.view_mut(), false);
        grads.register::<NdArray>(node.id, to_tensor(dx));
    }
    if let Some(node) = w_node {
        let mut dw = Array2::<f32>::zeros(w.raw_dim());
        matmul_into(x.t(), dz.view(), dw.view_mut(), false);
        grads.register::<NdArray>(node.id, to_tensor(dw));
    }
    if let Some(node) = b_node {
        let db = dz.sum_axis(Axis(0)).insert_axis(Axis(0));
        grads.register::<NdArray>(node.id, to_tensor(db));
    }
}

fn autodiff_forward(
    x: AutodiffTensor,
    w: AutodiffTensor,
    b: AutodiffTensor,
    act: Option<Activation>,
) -> Option<AutodiffTensor> {
    let y = ndarray_forward(&x.primitive, &w.primitive, &b.primitive, act)?;
    // The trainer's CPU backend does not checkpoint (recompute) activations.
    Some(
        match LinearBackward
            .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), b.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = LinearState {
                    x: x.primitive,
                    w: w.primitive,
                    y: act.map(|act| (y.clone(), act)),
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        },
    )
}

/// `c = a · b`, or `c += a · b` when `accumulate`, on any strides.
///
/// gemm (the crate burn-flex and candle use) rather than ndarray's
/// matrixmultiply: it has AVX-512 kernels and splits the output over the
/// rayon pool (matrixmultiply's threading needs a crate that is not in this
/// build). The split is over output blocks, never over the inner dimension,
/// so results do not depend on the thread count (tested).
fn matmul_into(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert_eq!(b.nrows(), k, "inner dimensions");
    assert_eq!(c.dim(), (m, n), "output shape");
    let (sa, sb, sc) = (a.strides(), b.strides(), c.strides());
    let (sa, sb, sc) = ([sa[0], sa[1]], [sb[0], sb[1]], [sc[0], sc[1]]);
    // SAFETY: the pointers and strides come from live ndarray views of the
    // asserted shapes; `c` is a unique mutable view that aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            sc[1],
            sc[0],
            accumulate,
            a.as_ptr(),
            sa[1],
            sa[0],
            b.as_ptr(),
            sb[1],
            sb[0],
            1.0,
            1.0,
            false,
            false,
            false,
            gemm_parallelism(m * n * k),
        );
    }
}

thread_local! {
    /// Set while this thread runs one half of [`join_on_cpu`]: the other half
    /// already has the other cores, so its products run on this one alone.
    static IN_PAIR: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether `B` is the CPU backend these kernels serve (plain or under autodiff).
pub fn is_cpu_backend<B: Backend>() -> bool {
    let primitive = TypeId::of::<B::FloatTensorPrimitive>();
    primitive == TypeId::of::<NdArrayTensor>() || primitive == TypeId::of::<AutodiffTensor>()
}

/// Runs `a` and `b` side by side on the CPU backend, each with single-threaded
/// products (the actor's and the critic's graphs are disjoint, and two whole
/// passes at once keep both cores busier than splitting every product), or
/// one after the other on any other backend. The split never changes a result.
pub fn join_on_cpu<B: Backend, RA: Send, RB: Send>(
    a: impl FnOnce() -> RA + Send,
    b: impl FnOnce() -> RB + Send,
) -> (RA, RB) {
    if !is_cpu_backend::<B>() || rayon::current_num_threads() < 2 {
        return (a(), b());
    }
    rayon::join(|| alone(a), || alone(b))
}

fn alone<R>(f: impl FnOnce() -> R) -> R {
    let was = IN_PAIR.with(|flag| flag.replace(true));
    let result = f();
    IN_PAIR.with(|flag| flag.set(was));
    result
}

/// Below this many multiply-adds a product is not worth waking threads for.
const PARALLEL_MIN_WORK: usize = 1 << 20;

fn gemm_parallelism(work: usize) -> gemm::Parallelism {
    let in_pair = IN_PAIR.with(|flag| flag.get());
    if !in_pair && work >= PARALLEL_MIN_WORK && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    }
}

fn tanh_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        unsafe { tanh_in_place_avx2(values) };
        return;
    }
    values.iter_mut().for_each(|v| *v = tanh_fast(*v));
}

/// The same loop, compiled for 8-wide vectors; the results are the same
/// as the scalar loop's (no FMA contraction: Rust does not fuse `a * b + c`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tanh_in_place_avx2(values: &mut [f32]) {
    values.iter_mut().for_each(|v| *v = tanh_fast(*v));
}

/// The runtime's relu (`nq_runtime::policy::mlp::relu_in_place`): NaN and
/// -0 become +0, so the trained and the deployed activations are the same bits.
fn relu_in_place(values: &mut [f32]) {
    values
        .iter_mut()
        .for_each(|v| *v = if *v > 0.0 { *v } else { 0.0 });
}

/// `dz ⊙ f'(y)` in place, as one flat loop when both are contiguous.
fn scale_by_derivative(
    mut dz: ArrayViewMut2<'_, f32>,
    y: ArrayView2<'_, f32>,
    grad: impl Fn(&mut f32, f32),
) {
    match (dz.as_slice_mut(), y.as_slice()) {
        (Some(g), Some(y)) => g.iter_mut().zip(y).for_each(|(g, &y)| grad(g, y)),
        _ => dz.zip_mut_with(&y, |g, &y| grad(g, y)),
    }
}

#[inline]
fn tanh_grad(g: &mut f32, y: f32) {
    *g *= 1.0 - y * y;
}

/// burn's relu backward keeps the gradient where `z > 0`; `y > 0` is the same set.
#[inline]
fn relu_grad(g: &mut f32, y: f32) {
    // A select, not a branch: the signs are random, a branch mispredicts half the time.
    *g = if y > 0.0 { *g } else { 0.0 };
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn the_layer_tanh_is_the_runtime_tanh_bit_for_bit() {
        // Over a dense grid, the tails and the tiny-argument region, on
        // whichever path (8 wide or scalar) this CPU takes.
        let mut xs: Vec<f32> = (-12 * 4096..=12 * 4096)
            .map(|i| i as f32 / 4096.0)
            .collect();
        xs.extend([
            0.0f32,
            -0.0,
            1e-30,
            -1e-30,
            3e-4,
            -3e-4,
            1e-6,
            f32::MAX,
            f32::MIN,
        ]);
        xs.extend([f32::INFINITY, f32::NEG_INFINITY]);
        let mut ys = xs.clone();
        tanh_in_place(&mut ys);
        for (x, y) in xs.iter().zip(&ys) {
            assert_eq!(y.to_bits(), tanh_fast(*x).to_bits(), "tanh({x})");
        }
        assert_eq!(ys[12 * 4096], 0.0);
        assert_eq!(*ys.last().unwrap(), -1.0);
    }

    #[test]
    fn the_layer_relu_is_the_runtime_relu_bit_for_bit() {
        let xs = [
            -2.5f32,
            -0.0,
            0.0,
            1e-30,
            -1e-30,
            3.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        let (mut ours, mut theirs) = (xs, xs);
        relu_in_place(&mut ours);
        nq_runtime::policy::mlp::relu_in_place(&mut theirs);
        for (x, (a, b)) in xs.iter().zip(ours.iter().zip(&theirs)) {
            assert_eq!(a.to_bits(), b.to_bits(), "relu({x})");
        }
        assert_eq!(ours[1].to_bits(), 0.0f32.to_bits(), "-0 becomes +0");
    }

    fn data(rows: usize, cols: usize, seed: u32) -> TensorData {
        let v = (0..rows * cols)
            .map(|i| {
                let h = (i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 8;
                (h % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        TensorData::new(v, [rows, cols])
    }

    fn close(a: Vec<f32>, b: Vec<f32>, tol: f32) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    fn vec<B: Backend>(t: Tensor<B, 2>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn forward_and_gradients_on_autodiff_ndarray_match_burns_own_ops() {
        type B = Autodiff<NdArray>;
        let device = Default::default();
        for act in [Some(Activation::Tanh), Some(Activation::Relu), None] {
            let leaf = |d: TensorData| Tensor::<B, 2>::from_data(d, &device).require_grad();
            let (x1, w1, b1) = (
                leaf(data(37, 11, 1)),
                leaf(data(11, 5, 2)),
                leaf(data(1, 5, 3)),
            );
            let (x2, w2, b2) = (
                leaf(data(37, 11, 1)),
                leaf(data(11, 5, 2)),
                leaf(data(1, 5, 3)),
            );
            let weights = Tensor::<B, 2>::from_data(data(37, 5, 4), &device);
            let fast = linear(x1.clone(), w1.clone(), b1.clone(), act);
            let reference = generic_linear(x2.clone(), w2.clone(), b2.clone(), act);
            close(vec(fast.clone()), vec(reference.clone()), 1e-6);
            if act == Some(Activation::Relu) {
                // Both sides of the kink are exercised: the gradient is cut somewhere.
                let y = vec(fast.clone());
                assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0));
            }
            let g1 = (fast * weights.clone()).sum().backward();
            let g2 = (reference * weights).sum().backward();
            close(vec(x1.grad(&g1).unwrap()), vec(x2.grad(&g2).unwrap()), 1e-5);
            close(vec(w1.grad(&g1).unwrap()), vec(w2.grad(&g2).unwrap()), 1e-5);
            close(vec(b1.grad(&g1).unwrap()), vec(b2.grad(&g2).unwrap()), 1e-5);
        }
    }

    #[test]
    fn an_input_without_gradient_gets_none_and_the_others_still_flow() {
        type B = Autodiff<NdArray>;
        let device = Default::default();
        let x = Tensor::<B, 2>::from_data(data(8, 3, 5), &device);
        let w = Tensor::<B, 2>::from_data(data(3, 4, 6), &device).require_grad();
        let b = Tensor::<B, 2>::from_data(data(1, 4, 7), &device).require_grad();
        let grads = linear(x.clone(), w.clone(), b.clone(), Some(Activation::Tanh))
            .sum()
            .backward();
        assert!(x.grad(&grads).is_none());
        assert_eq!(w.grad(&grads).unwrap().dims(), [3, 4]);
        assert_eq!(b.grad(&grads).unwrap().dims(), [1, 4]);
    }

    #[test]
    fn products_do_not_depend_on_the_thread_count() {
        let a = Array2::from_shape_vec((300, 200), data(300, 200, 11).to_vec::<f32>().unwrap())
            .unwrap();
        let b = Array2::from_shape_vec((200, 256), data(200, 256, 12).to_vec::<f32>().unwrap())
            .unwrap();
        let product = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut c = Array2::<f32>::ones((300, 256));
                matmul_into(a.view(), b.view(), c.view_mut(), true);
                let mut ct = Array2::<f32>::zeros((200, 256));
                matmul_into(a.t(), c.view(), ct.view_mut(), false);
                (c, ct)
            })
        };
        const { assert!(300 * 200 * 256 >= PARALLEL_MIN_WORK, "big enough to split") };
        let (one, one_t) = product(1);
        for threads in [2, 3] {
            let (many, many_t) = product(threads);
            assert!(one
                .iter()
                .zip(&many)
                .all(|(x, y)| x.to_bits() == y.to_bits()));
            assert!(one_t
                .iter()
                .zip(&many_t)
                .all(|(x, y)| x.to_bits() == y.to_bits()));
        }
        // And the product is right (against a plain loop).
        let reference = 1.0 + (0..200).map(|k| a[[7, k]] * b[[k, 9]]).sum::<f32>();
        assert!((one[[7, 9]] - reference).abs() < 1e-4 * (1.0 + reference.abs()));
    }

    #[test]
    fn plain_ndarray_and_strided_inputs_agree_with_burns_own_ops() {
        let device = Default::default();
        let x = Tensor::<NdArray, 2>::from_data(data(9, 20, 8), &device);
        let w = Tensor::<NdArray, 2>::from_data(data(6, 9, 9), &device);
        let b = Tensor::<NdArray, 2>::from_data(data(1, 6, 10), &device);
        // xᵀ and wᵀ are strided views: the layer reads them as they are.
        let (xt, wt) = (x.transpose(), w.transpose());
        for act in [Some(Activation::Tanh), Some(Activation::Relu)] {
            close(
                vec(linear(xt.clone(), wt.clone(), b.clone(), act)),
                vec(generic_linear(xt.clone(), wt.clone(), b.clone(), act)),
                1e-6,
            );
        }
    }
}
