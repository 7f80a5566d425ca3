//! PPO's algorithm proper (Schulman et al. 2017; the CleanRL `ppo.py` details):
//! masked categorical sampling for rollouts, and the clipped-objective update
//! over shuffled minibatches.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{activation::log_softmax, Tensor, TensorData};
use nq_formats::checkpoint::Activation;
use nq_runtime::ActionMask;

use crate::net::{tensor_to_vec, Adam, HostMlp, Mlp};
use crate::rng::Rng;

/// Added to the logit of every masked action: exp of it is exactly 0 in f32,
/// and it is far from the f32 range limit so sums stay finite.
pub const MASKED_LOGIT: f32 = -1e9;

/// Actor and critic on a non-autodiff backend: separate MLPs, or one hidden
/// trunk with two heads (`shared_trunk`), where the critic's hidden layers are
/// the actor's very tensors.
#[derive(Debug, Clone)]
pub struct Agent<B: Backend> {
    pub actor: Mlp<B>,
    pub critic: Mlp<B>,
    pub shared_trunk: bool,
}

/// Agent weights on the host (checkpoint form: with a shared trunk, actor and
/// critic hold equal copies of it, as SPEC 8's `actor.{i}` / `critic.{i}`).
#[derive(Debug, Clone, PartialEq)]
pub struct HostAgent {
    pub actor: HostMlp,
    pub critic: HostMlp,
    pub shared_trunk: bool,
}

impl HostAgent {
    /// Fresh orthogonal weights: sqrt(2) hidden, 0.01 actor head, 1.0 critic head.
    pub fn init(
        obs_dim: usize,
        hidden: &[u32],
        num_actions: usize,
        activation: Activation,
        shared_trunk: bool,
        rng: &mut Rng,
    ) -> HostAgent {
        let mut sizes = vec![obs_dim];
        sizes.extend(hidden.iter().map(|&h| h as usize));
        let mut actor_sizes = sizes.clone();
        actor_sizes.push(num_actions);
        let actor = HostMlp::orthogonal(&actor_sizes, 0.01, activation, rng);
        let critic = if shared_trunk {
            let last = *sizes.last().expect("at least the input size");
            let head = HostMlp::orthogonal(&[last, 1], 1.0, activation, rng);
            let trunk = &actor.layers[..actor.layers.len() - 1];
            HostMlp {
                layers: trunk.iter().cloned().chain(head.layers).collect(),
                activation,
            }
        } else {
            let mut critic_sizes = sizes;
            critic_sizes.push(1);
            HostMlp::orthogonal(&critic_sizes, 1.0, activation, rng)
        };
        HostAgent {
            actor,
            critic,
            shared_trunk,
        }
    }

    pub fn to_backend<B: Backend>(&self, device: &B::Device) -> Agent<B> {
        let actor = self.actor.to_backend(device);
        let mut critic = self.critic.to_backend(device);
        if self.shared_trunk {
            // One trunk: the critic's hidden layers are the actor's tensors.
            let trunk = trunk_params(&actor);
            critic.params[..trunk].clone_from_slice(&actor.params[..trunk]);
        }
        Agent {
            actor,
            critic,
            shared_trunk: self.shared_trunk,
        }
    }
}

/// How many of an MLP's parameters (weights and biases) are its hidden layers'.
fn trunk_params<B: Backend>(mlp: &Mlp<B>) -> usize {
    mlp.params.len() - 2
}

impl<B: Backend> Agent<B> {
    pub fn to_host(&self) -> HostAgent {
        HostAgent {
            actor: self.actor.to_host(),
            critic: self.critic.to_host(),
            shared_trunk: self.shared_trunk,
        }
    }

    /// How many leading critic parameters are the actor's (the shared trunk).
    fn critic_shared(&self) -> usize {
        if self.shared_trunk {
            trunk_params(&self.actor)
        } else {
            0
        }
    }

