//! What the agent has observed of each task, and which of it the control
//! plane has not acknowledged yet. Runners publish; the reporter sends.
use berth_api::ecs::Task;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use tokio::sync::Notify;

#[derive(Default)]
pub struct Reports {
    inner: Mutex<Inner>,
    pub changed: Notify,
}

#[derive(Default)]
struct Inner {
    latest: HashMap<String, Task>,
    unsent: BTreeSet<String>,
}

impl Reports {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a task's observed state; only a change is sent.
    pub fn publish(&self, task: Task) {
        let arn = task.task_arn.clone().unwrap_or_default();
        let mut inner = self.lock();
        if inner.latest.get(&arn) == Some(&task) {
            return;
        }
        inner.latest.insert(arn.clone(), task);
        inner.unsent.insert(arn);
        drop(inner);
        self.changed.notify_one();
    }

    /// Takes every unsent report (they go back with `resend` if sending fails).
    pub fn take_unsent(&self) -> Vec<Task> {
        let mut inner = self.lock();
        let arns = std::mem::take(&mut inner.unsent);
        arns.iter()
            .filter_map(|a| inner.latest.get(a).cloned())
            .collect()
    }

    pub fn resend(&self, arns: impl IntoIterator<Item = String>) {
        self.lock().unsent.extend(arns);
        self.changed.notify_one();
    }

    pub fn latest(&self, arn: &str) -> Option<Task> {
        self.lock().latest.get(arn).cloned()
    }

    /// How many tasks have a change not yet acknowledged.
    pub fn unsent(&self) -> usize {
        self.lock().unsent.len()
    }

    /// The tasks' containers counted by the last status observed (PENDING, RUNNING, STOPPED).
    pub fn container_states(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for task in self.lock().latest.values() {
            for c in task.containers.iter().flatten() {
                let status = c.last_status.clone().unwrap_or_else(|| "PENDING".into());
                *counts.entry(status).or_insert(0) += 1;
            }
        }
        counts
    }

    pub fn forget(&self, arn: &str) {
        let mut inner = self.lock();
        inner.latest.remove(arn);
        inner.unsent.remove(arn);
    }
}

/// Whether the control plane's record lags what was observed (a lost or
/// unapplied report): then the report is sent again.
pub fn lags(recorded: &Task, observed: &Task) -> bool {
    use berth_model::task::rank;
    let status = |t: &Task| rank(t.last_status.as_deref().unwrap_or_default());
    if status(recorded) < status(observed) || recorded.health_status != observed.health_status {
        return true;
    }
    observed.containers.iter().flatten().any(|o| {
        let r = recorded
            .containers
            .iter()
            .flatten()
            .find(|r| r.name == o.name);
        r.is_none_or(|r| {
            rank(r.last_status.as_deref().unwrap_or_default())
                < rank(o.last_status.as_deref().unwrap_or_default())
                || r.health_status != o.health_status
                || (o.exit_code.is_some() && r.exit_code != o.exit_code)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ecs::Container;

    fn task(status: &str, container: &str) -> Task {
        Task {
            task_arn: Some("t".into()),
            last_status: Some(status.into()),
            containers: Some(vec![Container {
                name: Some("app".into()),
                last_status: Some(container.into()),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn only_changes_are_sent_and_failures_come_back() {
        let r = Reports::default();
        r.publish(task("PENDING", "PENDING"));
        assert_eq!(r.take_unsent().len(), 1);
        r.publish(task("PENDING", "PENDING"));
        assert!(
            r.take_unsent().is_empty(),
            "an unchanged report is not sent again"
        );
        r.publish(task("RUNNING", "RUNNING"));
        let sent = r.take_unsent();
        assert_eq!(sent[0].last_status.as_deref(), Some("RUNNING"));
        r.resend(["t".to_string()]);
        assert_eq!(r.take_unsent().len(), 1);
    }

    #[test]
    fn a_record_behind_the_observation_lags() {
        assert!(lags(
            &task("PENDING", "PENDING"),
            &task("RUNNING", "RUNNING")
        ));
        assert!(lags(
            &task("RUNNING", "PENDING"),
            &task("RUNNING", "RUNNING")
        ));
        assert!(!lags(
            &task("RUNNING", "RUNNING"),
            &task("RUNNING", "RUNNING")
        ));
        assert!(!lags(
            &task("STOPPED", "STOPPED"),
            &task("RUNNING", "RUNNING")
        ));
    }
}
