//! ECR lifecycle policies: the policy text checked as ECR checks it, and which
//! images a policy expires. Rules go in rulePriority order; an image that a
//! rule's selection matches is never expired by a later rule.
use berth_api::ApiError;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    pub tag_status: String,
    #[serde(default)]
    pub tag_prefix_list: Vec<String>,
    #[serde(default)]
    pub tag_pattern_list: Vec<String>,
    pub count_type: String,
    #[serde(default)]
    pub count_unit: Option<String>,
    pub count_number: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub rule_priority: i64,
    #[serde(default)]
    pub description: Option<String>,
    pub selection: Selection,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Action {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LifecyclePolicy {
    pub rules: Vec<Rule>,
}

/// What a rule looks at of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFacts<'a> {
    pub digest: &'a str,
    pub tags: Vec<&'a str>,
    pub pushed_at: f64,
}

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError::invalid_parameter(format!(
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: '{}'",
        m.into()
    ))
}

/// Wildcards (`*`), at most four per pattern, as ECR allows.
fn pattern_matches(pattern: &str, tag: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == tag;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !tag.starts_with(first) || tag.len() < first.len() + last.len() || !tag.ends_with(last) {
        return false;
    }
    let mut rest = &tag[first.len()..tag.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

impl LifecyclePolicy {
    /// Parses and checks a policy text.
    pub fn parse(text: &str) -> Result<LifecyclePolicy, ApiError> {
        let mut policy: LifecyclePolicy = serde_json::from_str(text)
            .map_err(|e| invalid(format!("Lifecycle policy is not valid JSON: {e}")))?;
        if policy.rules.is_empty() {
            return Err(invalid("Lifecycle policy must have at least one rule"));
        }
        policy.rules.sort_by_key(|r| r.rule_priority);
        let mut last = None;
        for (i, r) in policy.rules.iter().enumerate() {
            let s = &r.selection;
            if r.rule_priority < 1 {
                return Err(invalid("rulePriority must be a positive integer"));
            }
            if last == Some(r.rule_priority) {
                return Err(invalid(format!(
                    "rulePriority {} is not unique",
                    r.rule_priority
                )));
            }
            last = Some(r.rule_priority);
            if r.action.kind != "expire" {
                return Err(invalid(format!(
                    "action type '{}' is not 'expire'",
                    r.action.kind
                )));
            }
            match s.tag_status.as_str() {
                "tagged" if s.tag_prefix_list.is_empty() == s.tag_pattern_list.is_empty() => {
                    return Err(invalid(
                        "A tagged rule needs exactly one of tagPrefixList and tagPatternList",
                    ))
                }
                "untagged" | "any"
                    if !s.tag_prefix_list.is_empty() || !s.tag_pattern_list.is_empty() =>
                {
                    return Err(invalid(format!(
                        "A rule with tagStatus '{}' takes no tagPrefixList or tagPatternList",
                        s.tag_status
                    )))
                }
                "any" if i + 1 != policy.rules.len() => {
                    return Err(invalid(
                        "A rule with tagStatus 'any' must have the highest rulePriority",
                    ))
                }
                "tagged" | "untagged" | "any" => {}
                other => {
                    return Err(invalid(format!(
                        "tagStatus '{other}' is not tagged, untagged or any"
                    )))
                }
            }
            if s.tag_pattern_list
                .iter()
                .any(|p| p.matches('*').count() > 4)
            {
                return Err(invalid("A tag pattern may have at most four wildcards"));
            }
            if s.count_number < 1 {
                return Err(invalid("countNumber must be a positive integer"));
            }
            match (s.count_type.as_str(), s.count_unit.as_deref()) {
                ("imageCountMoreThan", None) | ("sinceImagePushed", Some("days")) => {}
                ("imageCountMoreThan", Some(_)) => {
                    return Err(invalid("countUnit is only for countType sinceImagePushed"))
                }
                ("sinceImagePushed", _) => {
                    return Err(invalid("countType sinceImagePushed needs countUnit 'days'"))
                }
                (other, _) => {
                    return Err(invalid(format!(
                        "countType '{other}' is not imageCountMoreThan or sinceImagePushed"
                    )))
                }
            }
        }
        Ok(policy)
    }

    /// The digests this policy expires among `images`, at `now` (epoch seconds).
    pub fn expired(&self, images: &[ImageFacts<'_>], now: f64) -> Vec<String> {
        let mut claimed = vec![false; images.len()];
        let mut out = vec![];
        for rule in &self.rules {
            let s = &rule.selection;
            let mut selected: Vec<usize> = (0..images.len())
                .filter(|&i| !claimed[i] && selects(s, &images[i]))
                .collect();
            for &i in &selected {
                claimed[i] = true;
            }
            match s.count_type.as_str() {
                "imageCountMoreThan" => {
                    // The newest countNumber stay.
                    selected.sort_by(|&a, &b| images[b].pushed_at.total_cmp(&images[a].pushed_at));
                    out.extend(
                        selected
                            .into_iter()
                            .skip(s.count_number as usize)
                            .map(|i| images[i].digest.to_string()),
                    );
                }
                _ => {
                    let cutoff = now - s.count_number as f64 * 86_400.0;
                    out.extend(
                        selected
                            .into_iter()
                            .filter(|&i| images[i].pushed_at < cutoff)
                            .map(|i| images[i].digest.to_string()),
                    );
                }
            }
        }
        out.sort();
        out
    }
}

fn selects(s: &Selection, image: &ImageFacts<'_>) -> bool {
    match s.tag_status.as_str() {
        "untagged" => image.tags.is_empty(),
        "any" => true,
        // Every prefix (or pattern) given must match one of the image's tags.
        _ if !s.tag_prefix_list.is_empty() => s
            .tag_prefix_list
            .iter()
            .all(|p| image.tags.iter().any(|t| t.starts_with(p.as_str()))),
        _ => s
            .tag_pattern_list
            .iter()
            .all(|p| image.tags.iter().any(|t| pattern_matches(p, t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img<'a>(digest: &'a str, tags: &[&'a str], pushed_at: f64) -> ImageFacts<'a> {
        ImageFacts {
            digest,
            tags: tags.to_vec(),
            pushed_at,
        }
    }

    #[test]
    fn untagged_images_past_a_count_expire_oldest_first() {
        let p = LifecyclePolicy::parse(r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#).unwrap();
        let images = [
            img("a", &[], 1.0),
            img("b", &[], 3.0),
            img("c", &["v1"], 0.0),
            img("d", &[], 2.0),
        ];
        assert_eq!(p.expired(&images, 10.0), ["a", "d"]);
    }

    #[test]
    fn images_pushed_long_ago_expire_and_an_earlier_rule_keeps_what_it_selects() {
        let p = LifecyclePolicy::parse(r#"{"rules":[
            {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}},
            {"rulePriority":2,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}}]}"#).unwrap();
        let day = 86_400.0;
        let images = [
            img("old-prod", &["prod-1"], 0.0),
            img("old-dev", &["dev"], 0.0),
            img("new", &[], 9.0 * day),
        ];
        // The prod image is the first rule's: it keeps it though it is old.
        assert_eq!(p.expired(&images, 10.0 * day), ["old-dev"]);
    }

    #[test]
    fn prefixes_and_patterns_must_all_match_a_tag() {
        let s = |prefixes: &[&str], patterns: &[&str]| Selection {
            tag_status: "tagged".into(),
            tag_prefix_list: prefixes.iter().map(|x| x.to_string()).collect(),
            tag_pattern_list: patterns.iter().map(|x| x.to_string()).collect(),
            count_type: "imageCountMoreThan".into(),
            count_unit: None,
            count_number: 1,
        };
        let i = img("a", &["prod-1", "beta"], 0.0);
        assert!(selects(&s(&["prod", "be"], &[]), &i));
        assert!(!selects(&s(&["prod", "dev"], &[]), &i));
        assert!(selects(&s(&[], &["prod*"]), &i));
        assert!(selects(&s(&[], &["*od*1"]), &i));
        assert!(!selects(&s(&[], &["*x*"]), &i));
        assert!(pattern_matches("a*b*c", "aXbYc") && !pattern_matches("a*b*c", "acb"));
    }

    #[test]
    fn policies_are_checked_as_ecr_checks_them() {
        let rule = |sel: &str, prio: i64| {
            format!(r#"{{"rulePriority":{prio},"selection":{sel},"action":{{"type":"expire"}}}}"#)
        };
        let policy = |rules: &[String]| format!(r#"{{"rules":[{}]}}"#, rules.join(","));
        let untagged =
            r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}"#;
        let any = r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#;
        assert!(LifecyclePolicy::parse(&policy(&[rule(untagged, 1), rule(any, 2)])).is_ok());
        for bad in [
            policy(&[]),
            policy(&[rule(any, 1), rule(untagged, 2)]),
            policy(&[rule(untagged, 1), rule(untagged, 1)]),
            policy(&[rule(
                r#"{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1}"#,
                1,
            )]),
            policy(&[rule(
                r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countNumber":1}"#,
                1,
            )]),
            policy(&[rule(
                r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":0}"#,
                1,
            )]),
            "not json".to_string(),
        ] {
            let e = LifecyclePolicy::parse(&bad).unwrap_err();
            assert_eq!(
                e.code,
                berth_api::ErrorCode::InvalidParameterException,
                "{bad}"
            );
        }
    }
}
