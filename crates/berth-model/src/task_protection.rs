//! Task scale-in protection (UpdateTaskProtection, GetTaskProtection): a service's
//! task that its scale-in and deployments leave running until the protection expires.
use berth_api::ecs::ProtectedTask;
use berth_api::ApiError;

/// ECS's default when `expiresInMinutes` is not given: two hours.
pub const DEFAULT_MINUTES: i32 = 120;
/// The longest protection ECS grants: 48 hours.
pub const MAX_MINUTES: i32 = 2880;
/// Tasks one call may name.
pub const MAX_TASKS: usize = 10;

/// When a protection asked for ends (epoch seconds), or `None` when it is taken off.
pub fn expiry(enabled: bool, minutes: Option<i32>, now: f64) -> Result<Option<f64>, ApiError> {
    let minutes = minutes.unwrap_or(DEFAULT_MINUTES);
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(ApiError::invalid_parameter(format!(
            "expiresInMinutes must be between 1 and {MAX_MINUTES}, got {minutes}."
        )));
    }
    Ok(enabled.then(|| (now + f64::from(minutes) * 60.0).floor()))
}

/// Whether a protection ending at `until` still holds at `now`.
pub fn holds(until: Option<f64>, now: f64) -> bool {
    until.is_some_and(|u| u > now)
}

/// A task's protection as GetTaskProtection and UpdateTaskProtection show it.
pub fn view(task_arn: &str, until: Option<f64>, now: f64) -> ProtectedTask {
    let on = holds(until, now);
    ProtectedTask {
        task_arn: Some(task_arn.into()),
        protection_enabled: Some(on),
        expiration_date: until.filter(|_| on),
    }
}

/// The task list of a call: 1 to 10 tasks.
pub fn check_tasks(given: &[String]) -> Result<(), ApiError> {
    if given.is_empty() || given.len() > MAX_TASKS {
        return Err(ApiError::invalid_parameter(format!(
            "tasks must have between 1 and {MAX_TASKS} items."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protection_lasts_the_minutes_asked_for_two_hours_by_default() {
        assert_eq!(expiry(true, Some(1), 1000.0).unwrap(), Some(1060.0));
        assert_eq!(expiry(true, None, 1000.0).unwrap(), Some(1000.0 + 7200.0));
        assert_eq!(expiry(true, Some(2880), 0.0).unwrap(), Some(172_800.0));
        assert_eq!(expiry(false, None, 1000.0).unwrap(), None);
        for bad in [0, -5, 2881] {
            assert!(expiry(true, Some(bad), 0.0).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_expired_protection_shows_as_off() {
        assert!(holds(Some(10.0), 9.9));
        assert!(!holds(Some(10.0), 10.0));
        assert!(!holds(None, 0.0));
        let on = view("arn:t", Some(100.0), 50.0);
        assert_eq!(
            (on.protection_enabled, on.expiration_date),
            (Some(true), Some(100.0))
        );
        let off = view("arn:t", Some(100.0), 150.0);
        assert_eq!(
            (off.protection_enabled, off.expiration_date),
            (Some(false), None)
        );
    }

    #[test]
    fn a_call_names_one_to_ten_tasks() {
        assert!(check_tasks(&[]).is_err());
        assert!(check_tasks(&vec!["t".into(); 11]).is_err());
        assert!(check_tasks(&vec!["t".into(); 10]).is_ok());
    }
}
