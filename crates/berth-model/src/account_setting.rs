//! Account settings: names, allowed values and the defaults AWS ships.
use berth_api::ApiError;

/// (name, default value, allowed values)
pub const SETTINGS: &[(&str, &str, &[&str])] = &[
    ("serviceLongArnFormat", "enabled", &["enabled", "disabled"]),
    ("taskLongArnFormat", "enabled", &["enabled", "disabled"]),
    (
        "containerInstanceLongArnFormat",
        "enabled",
        &["enabled", "disabled"],
    ),
    ("awsvpcTrunking", "disabled", &["enabled", "disabled"]),
    (
        "containerInsights",
        "disabled",
        &["enabled", "disabled", "enhanced"],
    ),
    ("fargateFIPSMode", "disabled", &["enabled", "disabled"]),
    ("tagResourceAuthorization", "on", &["on", "off"]),
    ("fargateTaskRetirementWaitPeriod", "7", &["0", "7", "14"]),
    ("guardDutyActivate", "off", &["on", "off"]),
    (
        "defaultLogDriverMode",
        "non-blocking",
        &["blocking", "non-blocking"],
    ),
    ("fargateEventWindows", "disabled", &["enabled", "disabled"]),
];

pub fn default_value(name: &str) -> Option<&'static str> {
    SETTINGS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, d, _)| *d)
}

pub fn validate(name: &str, value: &str) -> Result<(), ApiError> {
    let (_, _, allowed) = SETTINGS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| {
            ApiError::invalid_parameter(format!("Unknown account setting name: {name}."))
        })?;
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(format!(
            "Invalid value '{value}' for account setting {name}. Valid values: {}.",
            allowed.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_per_setting() {
        assert!(validate("containerInsights", "enhanced").is_ok());
        assert!(validate("serviceLongArnFormat", "enhanced").is_err());
        assert!(validate("fargateTaskRetirementWaitPeriod", "14").is_ok());
        assert!(validate("noSuchSetting", "enabled").is_err());
        assert_eq!(default_value("awsvpcTrunking"), Some("disabled"));
    }

    #[test]
    fn every_setting_name_is_in_the_model() {
        for (name, default, allowed) in SETTINGS {
            assert!(berth_api::ecs::SETTING_NAME_VALUES.contains(name), "{name}");
            assert!(allowed.contains(default), "{name}");
        }
    }
}
