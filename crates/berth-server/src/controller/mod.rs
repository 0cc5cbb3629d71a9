//! Controller loops. They run on the leader only: with the embedded store
//! there is one server, and it leads. Each pass is level-triggered (it
//! compares what is wanted with what is) and runs when the view changes, or
//! at least once a second for what time alone changes (timeouts); a service
//! that named a deadline or failed is requeued on its own (`requeue`).
pub mod instances;
pub mod requeue;
pub mod service_pass;
pub mod services;

use crate::state::State;
use std::sync::Arc;
use std::time::Duration;

/// The longest a controller waits for a change before looking again.
const PASS_EVERY: Duration = Duration::from_secs(1);
/// How often every service is looked at, changed or not (grace periods, agents coming and going).
const FULL_PASS_EVERY: Duration = Duration::from_secs(5);

/// Runs the controllers until the state is dropped.
pub fn spawn(state: &Arc<State>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        let mut last_full = tokio::time::Instant::now();
        let mut requeue = requeue::Requeue::default();
        loop {
            let Some(state) = weak.upgrade() else { return };
            if !state.leading() {
                // Another server runs the controllers; this one takes over when it leads.
                state.until_leading(PASS_EVERY).await;
                continue;
            }
            let revision = state.read().revision;
            let metrics = state.metrics();
            let pass = metrics.controller_pass("instances");
            instances::heal(&state).await;
            drop(pass);
            let pass = metrics.controller_pass("fleet");
            crate::fleet::heal(&state).await;
            drop(pass);
            let full = last_full.elapsed() >= FULL_PASS_EVERY;
            if full {
                last_full = tokio::time::Instant::now();
            }
            let pass = metrics.controller_pass("services");
            services::reconcile(&state, full, &mut requeue).await;
            drop(pass);
            if full {
                let _pass = metrics.controller_pass("retention");
                crate::ecr::lifecycle::apply(&state).await;
                crate::secretsmanager::secrets::purge(&state).await;
            }
            let pass = metrics.controller_pass("eni_release");
            crate::task_enis::release(&state).await;
            drop(pass);
            // A host about to be lost is looked at the moment it is.
            let wait = state
                .next_loss_in()
                .map_or(PASS_EVERY, |d| d.min(PASS_EVERY) + Duration::from_millis(5));
            // A service due sooner (a deadline it named, a retry) is looked at then.
            let wait = requeue
                .next_in(state.clock().instant())
                .map_or(wait, |d| d.min(wait));
            state.wait_past(revision, wait).await;
        }
    })
}
