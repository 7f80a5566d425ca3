//! Does the training device compute what the CPU computes?
//!
//! burn 0.21's fused CUDA backend has an open bug (tracel-ai/burn#5122): the
//! batched forward pass of an MLP whose head has one output column, shape
//! `[N, 1]` as our critic's, comes out wrong for every row after the first.
//! PPO would then train on wrong values and advantages without any error,
//! and the checkpoint would still load. So before a run on a device other
//! than the CPU, `nq-train` puts the run's own network shapes on it and
//! compares, on a batch of inputs:
//! - the logits and values of the rollout path ([`Agent::evaluate`]) with the
//!   host's plain forward pass ([`HostMlp::forward_one`]);
//! - the gradients of a fixed scalar function of logits and values with the
//!   CPU backend's.
//!
//! Each error is the largest absolute difference over a tensor divided by
//! the largest magnitude of the reference tensor, so a head initialised at
//! 0.01 scale counts as much as one at 1. The bug's errors are of order 0.1
//! to 1; float reordering stays near 1e-6, TF32 matmuls near 1e-3.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use serde::Serialize;

use crate::net::tensor_to_vec;
use crate::ppo::{Agent, HostAgent};
use crate::rng::Rng;
use crate::{CpuBackend, TrainConfig, UserError};

/// Rows in the checked batch: more than one, and not a power of two.
pub const CHECK_ROWS: usize = 301;
/// The largest relative error accepted: room for TF32 tensor-core matmuls
/// (about 1e-3 per layer), ten times below the bug's errors.
pub const TOLERANCE: f64 = 1e-2;

/// What the check measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DeviceCheck {
    pub rows: usize,
    /// Logits and values against the host forward pass.
    pub forward_error: f64,
    /// Parameter gradients against the CPU backend's.
    pub gradient_error: f64,
}

impl DeviceCheck {
    pub fn passed(&self) -> bool {
        // NaN fails too.
        self.forward_error <= TOLERANCE && self.gradient_error <= TOLERANCE
    }
}

impl std::fmt::Display for DeviceCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows: forward error {:.1e}, gradient error {:.1e} (tolerance {:.0e})",
            self.rows, self.forward_error, self.gradient_error, TOLERANCE
        )
    }
}

/// The outputs one side computed, on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutputs {
    /// `[rows * actions]`.
    pub logits: Vec<f32>,
    /// `[rows]`.
    pub values: Vec<f32>,
    /// One per parameter, in [`Agent::params`] order.
    pub gradients: Vec<Vec<f32>>,
}

/// The agent and inputs of a check: the run's shapes with every head at
/// gain 1 (so no output is tiny), and inputs spread like clipped
/// normalised observations.
#[derive(Debug, Clone)]
pub struct CheckCase {
    pub agent: HostAgent,
    /// `[rows * obs_dim]`.
    pub inputs: Vec<f32>,
    /// Coefficients of the scalar function whose gradients are compared,
    /// one per logit and one per value.
    pub logit_weights: Vec<f32>,
    pub value_weights: Vec<f32>,
}

