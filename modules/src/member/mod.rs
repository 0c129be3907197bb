//! `etcd_member`: the runbooks' `etcdctl member add/remove/update/promote`
//! and `move-leader`, as one idempotent module.
//!
//! Every run observes the cluster (member list and leader), plans at most
//! one change, and carries it out. When etcd refuses a reconfiguration for
//! a moment (etcd 3.4 does for about 5 s after a member starts or leaves),
//! it observes and plans again until `wait_timeout`, so a retry never
//! repeats a change that already happened.
//!
//! The parts: [`args`] (arguments and docs), `request` (validation),
//! `endpoints` (endpoint check), `probe` (observing), `plan` (pure
//! planning), `execute` (one change), `attempt` (failure kinds),
//! `run` (the retry loop), `result` (result JSON).

mod args;
mod attempt;
mod endpoints;
mod execute;
mod plan;
mod probe;
mod request;
mod result;
mod run;
mod view;

pub use args::{IdArg, MemberArgs, State, Text};

use std::time::Duration;

use crate::connection::ConnectionArgs;
use crate::protocol::{Context, Failure, Module, OptionDoc, Outcome, ReturnDoc, Rule};
use request::Request;

/// Pause between two attempts; etcd's own health window is 5 s.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The `etcd_member` module.
pub struct EtcdMember;

impl Module for EtcdMember {
    const NAME: &'static str = "etcd_member";
    const SHORT_DESCRIPTION: &'static str = args::SHORT_DESCRIPTION;
    const DESCRIPTION: &'static [&'static str] = args::DESCRIPTION;
    const OPTIONS: &'static [OptionDoc] = args::OPTIONS;
    const RULES: &'static [Rule] = args::RULES;
    const EXAMPLES: &'static str = args::EXAMPLES;
    const RETURNS: &'static [ReturnDoc] = args::RETURNS;
    type Args = MemberArgs;
    type Shared = ConnectionArgs;

    async fn run(args: MemberArgs, ctx: &Context<ConnectionArgs>) -> Result<Outcome, Failure> {
        run::run(Request::from_args(args)?, ctx).await
    }
}