    /// Every distinct parameter once, actor first (a shared trunk belongs to it).
    pub fn params(&self) -> Vec<Tensor<B, 2>> {
        self.actor
            .params
            .iter()
            .chain(&self.critic.params[self.critic_shared()..])
            .cloned()
            .collect()
    }

    /// The inverse of [`Agent::params`].
    pub fn set_params(&mut self, params: Vec<Tensor<B, 2>>) {
        *self = self.with_params(params);
    }

    /// An agent of this shape (on any backend) with `params`, in [`Agent::params`] order.
    fn with_params<B2: Backend>(&self, params: Vec<Tensor<B2, 2>>) -> Agent<B2> {
        let (n, shared) = (self.actor.params.len(), self.critic_shared());
        let mut it = params.into_iter();
        let actor: Vec<Tensor<B2, 2>> = it.by_ref().take(n).collect();
        let critic = actor[..shared].iter().cloned().chain(it).collect();
        Agent {
            actor: Mlp {
                params: actor,
                activation: self.actor.activation,
            },
            critic: Mlp {
                params: critic,
                activation: self.critic.activation,
            },
            shared_trunk: self.shared_trunk,
        }
    }

    /// Logits and values of `x`; a shared trunk runs once.
    pub(crate) fn forward(&self, x: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        if self.shared_trunk {
            let h = self.actor.hidden(x);
            (self.actor.head(h.clone()), self.critic.head(h))
        } else {
            crate::layer::join_on_cpu::<B, _, _>(
                || self.actor.forward(x.clone()),
                || self.critic.forward(x.clone()),
            )
        }
    }

    /// Logits `[rows * actions]` and values `[rows]` of normalised observations.
    pub fn evaluate(
        &self,
        obs: &[f32],
        rows: usize,
        device: &B::Device,
        logits: &mut [f32],
        values: &mut [f32],
    ) {
        let dim = obs.len() / rows;
        let actions = logits.len() / rows;
        let x: Tensor<B, 2> = Tensor::from_data(TensorData::new(obs.to_vec(), [rows, dim]), device);
        // One read back per rollout step, not two (each is a device sync on a GPU).
        let (logits_t, values_t) = self.forward(x);
        let both = Tensor::cat(vec![logits_t, values_t], 1);
        let both = tensor_to_vec(&both);
        for ((row, l), v) in both
            .chunks_exact(actions + 1)
            .zip(logits.chunks_exact_mut(actions))
            .zip(values.iter_mut())
        {
            l.copy_from_slice(&row[..actions]);
            *v = row[actions];
        }
    }

    pub fn values(&self, obs: &[f32], rows: usize, device: &B::Device, values: &mut [f32]) {
        let dim = obs.len() / rows;
        let x: Tensor<B, 2> = Tensor::from_data(TensorData::new(obs.to_vec(), [rows, dim]), device);
        values.copy_from_slice(&tensor_to_vec(&self.critic.forward(x)));
    }
}

/// Masked log-softmax of one row of logits, written into `logp` (masked = -inf).
pub fn masked_log_softmax(logits: &[f32], mask: ActionMask, logp: &mut [f32]) {
    let mut max = f32::NEG_INFINITY;
    for (a, &l) in logits.iter().enumerate() {
        if mask.allows_code(a) {
            max = max.max(l);
        }
    }
    let mut sum = 0.0f32;
    for (a, &l) in logits.iter().enumerate() {
        if mask.allows_code(a) {
            sum += (l - max).exp();
        }
    }
    let lse = max + sum.ln();
    for (a, (&l, lp)) in logits.iter().zip(logp.iter_mut()).enumerate() {
        *lp = if mask.allows_code(a) {
            l - lse
        } else {
            f32::NEG_INFINITY
        };
    }
}