impl CheckCase {
    /// `shape`: an agent of the run's shapes (its weights are not used).
    pub fn new(shape: &HostAgent, seed: u64) -> CheckCase {
        let mut rng = Rng::stream(seed, 0xdc);
        let mut agent = shape.clone();
        for mlp in [&mut agent.actor, &mut agent.critic] {
            for layer in &mut mlp.layers {
                let scale = (1.0 / layer.inputs as f64).sqrt();
                for w in &mut layer.weight {
                    *w = (rng.normal() * scale) as f32;
                }
                for b in &mut layer.bias {
                    *b = (rng.normal() * 0.1) as f32;
                }
            }
        }
        if agent.shared_trunk {
            let trunk = agent.actor.layers.len() - 1;
            agent.critic.layers[..trunk].clone_from_slice(&agent.actor.layers[..trunk]);
        }
        let dim = agent.actor.layers[0].inputs;
        let actions = agent.actor.layers.last().map_or(0, |l| l.outputs);
        let mut normal = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| (rng.normal() * 1.5).clamp(-5.0, 5.0) as f32)
                .collect()
        };
        CheckCase {
            inputs: normal(CHECK_ROWS * dim),
            logit_weights: normal(CHECK_ROWS * actions),
            value_weights: normal(CHECK_ROWS),
            agent,
        }
    }

    /// Logits and values by the host's plain forward pass.
    pub fn host_forward(&self) -> (Vec<f32>, Vec<f32>) {
        let dim = self.agent.actor.layers[0].inputs;
        let mut logits = Vec::new();
        let mut values = Vec::new();
        for x in self.inputs.chunks_exact(dim) {
            logits.extend(self.agent.actor.forward_one(x));
            values.extend(self.agent.critic.forward_one(x));
        }
        (logits, values)
    }

    /// Runs the case on backend `B`.
    pub fn run<B: AutodiffBackend>(&self, device: &B::Device) -> CheckOutputs {
        let agent: Agent<B> = self.agent.to_backend(device);
        let dim = self.agent.actor.layers[0].inputs;
        let mut logits = vec![0.0; self.logit_weights.len()];
        let mut values = vec![0.0; CHECK_ROWS];
        agent.evaluate(&self.inputs, CHECK_ROWS, device, &mut logits, &mut values);

        let params: Vec<Tensor<B, 2>> = agent
            .params()
            .into_iter()
            .map(|p| p.require_grad())
            .collect();
        let mut tracked = agent.clone();
        tracked.set_params(params.clone());
        let x = Tensor::<B, 2>::from_data(
            TensorData::new(self.inputs.clone(), [CHECK_ROWS, dim]),
            device,
        );
        let (logits_t, values_t) = tracked.forward(x);
        let [rows, actions] = logits_t.dims();
        let c_logits = Tensor::<B, 2>::from_data(
            TensorData::new(self.logit_weights.clone(), [rows, actions]),
            device,
        );
        let c_values = Tensor::<B, 2>::from_data(
            TensorData::new(self.value_weights.clone(), [rows, 1]),
            device,
        );
        let loss = (logits_t * c_logits).sum() + (values_t * c_values).sum();
        let grads = loss.backward();
        let gradients = params
            .iter()
            .map(|p| {
                p.grad(&grads)
                    .map(|g| tensor_to_vec(&g))
                    .unwrap_or_default()
            })
            .collect();
        CheckOutputs {
            logits,
            values,
            gradients,
        }
    }

    /// Compares `device` with the host forward pass and with `cpu` (the
    /// same case on the CPU backend).
    pub fn compare(&self, device: &CheckOutputs, cpu: &CheckOutputs) -> DeviceCheck {
        let (logits, values) = self.host_forward();
        let forward_error = worse(
            relative_error(&device.logits, &logits),
            relative_error(&device.values, &values),
        );
        let gradient_error = if device.gradients.len() == cpu.gradients.len() {
            device
                .gradients
                .iter()
                .zip(&cpu.gradients)
                .map(|(d, c)| relative_error(d, c))
                .fold(0.0, worse)
        } else {
            f64::INFINITY
        };
        DeviceCheck {
            rows: CHECK_ROWS,
            forward_error,
            gradient_error,
        }
    }
}

/// `max |a - b| / max |b|`; infinite when the lengths differ or `b` is all
/// zeros, NaN when `a` holds a NaN (both fail the check).
pub fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return f64::INFINITY;
    }
    let scale = b.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
    if scale == 0.0 {
        return f64::INFINITY;
    }
    let worst = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
        .fold(0.0f64, worse);
    worst / scale
}

