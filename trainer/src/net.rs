//! The policy networks as plain parameter lists, and Adam with a global
//! gradient-norm clip.
//!
//! Parameters live on the backend as `[w0, b0, w1, b1, ...]` with weights
//! `[in, out]` (burn's layout; checkpoints transpose to `[out, in]`) and
//! biases `[1, out]`. Keeping them as bare tensors, rather than burn `Module`s,
//! makes the optimiser state, the checkpoint mapping, the phase-2 transfer
//! and bit-exact resume direct; burn's own gradient clipping is per tensor,
//! while PPO clips the global norm.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use nq_formats::checkpoint::Activation;

use crate::rng::Rng;

/// A multi-layer perceptron with `activation` on its hidden layers and a
/// linear head.
#[derive(Debug, Clone)]
pub struct Mlp<B: Backend> {
    pub params: Vec<Tensor<B, 2>>,
    pub activation: Activation,
}

/// Layer sizes and initial weights of an MLP, on the host. Weights are
/// `[out, in]` row-major, as in the checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMlp {
    pub layers: Vec<HostLayer>,
    /// Of the hidden layers (the checkpoint's `activation`).
    pub activation: Activation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostLayer {
    pub inputs: usize,
    pub outputs: usize,
    /// `[outputs, inputs]` row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl HostMlp {
    /// Orthogonal initialisation (Saxe et al. 2014; CleanRL `layer_init`):
    /// gain sqrt(2) on hidden layers, `head_gain` on the last, zero biases.
    pub fn orthogonal(
        sizes: &[usize],
        head_gain: f64,
        activation: Activation,
        rng: &mut Rng,
    ) -> HostMlp {
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, io)| {
                let gain = if i + 2 == sizes.len() {
                    head_gain
                } else {
                    std::f64::consts::SQRT_2
                };
                HostLayer {
                    inputs: io[0],
                    outputs: io[1],
                    weight: orthogonal(io[1], io[0], gain, rng),
                    bias: vec![0.0; io[1]],
                }
            })
            .collect();
        HostMlp { layers, activation }
    }

    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![self.layers[0].inputs];
        s.extend(self.layers.iter().map(|l| l.outputs));
        s
    }

    pub fn to_backend<B: Backend>(&self, device: &B::Device) -> Mlp<B> {
        let mut params = Vec::with_capacity(self.layers.len() * 2);
        for l in &self.layers {
            let mut w_in_out = vec![0.0f32; l.weight.len()];
            for o in 0..l.outputs {
                for i in 0..l.inputs {
                    w_in_out[i * l.outputs + o] = l.weight[o * l.inputs + i];
                }
            }
            params.push(Tensor::from_data(
                TensorData::new(w_in_out, [l.inputs, l.outputs]),
                device,
            ));
            params.push(Tensor::from_data(
                TensorData::new(l.bias.clone(), [1, l.outputs]),
                device,
            ));
        }
        Mlp {
            params,
            activation: self.activation,
        }
    }

    /// Plain f32 forward of one input vector (reference for tests).
    pub fn forward_one(&self, x: &[f32]) -> Vec<f32> {
        let mut h = x.to_vec();
        for (li, l) in self.layers.iter().enumerate() {
            let mut out = l.bias.clone();
            for (o, acc) in out.iter_mut().enumerate() {
                let row = &l.weight[o * l.inputs..(o + 1) * l.inputs];
                *acc += row.iter().zip(&h).map(|(w, x)| w * x).sum::<f32>();
            }
            if li + 1 < self.layers.len() {
                match self.activation {
                    Activation::Tanh => out.iter_mut().for_each(|v| *v = v.tanh()),
                    Activation::Relu => out.iter_mut().for_each(|v| *v = v.max(0.0)),
                }
            }
            h = out;
        }
        h
    }
}

/// A `[rows, cols]` matrix with orthonormal rows or columns (whichever are
/// fewer), times `gain`, by modified Gram-Schmidt on a Gaussian matrix.
fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut Rng) -> Vec<f32> {
    let (n, m) = if rows >= cols {
        (rows, cols)
    } else {
        (cols, rows)
    };
    // m orthonormal vectors of length n.
    let mut q: Vec<Vec<f64>> = (0..m)
        .map(|_| (0..n).map(|_| rng.normal()).collect())
        .collect();
    for k in 0..m {
        for j in 0..k {
            let (done, rest) = q.split_at_mut(k);
            let dot: f64 = done[j].iter().zip(&rest[0]).map(|(a, b)| a * b).sum();
            rest[0]
                .iter_mut()
                .zip(&done[j])
                .for_each(|(x, y)| *x -= dot * y);
        }
        let norm = q[k].iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        q[k].iter_mut().for_each(|x| *x /= norm);
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let v = if rows >= cols { q[c][r] } else { q[r][c] };
            out[r * cols + c] = (v * gain) as f32;
        }
    }
    out
}

impl<B: Backend> Mlp<B> {
    pub fn num_layers(&self) -> usize {
        self.params.len() / 2
    }