/// Samples an action from the masked policy, mixed with a floor: every valid
/// action gets probability at least `floor` (phase-1 exploration). Returns the
/// action and its log-probability under the policy itself (the floor is
/// exploration noise; PPO's clipping bounds its off-policy effect, and it
/// decays to zero early in training).
pub fn sample_action(
    logits: &[f32],
    mask: ActionMask,
    floor: f32,
    rng: &mut Rng,
    logp: &mut [f32],
) -> (u8, f32) {
    masked_log_softmax(logits, mask, logp);
    let valid = mask.count() as f32;
    let floor = floor.min(1.0 / valid);
    let u = rng.uniform() as f32;
    let mut acc = 0.0f32;
    let mut chosen = 0usize;
    for (a, &lp) in logp.iter().enumerate() {
        if !mask.allows_code(a) {
            continue;
        }
        chosen = a;
        acc += (1.0 - floor * valid) * lp.exp() + floor;
        if u < acc {
            break;
        }
    }
    (chosen as u8, logp[chosen])
}

/// Rollout data, time-major, flattened to `[batch]` / `[batch, dim]`.
pub struct Batch<'a> {
    pub obs: &'a [f32],
    pub obs_dim: usize,
    pub num_actions: usize,
    pub actions: &'a [u8],
    pub masks: &'a [ActionMask],
    pub logp: &'a [f32],
    pub values: &'a [f32],
    pub advantages: &'a [f32],
    pub returns: &'a [f32],
}

/// Hyperparameters of one update.
#[derive(Debug, Clone, Copy)]
pub struct UpdateParams {
    pub epochs: usize,
    pub minibatch_size: usize,
    pub lr: f64,
    pub clip_coef: f32,
    pub clip_vloss: bool,
    pub ent_coef: f32,
    pub vf_coef: f32,
    pub max_grad_norm: f32,
    pub norm_adv: bool,
}

/// Averages over the minibatches of an update.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UpdateStats {
    pub loss: f32,
    pub policy_loss: f32,
    pub value_loss: f32,
    pub entropy: f32,
    pub approx_kl: f32,
    pub clip_fraction: f32,
    pub grad_norm: f32,
    /// Seconds (sums, not averages): building minibatches on the host, the
    /// loss forward + backward, the optimiser step and statistics.
    pub seconds_gather: f64,
    pub seconds_forward_backward: f64,
    pub seconds_optimizer: f64,
}

/// Minibatch host buffers, reused across minibatches.
#[derive(Default)]
pub struct MinibatchScratch {
    idx: Vec<usize>,
    obs: Vec<f32>,
    onehot: Vec<f32>,
    penalty: Vec<f32>,
    logp: Vec<f32>,
    values: Vec<f32>,
    adv: Vec<f32>,
    returns: Vec<f32>,
}

