//! The buy-and-hold RTH baseline (SPEC section 10): each trading day, long one
//! contract through regular trading hours, whatever session the checkpoint
//! trades. It is a rule over the runtime's own engine, not a replay of its
//! own: the policy's engine settings (slippage, commission, drawdown limit
//! and scope), the RTH session, and entries without a stop or target
//! ([`EngineConfig::brackets`]). Its rule buys at the first decision of each
//! session while flat (the close of the session's first bar, 09:31 New York,
//! once the features are warm); with no bracket only the session end (or a
//! drawdown breach) ends the position, so it makes one round trip a day, and
//! every fill, the session end and every dollar are the engine's.

use nq_formats::SessionHours;
use nq_runtime::engine::EngineConfig;

use crate::checkpoint_file::CheckpointFile;
use crate::Result;

/// The engine settings of buy and hold beside a policy run with `config`
/// (or the checkpoint's own settings): the same, but RTH and unbracketed.
pub(super) fn engine_config(
    checkpoint: &CheckpointFile,
    config: Option<EngineConfig>,
) -> Result<EngineConfig> {
    let policy_engine = checkpoint.engine(config)?;
    let mut rth = config.unwrap_or_else(|| EngineConfig::from_policy(policy_engine.policy()));
    rth.sim = *policy_engine.simulator().config();
    rth.sim.session = SessionHours::RTH;
    rth.brackets = false;
    Ok(rth)
}