    /// `[batch, in] -> [batch, out]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.head(self.hidden(x))
    }

    /// The hidden layers' output (the trunk, when actor and critic share it).
    pub fn hidden(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        (0..self.num_layers() - 1).fold(x, |h, l| self.layer(h, l, Some(self.activation)))
    }

    /// The linear last layer, on the hidden layers' output.
    pub fn head(&self, h: Tensor<B, 2>) -> Tensor<B, 2> {
        self.layer(h, self.num_layers() - 1, None)
    }

    fn layer(&self, x: Tensor<B, 2>, l: usize, act: Option<Activation>) -> Tensor<B, 2> {
        crate::layer::linear(
            x,
            self.params[2 * l].clone(),
            self.params[2 * l + 1].clone(),
            act,
        )
    }

    pub fn to_host(&self) -> HostMlp {
        let layers = (0..self.num_layers())
            .map(|l| {
                let [inputs, outputs] = self.params[2 * l].dims();
                let w_in_out = tensor_to_vec(&self.params[2 * l]);
                let mut weight = vec![0.0f32; w_in_out.len()];
                for i in 0..inputs {
                    for o in 0..outputs {
                        weight[o * inputs + i] = w_in_out[i * outputs + o];
                    }
                }
                HostLayer {
                    inputs,
                    outputs,
                    weight,
                    bias: tensor_to_vec(&self.params[2 * l + 1]),
                }
            })
            .collect();
        HostMlp {
            layers,
            activation: self.activation,
        }
    }
}

pub fn tensor_to_vec<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Vec<f32> {
    t.to_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 tensor data")
}

/// Adam (Kingma & Ba 2015) with PyTorch's update form and the global
/// gradient-norm clip PPO uses, over all parameters at once: the moments,
/// and each step's arithmetic, are one buffer laid out end to end in
/// [`crate::ppo::Agent::params`] order. A step is then about a dozen
/// element-wise operations whatever the number of layers, instead of a dozen
/// per parameter: on a GPU each operation costs a launch and host work, and
/// the per-parameter steps were most of an update's operations.
#[derive(Debug, Clone)]
pub struct Adam<B: Backend> {
    m: Tensor<B, 1>,
    v: Tensor<B, 1>,
    shapes: Vec<[usize; 2]>,
    pub step: u64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl<B: Backend> Adam<B> {
    pub fn new(params: &[Tensor<B, 2>], eps: f64) -> Adam<B> {
        let zeros = flatten(params).zeros_like();
        Adam {
            m: zeros.clone(),
            v: zeros,
            shapes: params.iter().map(|p| p.dims()).collect(),
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps,
        }
    }

    /// The first and second moments, one tensor per parameter (checkpoints).
    pub fn moments(&self) -> (Vec<Tensor<B, 2>>, Vec<Tensor<B, 2>>) {
        (
            unflatten(self.m.clone(), &self.shapes),
            unflatten(self.v.clone(), &self.shapes),
        )
    }

    /// Restores moments as [`Adam::moments`] gives them; `None` (nothing
    /// changed) when their shapes are not those of this optimiser's
    /// parameters.
    pub fn set_moments(&mut self, m: &[Tensor<B, 2>], v: &[Tensor<B, 2>]) -> Option<()> {
        let shapes_of = |ts: &[Tensor<B, 2>]| ts.iter().map(|t| t.dims()).collect::<Vec<_>>();
        if shapes_of(m) != self.shapes || shapes_of(v) != self.shapes {
            return None;
        }
        self.m = flatten(m);
        self.v = flatten(v);
        Some(())
    }

    /// One step over `params` with `grads` (same order), after scaling all
    /// gradients so their global L2 norm is at most `max_norm`. Returns the
    /// norm before clipping, `[1]`, on the device.
    pub fn step(
        &mut self,
        params: &mut [Tensor<B, 2>],
        grads: Vec<Tensor<B, 2>>,
        lr: f64,
        max_norm: f32,
    ) -> Tensor<B, 1> {
        // The global norm and the clip factor stay on the device: no host
        // sync here at all.
        let g = flatten(&grads);
        let norm = g.clone().powi_scalar(2).sum().sqrt();
        let scale = norm
            .clone()
            .add_scalar(1e-6)
            .recip()
            .mul_scalar(max_norm)
            .clamp_max(1.0);
        self.step += 1;
        let bias1 = 1.0 - self.beta1.powi(self.step as i32);
        let bias2 = 1.0 - self.beta2.powi(self.step as i32);
        let step_size = lr / bias1;
        let g = g * scale;
        self.m = self.m.clone().mul_scalar(self.beta1) + g.clone().mul_scalar(1.0 - self.beta1);
        self.v =
            self.v.clone().mul_scalar(self.beta2) + g.powi_scalar(2).mul_scalar(1.0 - self.beta2);
        let denom = self
            .v
            .clone()
            .sqrt()
            .div_scalar(bias2.sqrt())
            .add_scalar(self.eps);
        let update = self.m.clone().div(denom).mul_scalar(step_size);
        for (p, u) in params.iter_mut().zip(unflatten(update, &self.shapes)) {
            *p = p.clone() - u;
        }
        norm
    }
}

/// Tensors end to end, each row-major, as one vector.
fn flatten<B: Backend>(tensors: &[Tensor<B, 2>]) -> Tensor<B, 1> {
    let rows = tensors
        .iter()
        .map(|t| {
            let [rows, cols] = t.dims();
            t.clone().reshape([rows * cols])
        })
        .collect();
    Tensor::cat(rows, 0)
}

/// [`flatten`] undone: tensors of `shapes` from consecutive runs of `flat`.
fn unflatten<B: Backend>(flat: Tensor<B, 1>, shapes: &[[usize; 2]]) -> Vec<Tensor<B, 2>> {
    let mut start = 0;
    shapes
        .iter()
        .map(|&[rows, cols]| {
            let end = start + rows * cols;
            let t = flat
                .clone()
                .narrow(0, start, end - start)
                .reshape([rows, cols]);
            start = end;
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;

    type T2 = Tensor<CpuBackend, 2>;

    fn tensor(rows: usize, cols: usize, values: &[f32]) -> T2 {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [rows, cols]),
            &Default::default(),
        )
    }

    /// PyTorch's Adam after clipping the global gradient norm, in f64 on
    /// plain vectors: the reference for the one-buffer step.
    fn reference_steps(params: &mut [Vec<f64>], grads: &[Vec<Vec<f64>>], lr: f64, max_norm: f64) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-5f64);
        let mut m: Vec<Vec<f64>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
        let mut v = m.clone();
        for (t, step_grads) in grads.iter().enumerate() {
            let norm = step_grads
                .iter()
                .flatten()
                .map(|g| g * g)
                .sum::<f64>()
                .sqrt();
            let scale = (max_norm / (norm + 1e-6)).min(1.0);
            let step = t as i32 + 1;
            let (bias1, bias2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
            for (i, g) in step_grads.iter().enumerate() {
                for (j, g) in g.iter().enumerate() {
                    let g = g * scale;
                    m[i][j] = b1 * m[i][j] + (1.0 - b1) * g;
                    v[i][j] = b2 * v[i][j] + (1.0 - b2) * g * g;
                    params[i][j] -= lr / bias1 * m[i][j] / (v[i][j].sqrt() / bias2.sqrt() + eps);
                }
            }
        }
    }