/// PPO epochs over `batch`; updates `agent` and `adam` in place.
pub fn update<B: AutodiffBackend>(
    agent: &mut Agent<B::InnerBackend>,
    adam: &mut Adam<B::InnerBackend>,
    batch: &Batch<'_>,
    p: &UpdateParams,
    rng: &mut Rng,
    scratch: &mut MinibatchScratch,
    device: &B::Device,
) -> UpdateStats {
    let n = batch.actions.len();
    let (d, a_n, mb) = (batch.obs_dim, batch.num_actions, p.minibatch_size);
    scratch.idx.clear();
    scratch.idx.extend(0..n);
    let mut timing = UpdateStats::default();
    // Statistics stay on the device and are read once per update: a host
    // read per minibatch would stall a GPU's queue seven times per step.
    let mut sums: Option<Tensor<B::InnerBackend, 1>> = None;
    let mut count = 0.0f32;
    for _ in 0..p.epochs {
        rng.shuffle(&mut scratch.idx);
        for chunk in 0..n / mb {
            let gather_start = std::time::Instant::now();
            let s = &mut *scratch;
            let ids = &s.idx[chunk * mb..(chunk + 1) * mb];
            s.obs.clear();
            s.onehot.clear();
            s.onehot.resize(mb * a_n, 0.0);
            s.penalty.clear();
            s.penalty.resize(mb * a_n, 0.0);
            s.logp.clear();
            s.values.clear();
            s.adv.clear();
            s.returns.clear();
            for (r, &i) in ids.iter().enumerate() {
                s.obs.extend_from_slice(&batch.obs[i * d..(i + 1) * d]);
                s.onehot[r * a_n + batch.actions[i] as usize] = 1.0;
                for a in 0..a_n {
                    if !batch.masks[i].allows_code(a) {
                        s.penalty[r * a_n + a] = MASKED_LOGIT;
                    }
                }
                s.logp.push(batch.logp[i]);
                s.values.push(batch.values[i]);
                s.adv.push(batch.advantages[i]);
                s.returns.push(batch.returns[i]);
            }
            if p.norm_adv {
                let mean = s.adv.iter().sum::<f32>() / mb as f32;
                let var = s.adv.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>()
                    / (mb as f32 - 1.0).max(1.0);
                let std = var.sqrt() + 1e-8;
                s.adv.iter_mut().for_each(|x| *x = (*x - mean) / std);
            }
            timing.seconds_gather += gather_start.elapsed().as_secs_f64();
            let step = minibatch_step::<B>(agent, adam, s, d, a_n, p, device);
            timing.seconds_forward_backward += step.seconds_forward_backward;
            timing.seconds_optimizer += step.seconds_optimizer;
            sums = Some(match sums {
                Some(total) => total + step.stats,
                None => step.stats,
            });
            count += 1.0;
        }
    }
    let c = count.max(1.0);
    let sums = sums
        .map(|t| tensor_to_vec(&t))
        .unwrap_or_else(|| vec![0.0; STAT_COUNT]);
    let mean = |i: usize| sums[i] / c;
    UpdateStats {
        loss: mean(0),
        policy_loss: mean(1),
        value_loss: mean(2),
        entropy: mean(3),
        approx_kl: mean(4),
        clip_fraction: mean(5),
        grad_norm: mean(6),
        ..timing
    }
}

/// loss, policy loss, value loss, entropy, approx KL, clip fraction, grad norm.
const STAT_COUNT: usize = 7;

struct MinibatchStep<B: Backend> {
    /// `[STAT_COUNT]`, in the order of `STAT_COUNT`'s list.
    stats: Tensor<B, 1>,
    seconds_forward_backward: f64,
    seconds_optimizer: f64,
}

/// The actor's half of the PPO loss and the diagnostics it yields.
struct ActorLoss<B: Backend> {
    loss: Tensor<B, 1>,
    policy_loss: Tensor<B, 1>,
    entropy: Tensor<B, 1>,
    logratio: Tensor<B, 2>,
    ratio: Tensor<B, 2>,
}

impl<B: AutodiffBackend> ActorLoss<B> {
    fn inner(self) -> ActorLoss<B::InnerBackend> {
        ActorLoss {
            loss: self.loss.inner(),
            policy_loss: self.policy_loss.inner(),
            entropy: self.entropy.inner(),
            logratio: self.logratio.inner(),
            ratio: self.ratio.inner(),
        }
    }
}

/// `loss`'s gradient for each of `params` (zeros where it does not reach).
fn gradients<B: AutodiffBackend>(
    loss: &Tensor<B, 1>,
    params: &[Tensor<B, 2>],
) -> Vec<Tensor<B::InnerBackend, 2>> {
    let grads = loss.backward();
    params
        .iter()
        .map(|t| {
            t.grad(&grads)
                .unwrap_or_else(|| t.clone().inner().zeros_like())
        })
        .collect()
}

/// The loss of one minibatch and its gradient for each of the agent's
/// parameters (in [`Agent::params`] order), with what the statistics need.
struct LossGradients<B: Backend> {
    actor_side: ActorLoss<B>,
    value_loss: Tensor<B, 1>,
    loss: Tensor<B, 1>,
    grads: Vec<Tensor<B, 2>>,
}