/// The larger of two errors, NaN if either is (`f64::max` drops a NaN).
fn worse(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Runs the check for an agent of the shapes `cfg` trains on `device`.
pub fn check_run_device<B: AutodiffBackend>(
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<DeviceCheck, UserError> {
    let d = cfg.validate()?;
    let shape = HostAgent::init(
        d.obs_dim,
        &cfg.hidden,
        d.num_actions,
        d.activation,
        cfg.shared_trunk,
        &mut Rng::stream(0, 0),
    );
    Ok(check_device::<B>(&shape, device))
}

/// Runs the check for an agent of `shape` on `device` of backend `B`.
pub fn check_device<B: AutodiffBackend>(shape: &HostAgent, device: &B::Device) -> DeviceCheck {
    let case = CheckCase::new(shape, 7);
    let cpu = case.run::<CpuBackend>(&Default::default());
    let on_device = case.run::<B>(device);
    case.compare(&on_device, &cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nq_formats::checkpoint::Activation;

    fn shape(activation: Activation, shared_trunk: bool) -> HostAgent {
        HostAgent::init(
            225,
            &[64, 48],
            3,
            activation,
            shared_trunk,
            &mut Rng::stream(1, 1),
        )
    }

    fn cpu_case(shared_trunk: bool) -> (CheckCase, CheckOutputs) {
        let case = CheckCase::new(&shape(Activation::Tanh, shared_trunk), 3);
        let out = case.run::<CpuBackend>(&Default::default());
        (case, out)
    }

    #[test]
    fn the_cpu_agrees_with_the_host_forward_pass() {
        for activation in [Activation::Tanh, Activation::Relu] {
            for shared_trunk in [false, true] {
                let check = check_device::<CpuBackend>(
                    &shape(activation, shared_trunk),
                    &Default::default(),
                );
                assert!(
                    check.passed(),
                    "{activation:?} shared {shared_trunk}: {check}"
                );
                assert!(check.forward_error < 1e-5, "{check}");
                assert_eq!(check.rows, CHECK_ROWS);
            }
        }
    }

    #[test]
    fn the_case_has_outputs_of_every_scale() {
        let (case, out) = cpu_case(false);
        let spread = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert_eq!(out.logits.len(), CHECK_ROWS * 3);
        assert!(spread(&out.logits) > 0.3, "heads are not near zero");
        assert!(spread(&out.values) > 0.3);
        assert_eq!(out.gradients.len(), case.agent.actor.layers.len() * 4);
        assert!(
            out.gradients.iter().all(|g| spread(g) > 0.0),
            "every parameter gets a gradient"
        );
    }

    /// The signature of tracel-ai/burn#5122: the first row right, the rest off.
    #[test]
    fn wrong_rows_after_the_first_fail_the_check() {
        for shared_trunk in [false, true] {
            let (case, cpu) = cpu_case(shared_trunk);
            let mut device = cpu.clone();
            for v in &mut device.values[1..] {
                *v += 0.1 * v.signum();
            }
            let check = case.compare(&device, &cpu);
            assert!(!check.passed(), "{check}");
            assert!(check.forward_error > 1e-2, "{check}");
            assert!(case.compare(&cpu, &cpu).passed());
        }
    }

    #[test]
    fn a_wrong_gradient_or_a_nan_fails_the_check() {
        let (case, cpu) = cpu_case(false);
        let mut device = cpu.clone();
        let last = device.gradients.len() - 1;
        device.gradients[last][0] *= 1.5;
        let check = case.compare(&device, &cpu);
        assert!(
            check.forward_error < 1e-5 && check.gradient_error > 1e-2,
            "{check}"
        );
        assert!(!check.passed());

        let mut device = cpu.clone();
        device.logits[7] = f32::NAN;
        assert!(!case.compare(&device, &cpu).passed());

        let mut device = cpu.clone();
        device.gradients.pop();
        assert!(!case.compare(&device, &cpu).passed(), "a missing gradient");
    }

    #[test]
    fn relative_error_is_scaled_by_the_reference() {
        assert!((relative_error(&[0.011, 0.0], &[0.01, 0.0]) - 0.1).abs() < 1e-6);
        assert_eq!(relative_error(&[1.0], &[1.0, 2.0]), f64::INFINITY);
        assert_eq!(relative_error(&[1.0], &[0.0]), f64::INFINITY);
        assert!(relative_error(&[f32::NAN, 0.0], &[1.0, 1.0]).is_nan());
    }
}