    #[test]
    fn adam_over_one_buffer_is_adam_with_a_global_norm_clip_per_parameter() {
        let shapes = [(3usize, 2usize), (1, 2), (2, 1)];
        let mut rng = Rng::stream(7, 0);
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        let start: Vec<Vec<f32>> = shapes.iter().map(|&(r, c)| draw(r * c)).collect();
        // Large gradients first (the clip scales them), then small ones.
        let grads: Vec<Vec<Vec<f32>>> = [4.0f32, 0.01]
            .iter()
            .map(|&size| {
                shapes
                    .iter()
                    .map(|&(r, c)| draw(r * c).iter().map(|g| g * size).collect())
                    .collect()
            })
            .collect();
        let mut params: Vec<T2> = shapes
            .iter()
            .zip(&start)
            .map(|(&(r, c), v)| tensor(r, c, v))
            .collect();
        let mut adam = Adam::new(&params, 1e-5);
        let mut norms = Vec::new();
        for step_grads in &grads {
            let g = shapes
                .iter()
                .zip(step_grads)
                .map(|(&(r, c), v)| tensor(r, c, v))
                .collect();
            norms.push(tensor_to_vec(&adam.step(&mut params, g, 1e-2, 0.5))[0]);
        }
        let mut expected: Vec<Vec<f64>> = start
            .iter()
            .map(|p| p.iter().map(|&x| f64::from(x)).collect())
            .collect();
        let grads64: Vec<Vec<Vec<f64>>> = grads
            .iter()
            .map(|s| {
                s.iter()
                    .map(|g| g.iter().map(|&x| f64::from(x)).collect())
                    .collect()
            })
            .collect();
        reference_steps(&mut expected, &grads64, 1e-2, 0.5);
        for (i, (p, e)) in params.iter().zip(&expected).enumerate() {
            assert_eq!(p.dims(), [shapes[i].0, shapes[i].1]);
            for (got, want) in tensor_to_vec(p).iter().zip(e) {
                assert!(
                    (f64::from(*got) - want).abs() < 1e-5,
                    "param {i}: {got} vs {want}"
                );
            }
        }
        let first_norm = grads64[0]
            .iter()
            .flatten()
            .map(|g| g * g)
            .sum::<f64>()
            .sqrt();
        assert!((f64::from(norms[0]) - first_norm).abs() < 1e-4 * first_norm);
        assert!(first_norm > 0.5, "the first step is clipped");

        // The moments go out per parameter and come back unchanged.
        let (m, v) = adam.moments();
        let mut restored = Adam::new(&params, 1e-5);
        assert_eq!(restored.set_moments(&m, &v), Some(()));
        let (m2, v2) = restored.moments();
        for (a, b) in m.iter().chain(&v).zip(m2.iter().chain(&v2)) {
            assert_eq!(tensor_to_vec(a), tensor_to_vec(b));
        }
        assert_eq!(restored.set_moments(&m[1..], &v[1..]), None, "other shapes");
    }
}