fn loss_gradients<B: AutodiffBackend>(
    agent: &Agent<B::InnerBackend>,
    s: &MinibatchScratch,
    d: usize,
    a_n: usize,
    p: &UpdateParams,
    device: &B::Device,
) -> LossGradients<B::InnerBackend> {
    let params: Vec<Tensor<B, 2>> = agent
        .params()
        .into_iter()
        .map(|t| Tensor::from_inner(t).require_grad())
        .collect();
    // The same autodiff leaves, arranged as the agent's networks: a shared
    // trunk is one set of leaves that both heads' losses reach.
    let graph = agent.with_params(params.clone());
    let n_actor = agent.actor.params.len();
    let (actor_params, critic_params) = params.split_at(n_actor);
    let table = |v: &[f32], cols: usize| -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len() / cols, cols]), device)
    };
    // ALGO LOGIC: the PPO loss (CleanRL ppo.py, lines "Policy loss" .. "loss =").
    let actor_loss = |logits: Tensor<B, 2>| {
        let logp_all = log_softmax(logits + table(&s.penalty, a_n), 1);
        let new_logp = (logp_all.clone() * table(&s.onehot, a_n)).sum_dim(1);
        let entropy = (logp_all.clone().exp() * logp_all).sum_dim(1).neg().mean();
        let logratio = new_logp - table(&s.logp, 1);
        let ratio = logratio.clone().exp();
        let adv = table(&s.adv, 1);
        let pg1 = adv.clone().neg() * ratio.clone();
        let pg2 = adv.neg() * ratio.clone().clamp(1.0 - p.clip_coef, 1.0 + p.clip_coef);
        let policy_loss = pg1.max_pair(pg2).mean();
        let loss = policy_loss.clone() - entropy.clone().mul_scalar(p.ent_coef);
        ActorLoss {
            loss,
            policy_loss,
            entropy,
            logratio,
            ratio,
        }
    };
    let critic_loss = |new_values: Tensor<B, 2>| {
        let (old_values, returns) = (table(&s.values, 1), table(&s.returns, 1));
        let v_unclipped = (new_values.clone() - returns.clone()).powi_scalar(2);
        let value_loss = if p.clip_vloss {
            let v_clipped =
                old_values.clone() + (new_values - old_values).clamp(-p.clip_coef, p.clip_coef);
            let v_clipped = (v_clipped - returns).powi_scalar(2);
            v_unclipped.max_pair(v_clipped).mean().mul_scalar(0.5)
        } else {
            v_unclipped.mean().mul_scalar(0.5)
        };
        let weighted = value_loss.clone().mul_scalar(p.vf_coef);
        (value_loss, weighted)
    };
    if crate::layer::is_cpu_backend::<B>() && !agent.shared_trunk {
        // The actor's and the critic's graphs meet only in the loss sum, whose
        // gradient reaches each side unchanged: each side's own backward gives
        // the same gradients, and on the CPU the two run at once.
        let (actor_side, critic_side) = crate::layer::join_on_cpu::<B, _, _>(
            || {
                let side = actor_loss(graph.actor.forward(table(&s.obs, d)));
                let grads = gradients(&side.loss, actor_params);
                (side.inner(), grads)
            },
            || {
                let (value_loss, weighted) = critic_loss(graph.critic.forward(table(&s.obs, d)));
                let grads = gradients(&weighted, critic_params);
                (value_loss.inner(), weighted.inner(), grads)
            },
        );
        let ((actor_side, mut grads), (value_loss, weighted, critic_grads)) =
            (actor_side, critic_side);
        grads.extend(critic_grads);
        let loss = actor_side.loss.clone() + weighted;
        LossGradients {
            actor_side,
            value_loss,
            loss,
            grads,
        }
    } else {
        // One backward pass through both heads (a shared trunk's gradient is
        // the sum of theirs). On a GPU also one upload of the observations:
        // two would double the transfers and the launches (measured on an
        // H200: 80.9k SPS at 256 envs with one pass, 63.6k with two).
        let (logits, new_values) = graph.forward(table(&s.obs, d));
        let actor_side = actor_loss(logits);
        let (value_loss, weighted) = critic_loss(new_values);
        let loss = actor_side.loss.clone() + weighted;
        let grads = gradients(&loss, &params);
        LossGradients {
            actor_side: actor_side.inner(),
            value_loss: value_loss.inner(),
            loss: loss.inner(),
            grads,
        }
    }
}

