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

/// Adam (Kingma & Ba 2015) with PyTorch's update form, on bare tensors.
#[derive(Debug, Clone)]
pub struct Adam<B: Backend> {
    pub m: Vec<Tensor<B, 2>>,
    pub v: Vec<Tensor<B, 2>>,
    pub step: u64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl<B: Backend> Adam<B> {
    pub fn new(params: &[Tensor<B, 2>], eps: f64) -> Adam<B> {
        Adam {
            m: params.iter().map(|p| p.zeros_like()).collect(),
            v: params.iter().map(|p| p.zeros_like()).collect(),
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps,
        }
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
        let sq = grads
            .iter()
            .map(|g| g.clone().powi_scalar(2).sum())
            .reduce(|a, b| a + b)
            .expect("at least one parameter");
        let norm_t = sq.sqrt();
        let scale = norm_t
            .clone()
            .add_scalar(1e-6)
            .recip()
            .mul_scalar(max_norm)
            .clamp_max(1.0)
            .reshape([1, 1]);
        self.step += 1;
        let bias1 = 1.0 - self.beta1.powi(self.step as i32);
        let bias2 = 1.0 - self.beta2.powi(self.step as i32);
        let step_size = lr / bias1;
        let bias2_sqrt = bias2.sqrt();
        for (i, g) in grads.into_iter().enumerate() {
            let g = g * scale.clone();
            let m =
                self.m[i].clone().mul_scalar(self.beta1) + g.clone().mul_scalar(1.0 - self.beta1);
            let v = self.v[i].clone().mul_scalar(self.beta2)
                + g.powi_scalar(2).mul_scalar(1.0 - self.beta2);
            let denom = v.clone().sqrt().div_scalar(bias2_sqrt).add_scalar(self.eps);
            params[i] = params[i].clone() - m.clone().div(denom).mul_scalar(step_size);
            self.m[i] = m;
            self.v[i] = v;
        }
        norm_t
    }
}
