//! Controller loops. They run on the leader only: with the embedded store
//! there is one server, and it leads. Each pass is level-triggered (it
//! compares what is wanted with what is) and runs when the view changes, or
//! at least once a second for what time alone changes (timeouts, grace periods).
pub mod instances;
pub mod services;

use crate::state::State;
use std::sync::Arc;
use std::time::Duration;

/// The longest a controller waits for a change before looking again.
const PASS_EVERY: Duration = Duration::from_secs(1);

/// Runs the controllers until the state is dropped.
pub fn spawn(state: &Arc<State>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            let Some(state) = weak.upgrade() else { return };
            let revision = state.read().revision;
            instances::heal(&state).await;
            services::reconcile_all(&state).await;
            // A host about to be lost is looked at the moment it is.
            let wait = state
                .next_loss_in()
                .map_or(PASS_EVERY, |d| d.min(PASS_EVERY) + Duration::from_millis(5));
            state.wait_past(revision, wait).await;
        }
    })
}