fn minibatch_step<B: AutodiffBackend>(
    agent: &mut Agent<B::InnerBackend>,
    adam: &mut Adam<B::InnerBackend>,
    s: &MinibatchScratch,
    d: usize,
    a_n: usize,
    p: &UpdateParams,
    device: &B::Device,
) -> MinibatchStep<B::InnerBackend> {
    let start = std::time::Instant::now();
    let LossGradients {
        actor_side,
        value_loss,
        loss,
        grads: grad_list,
    } = loss_gradients::<B>(agent, s, d, a_n, p, device);
    let backward_done = std::time::Instant::now();
    let mut inner = agent.params();
    let grad_norm = adam.step(&mut inner, grad_list, p.lr, p.max_grad_norm);
    agent.set_params(inner);

    // Diagnostics (CleanRL: approx_kl is the low-variance estimator of http://joschu.net/blog/kl-approx.html).
    let (logratio, ratio) = (actor_side.logratio, actor_side.ratio);
    let approx_kl = ((ratio.clone() - 1.0) - logratio).mean();
    let clip_fraction = (ratio - 1.0).abs().greater_elem(p.clip_coef).float().mean();
    let stats = Tensor::cat(
        vec![
            loss,
            actor_side.policy_loss,
            value_loss,
            actor_side.entropy,
            approx_kl,
            clip_fraction,
            grad_norm,
        ],
        0,
    );
    MinibatchStep {
        stats,
        seconds_forward_backward: (backward_done - start).as_secs_f64(),
        seconds_optimizer: backward_done.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;

    /// The actor and critic passes run side by side only when the pool has
    /// two or more threads; the weights after an update must not show it.
    #[test]
    fn update_does_not_depend_on_the_thread_count() {
        for shared_trunk in [false, true] {
            update_does_not_depend_on_the_thread_count_with(shared_trunk);
        }
    }

    fn update_does_not_depend_on_the_thread_count_with(shared_trunk: bool) {
        let (obs_dim, num_actions, rows) = (9, 3, 64);
        let mut rng = Rng::stream(11, 0);
        let host = HostAgent::init(
            obs_dim,
            &[16, 16],
            num_actions,
            Activation::Tanh,
            shared_trunk,
            &mut rng,
        );
        let obs: Vec<f32> = (0..rows * obs_dim).map(|_| rng.normal() as f32).collect();
        let actions: Vec<u8> = (0..rows).map(|_| rng.below(num_actions) as u8).collect();
        let masks: Vec<ActionMask> = actions
            .iter()
            .map(|&a| ActionMask::from_bits(1 << a))
            .collect();
        let column =
            |rng: &mut Rng| -> Vec<f32> { (0..rows).map(|_| rng.normal() as f32).collect() };
        let (values, advantages, returns) = (column(&mut rng), column(&mut rng), column(&mut rng));
        let logp: Vec<f32> = (0..rows).map(|_| -(rng.uniform() as f32) - 0.1).collect();
        let batch = Batch {
            obs: &obs,
            obs_dim,
            num_actions,
            actions: &actions,
            masks: &masks,
            logp: &logp,
            values: &values,
            advantages: &advantages,
            returns: &returns,
        };
        let params = UpdateParams {
            epochs: 2,
            minibatch_size: 32,
            lr: 1e-2,
            clip_coef: 0.2,
            clip_vloss: true,
            ent_coef: 0.01,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            norm_adv: true,
        };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let device = Default::default();
                let mut agent = host.to_backend(&device);
                let mut adam = Adam::new(&agent.params(), 1e-5);
                let stats = update::<CpuBackend>(
                    &mut agent,
                    &mut adam,
                    &batch,
                    &params,
                    &mut Rng::stream(3, 1),
                    &mut MinibatchScratch::default(),
                    &device,
                );
                (agent.to_host(), stats.loss, stats.grad_norm)
            })
        };
        let alone = run(1);
        assert_ne!(alone.0, host, "the update moved the weights");
        if shared_trunk {
            let (actor, critic) = (&alone.0.actor.layers, &alone.0.critic.layers);
            assert_eq!(actor[..2], critic[..2], "the trunk stays one");
            assert_ne!(actor[..2], host.actor.layers[..2], "and it moved");
        }
        for threads in [2, 3] {
            assert!(run(threads) == alone, "{threads} threads");
        }
    }

    fn minibatch(
        rows: usize,
        obs_dim: usize,
        num_actions: usize,
        rng: &mut Rng,
    ) -> MinibatchScratch {
        let column =
            |rng: &mut Rng| -> Vec<f32> { (0..rows).map(|_| rng.normal() as f32).collect() };
        let mut s = MinibatchScratch {
            obs: (0..rows * obs_dim).map(|_| rng.normal() as f32).collect(),
            onehot: vec![0.0; rows * num_actions],
            penalty: vec![0.0; rows * num_actions],
            logp: (0..rows).map(|_| -(rng.uniform() as f32) - 0.1).collect(),
            values: column(rng),
            adv: column(rng),
            returns: column(rng),
            ..MinibatchScratch::default()
        };
        for r in 0..rows {
            s.onehot[r * num_actions + rng.below(num_actions)] = 1.0;
        }
        s.penalty[num_actions - 1] = MASKED_LOGIT;
        s
    }

    /// With a shared trunk the loss reaches the trunk through both heads: its
    /// gradient is the sum of what the actor's and the critic's copies of it
    /// get in a separate network of the same weights; the heads' are the same.
    #[test]
    fn a_shared_trunks_gradient_is_the_sum_of_both_heads_contributions() {
        let (obs_dim, num_actions, rows) = (7, 3, 24);
        let mut rng = Rng::stream(4, 0);
        let shared = HostAgent::init(
            obs_dim,
            &[10, 6],
            num_actions,
            Activation::Tanh,
            true,
            &mut rng,
        );
        let separate = HostAgent {
            shared_trunk: false,
            ..shared.clone()
        };
        let s = minibatch(rows, obs_dim, num_actions, &mut rng);
        let p = UpdateParams {
            epochs: 1,
            minibatch_size: rows,
            lr: 1e-3,
            clip_coef: 0.2,
            clip_vloss: true,
            ent_coef: 0.01,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            norm_adv: false,
        };
        let device = Default::default();
        let grads = |host: &HostAgent| {
            let out = loss_gradients::<CpuBackend>(
                &host.to_backend(&device),
                &s,
                obs_dim,
                num_actions,
                &p,
                &device,
            );
            let loss = tensor_to_vec(&out.loss)[0];
            (
                loss,
                out.grads.iter().map(tensor_to_vec).collect::<Vec<_>>(),
            )
        };
        let (loss_shared, g) = grads(&shared);
        let (loss_separate, sep) = grads(&separate);
        assert_eq!(
            loss_shared, loss_separate,
            "the same function of the same weights"
        );
        // [trunk 4, actor head 2, critic head 2] against [actor 6, critic 6].
        assert_eq!((g.len(), sep.len()), (8, 12));
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                    "{what}: {x} vs {y}"
                );
            }
        };
        for i in 0..4 {
            let (from_actor, from_critic) = (&sep[i], &sep[6 + i]);
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>();
            assert!(
                norm(from_actor) > 0.0 && norm(from_critic) > 0.0,
                "both heads reach trunk tensor {i}"
            );
            let sum: Vec<f32> = from_actor
                .iter()
                .zip(from_critic)
                .map(|(a, c)| a + c)
                .collect();
            close(&g[i], &sum, &format!("trunk tensor {i}"));
        }
        close(&g[4], &sep[4], "actor head weight");
        close(&g[5], &sep[5], "actor head bias");
        close(&g[6], &sep[10], "critic head weight");
        close(&g[7], &sep[11], "critic head bias");
    }
}
