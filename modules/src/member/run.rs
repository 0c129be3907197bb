//! The run of `etcd_member`: observe, plan at most one change, execute it,
//! and when etcd refuses it for now, observe and plan again until
//! `wait_timeout`, so a retry never repeats a change that already happened.

use serde_json::json;
use std::time::Instant;

use super::attempt::{gave_up, promote_hint, Kind};
use super::endpoints::usable_endpoints;
use super::execute::{execute, settle, Done};
use super::plan::{may_be_starting, plan};
use super::probe::observe;
use super::request::Request;
use super::result::{check_mode_outcome, fill_result, summary, unchanged_msg, with_cluster};
use super::RETRY_PAUSE;
use crate::connection::ConnectionArgs;
use crate::protocol::{Context, Failure, Outcome};

/// Runs a validated request: observes, plans, executes, and retries what
/// etcd refuses for now until `wait_timeout`.
pub(super) async fn run(
    request: Request,
    ctx: &Context<ConnectionArgs>,
) -> Result<Outcome, Failure> {
    let mut connection = ctx.shared.connect_settings()?;
    // Endpoints that can never answer fail the task now, not after
    // wait_timeout of retries.
    let endpoint_warnings = usable_endpoints(&mut connection).await?;
    let deadline = Instant::now() + request.wait_timeout;

    let mut observed = observe(&connection, &request, deadline).await?;
    let initial = observed.view.clone();
    let started = Instant::now();
    let mut attempts = 0u64;
    let (mut refused, mut unanswered) = (0u64, 0u64);
    let mut maybe_applied = false;
    let mut done: Option<Done> = None;
    let mut target;
    let mut warnings;
    loop {
        let plan = match plan(&request, &observed) {
            Ok(plan) => plan,
            // A member that just started publishes its name a moment
            // later: wait for it rather than fail.
            Err(_) if may_be_starting(&request, &observed.view) && Instant::now() < deadline => {
                tokio::time::sleep(RETRY_PAUSE).await;
                observed = observe(&connection, &request, deadline).await?;
                continue;
            }
            Err(f) => return Err(with_cluster(f, &observed.view)),
        };
        target = plan.target;
        warnings = plan.warnings;
        let Some(action) = plan.action else { break };
        if ctx.check_mode {
            warnings.extend(endpoint_warnings);
            return Ok(check_mode_outcome(
                &request,
                &observed.view,
                target,
                &action,
                warnings,
            ));
        }
        attempts += 1;
        match execute(
            &connection,
            &request,
            &observed.view,
            &action,
            attempts,
            deadline,
        )
        .await
        {
            Ok(finished) => {
                if let Some(id) = finished.added {
                    target = Some(id);
                }
                done = Some(finished);
                break;
            }
            Err(e) => {
                match e.kind {
                    Kind::Refused => refused += 1,
                    Kind::NoAnswer => unanswered += 1,
                    Kind::Permanent => {}
                }
                if e.kind == Kind::Permanent || Instant::now() >= deadline {
                    let mut failure = e.failure;
                    if e.kind != Kind::Permanent {
                        failure.msg = format!(
                            "{} ({})",
                            failure.msg,
                            gave_up(attempts, refused, unanswered, started.elapsed())
                        );
                    }
                    if let Some(hint) = promote_hint(&request, &observed.view, target, &failure) {
                        failure.msg.push_str(&hint);
                    }
                    let failure = failure
                        .with("attempts", attempts)
                        .with("attempts_refused", refused)
                        .with("attempts_unanswered", unanswered);
                    return Err(with_cluster(failure, &observed.view));
                }
                maybe_applied |= e.kind == Kind::NoAnswer;
                tokio::time::sleep(RETRY_PAUSE).await;
                observed = observe(&connection, &request, deadline).await?;
            }
        }
    }

    // Read the result from the member that made the change: it has applied it.
    let after = match &done {
        Some(d) => settle(&connection, d, deadline).await,
        None if attempts > 0 => observed.view.clone(),
        None => initial.clone(),
    };
    let changed = done.is_some() || maybe_applied;
    let action_name = done.as_ref().map_or("none", |d| d.action);
    let msg = match &done {
        Some(d) => d.msg.clone(),
        None if changed => {
            "the change was applied during an earlier attempt that timed out".to_string()
        }
        None => unchanged_msg(&request, &after, target),
    };
    let mut outcome = Outcome::new(changed, msg);
    fill_result(
        &mut outcome,
        &request,
        &after,
        target,
        action_name,
        attempts,
    );
    warnings.extend(endpoint_warnings);
    if !warnings.is_empty() {
        outcome = outcome.with("warnings", warnings);
    }
    outcome.diff = Some(json!({
        "before": summary(&initial, &request, target),
        "after": summary(&after, &request, target),
    }));
    Ok(outcome)
}
