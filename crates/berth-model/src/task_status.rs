//! A task's lifecycle statuses, in ECS's order, below everything that reads
//! them (tasks, their ENIs' attachments, the agent's reports).

pub const PROVISIONING: &str = "PROVISIONING";
pub const PENDING: &str = "PENDING";
pub const ACTIVATING: &str = "ACTIVATING";
pub const RUNNING: &str = "RUNNING";
pub const DEACTIVATING: &str = "DEACTIVATING";
pub const STOPPING: &str = "STOPPING";
pub const DEPROVISIONING: &str = "DEPROVISIONING";
pub const STOPPED: &str = "STOPPED";

/// A task's (or container's) status, in ECS's lifecycle order: a task never
/// moves backwards, so statuses compare by where they sit in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskStatus {
    Provisioning,
    Pending,
    Activating,
    Running,
    Deactivating,
    Stopping,
    Deprovisioning,
    Stopped,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 8] = [
        TaskStatus::Provisioning,
        TaskStatus::Pending,
        TaskStatus::Activating,
        TaskStatus::Running,
        TaskStatus::Deactivating,
        TaskStatus::Stopping,
        TaskStatus::Deprovisioning,
        TaskStatus::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Provisioning => PROVISIONING,
            TaskStatus::Pending => PENDING,
            TaskStatus::Activating => ACTIVATING,
            TaskStatus::Running => RUNNING,
            TaskStatus::Deactivating => DEACTIVATING,
            TaskStatus::Stopping => STOPPING,
            TaskStatus::Deprovisioning => DEPROVISIONING,
            TaskStatus::Stopped => STOPPED,
        }
    }

    /// The status a wire string names, if it names one.
    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The status of an optional wire member.
    pub fn of(s: Option<&str>) -> Option<TaskStatus> {
        s.and_then(TaskStatus::parse)
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a status sits in the lifecycle (unknown ones first).
pub fn rank(status: &str) -> u8 {
    TaskStatus::parse(status).map_or(0, |s| s as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_order_as_the_lifecycle() {
        for (i, s) in TaskStatus::ALL.into_iter().enumerate() {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
            assert_eq!(rank(s.as_str()) as usize, i);
        }
        assert!(TaskStatus::Pending < TaskStatus::Running);
        assert!(TaskStatus::Stopping < TaskStatus::Stopped);
        assert_eq!(TaskStatus::parse("RUNNNING"), None);
        assert_eq!(rank("RUNNNING"), 0);
        assert_eq!(TaskStatus::of(Some("STOPPED")), Some(TaskStatus::Stopped));
    }
}
