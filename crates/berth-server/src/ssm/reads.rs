//! Reading parameters: GetParameter, GetParameters, GetParametersByPath,
//! GetParameterHistory, DescribeParameters.
use super::{not_found, required, resolve, select, value_of, view, Ctx, Guard};
use crate::authz::Resource;
use crate::state::secrets_records::{ParameterRecord, ParameterVersion};
use berth_api::pagination::{page, PageLimits};
use berth_api::ssm::*;
use berth_api::{ApiError, ErrorCode};
use berth_model::secrets as rules;

fn resource(ctx: &Ctx<'_>, id: &str) -> Resource {
    let (name, _) = rules::parameter_selector(id);
    Resource::arn(if name.starts_with("arn:") {
        name.to_string()
    } else {
        rules::parameter_arn(&ctx.scope, name)
    })
}

pub async fn get(
    ctx: &Ctx<'_>,
    req: GetParameterRequest,
    guard: &mut Guard<'_>,
) -> Result<GetParameterResult, ApiError> {
    let id = required(&req.name, "name")?;
    guard("ssm:GetParameter", vec![resource(ctx, id)])?;
    let decrypt = req.with_decryption.unwrap_or(false);
    let index = ctx.state.read();
    let (name, version, selector) = select(&index, &ctx.scope, id)?;
    let mut p = view(ctx.state, &ctx.scope, name, version, decrypt)?;
    p.selector = selector;
    Ok(GetParameterResult { parameter: Some(p) })
}

pub async fn get_many(
    ctx: &Ctx<'_>,
    req: GetParametersRequest,
    guard: &mut Guard<'_>,
) -> Result<GetParametersResult, ApiError> {
    let names = req.names.clone().unwrap_or_default();
    guard(
        "ssm:GetParameters",
        names.iter().map(|n| resource(ctx, n)).collect(),
    )?;
    let decrypt = req.with_decryption.unwrap_or(false);
    let index = ctx.state.read();
    let (mut found, mut invalid) = (vec![], vec![]);
    for id in names {
        match select(&index, &ctx.scope, &id) {
            Ok((name, version, selector)) => {
                let mut p = view(ctx.state, &ctx.scope, name, version, decrypt)?;
                p.selector = selector;
                found.push(p);
            }
            Err(e)
                if matches!(
                    e.code,
                    ErrorCode::ParameterNotFound | ErrorCode::ParameterVersionNotFound
                ) =>
            {
                invalid.push(id)
            }
            Err(e) => return Err(e),
        }
    }
    Ok(GetParametersResult {
        parameters: Some(found),
        invalid_parameters: Some(invalid),
    })
}

/// Whether a version passes the `Type`, `KeyId`, `Label`, `Name`, `Tier`,
/// `DataType` and `tag:` filters (Equals, BeginsWith, Contains).
fn passes(
    name: &str,
    record: &ParameterRecord,
    p: &ParameterVersion,
    f: &ParameterStringFilter,
) -> Result<bool, ApiError> {
    let key = f.key.as_deref().unwrap_or_default();
    let fields: Vec<&str> = match key {
        "Name" => vec![name],
        "Type" => vec![p.r#type.as_str()],
        "KeyId" => p.key_id.as_deref().into_iter().collect(),
        "Label" => record.versions.iter().flat_map(|v| v.labels.iter().map(String::as_str)).collect(),
        "Tier" => vec![p.tier.as_str()],
        "DataType" => vec![p.data_type.as_str()],
        // Path filters are answered by where the names are.
        "Path" => return Ok(true),
        k if k.starts_with("tag:") => {
            let tag = &k[4..];
            record.tags.iter().filter(|(tk, _)| tk == tag).map(|(_, v)| v.as_str()).collect()
        }
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidFilterKey,
                format!("The following filter key is not valid: {other}. Valid filter keys include: [Path, Name, Type, KeyId, Tier, Label, DataType, tag:key]"),
            ))
        }
    };
    if key.starts_with("tag:") && f.values.as_ref().is_none_or(|v| v.is_empty()) {
        return Ok(!fields.is_empty());
    }
    let option = f.option.as_deref().unwrap_or("Equals");
    let matches = |field: &str, v: &str| match option {
        "BeginsWith" => field.starts_with(v),
        "Contains" => field.contains(v),
        _ => field == v,
    };
    Ok(f.values
        .iter()
        .flatten()
        .any(|v| fields.iter().any(|x| matches(x, v))))
}

/// Whether `name` is under `path`: anywhere below it, or one level below.
fn under(name: &str, path: &str, recursive: bool) -> bool {
    let prefix = if path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    };
    match name.strip_prefix(&prefix) {
        Some(rest) => !rest.is_empty() && (recursive || !rest.contains('/')),
        None => false,
    }
}

pub async fn by_path(
    ctx: &Ctx<'_>,
    req: GetParametersByPathRequest,
    guard: &mut Guard<'_>,
) -> Result<GetParametersByPathResult, ApiError> {
    let path = required(&req.path, "path")?.to_string();
    if !path.starts_with('/') {
        return Err(ApiError::new(
            ErrorCode::ValidationException,
            "The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash \"/\".",
        ));
    }
    guard(
        "ssm:GetParametersByPath",
        vec![Resource::arn(rules::parameter_arn(&ctx.scope, &path))],
    )?;
    let recursive = req.recursive.unwrap_or(false);
    let decrypt = req.with_decryption.unwrap_or(false);
    let filters = req.parameter_filters.clone().unwrap_or_default();
    let mut out = vec![];
    {
        let index = ctx.state.read();
        let lo = (ctx.scope.clone(), path.clone());
        for ((scope, name), r) in index.parameters.range(lo..) {
            if *scope != ctx.scope || !name.starts_with(path.trim_end_matches('/')) {
                break;
            }
            let Some(latest) = r.value.latest() else {
                continue;
            };
            if !under(name, &path, recursive) {
                continue;
            }
            let mut keep = true;
            for f in &filters {
                keep &= passes(name, &r.value, latest, f)?;
            }
            if keep {
                out.push((name.clone(), latest.clone()));
            }
        }
    }
    let (items, next_token) = page(
        out,
        |(n, _)| n.clone(),
        req.max_results,
        req.next_token.as_deref(),
        PageLimits::new(10, 10),
    )
    .map_err(token_error)?;
    let parameters = items
        .iter()
        .map(|(n, v)| view(ctx.state, &ctx.scope, n, v, decrypt))
        .collect::<Result<_, _>>()?;
    Ok(GetParametersByPathResult {
        parameters: Some(parameters),
        next_token,
    })
}

/// A page request SSM refuses in its own words.
fn token_error(e: ApiError) -> ApiError {
    if e.message.contains("maxResults") {
        ApiError::new(ErrorCode::ValidationException, e.message)
    } else {
        ApiError::new(
            ErrorCode::InvalidNextToken,
            "The specified token isn't valid.",
        )
    }
}

pub async fn history(
    ctx: &Ctx<'_>,
    req: GetParameterHistoryRequest,
    guard: &mut Guard<'_>,
) -> Result<GetParameterHistoryResult, ApiError> {
    let id = required(&req.name, "name")?;
    guard("ssm:GetParameterHistory", vec![resource(ctx, id)])?;
    let decrypt = req.with_decryption.unwrap_or(false);
    let (name, record) = {
        let index = ctx.state.read();
        let (n, r) = resolve(&index, &ctx.scope, id).ok_or_else(|| not_found(id))?;
        (n.to_string(), r.clone())
    };
    let (items, next_token) = page(
        record.versions,
        // Versions page in order; a zero-padded key keeps their order as text.
        |p| format!("{:020}", p.version),
        req.max_results,
        req.next_token.as_deref(),
        PageLimits::new(50, 50),
    )
    .map_err(token_error)?;
    let parameters = items
        .iter()
        .map(|p| {
            Ok(ParameterHistory {
                name: Some(name.clone()),
                r#type: Some(p.r#type.clone()),
                key_id: p.key_id.clone(),
                last_modified_date: Some(p.modified),
                last_modified_user: Some(p.user.clone()),
                description: p.description.clone(),
                value: Some(value_of(ctx.state, &ctx.scope, &name, p, decrypt)?),
                allowed_pattern: p.allowed_pattern.clone(),
                version: Some(p.version),
                labels: Some(p.labels.clone()),
                tier: Some(p.tier.clone()),
                policies: Some(vec![]),
                data_type: Some(p.data_type.clone()),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(GetParameterHistoryResult {
        parameters: Some(parameters),
        next_token,
    })
}

/// The older `Filters` (Name, Type, KeyId) as ParameterStringFilters.
fn old_filters(filters: &[ParametersFilter]) -> Vec<ParameterStringFilter> {
    filters
        .iter()
        .map(|f| ParameterStringFilter {
            key: f.key.clone(),
            option: Some(
                if f.key.as_deref() == Some("Name") {
                    "BeginsWith"
                } else {
                    "Equals"
                }
                .into(),
            ),
            values: f.values.clone(),
        })
        .collect()
}

pub async fn describe(
    ctx: &Ctx<'_>,
    req: DescribeParametersRequest,
    guard: &mut Guard<'_>,
) -> Result<DescribeParametersResult, ApiError> {
    guard("ssm:DescribeParameters", vec![])?;
    if req.filters.is_some() && req.parameter_filters.is_some() {
        return Err(ApiError::new(
            ErrorCode::ValidationException,
            "You can use either Filters or ParameterFilters in a single request.",
        ));
    }
    let mut filters = req.parameter_filters.clone().unwrap_or_default();
    filters.extend(old_filters(req.filters.as_deref().unwrap_or_default()));
    let path = filters
        .iter()
        .find(|f| f.key.as_deref() == Some("Path"))
        .map(|f| {
            let recursive = f.option.as_deref() == Some("Recursive");
            (f.values.clone().unwrap_or_default(), recursive)
        });
    let mut out = vec![];
    {
        let index = ctx.state.read();
        let lo = (ctx.scope.clone(), String::new());
        for ((scope, name), r) in index.parameters.range(lo..) {
            if *scope != ctx.scope {
                break;
            }
            let Some(latest) = r.value.latest() else {
                continue;
            };
            if let Some((paths, recursive)) = &path {
                if !paths.iter().any(|p| {
                    p == "/" && !recursive && !name[1..].contains('/') && name.starts_with('/')
                        || under(name, p, *recursive)
                }) {
                    continue;
                }
            }
            let mut keep = true;
            for f in &filters {
                keep &= passes(name, &r.value, latest, f)?;
            }
            if keep {
                out.push(ParameterMetadata {
                    name: Some(name.clone()),
                    arn: Some(rules::parameter_arn(&ctx.scope, name)),
                    r#type: Some(latest.r#type.clone()),
                    key_id: latest.key_id.clone(),
                    last_modified_date: Some(latest.modified),
                    last_modified_user: Some(latest.user.clone()),
                    description: latest.description.clone(),
                    allowed_pattern: latest.allowed_pattern.clone(),
                    version: Some(latest.version),
                    tier: Some(latest.tier.clone()),
                    policies: Some(vec![]),
                    data_type: Some(latest.data_type.clone()),
                });
            }
        }
    }
    let (items, next_token) = page(
        out,
        |m| m.name.clone().unwrap_or_default(),
        req.max_results,
        req.next_token.as_deref(),
        PageLimits::new(10, 50),
    )
    .map_err(token_error)?;
    Ok(DescribeParametersResult {
        parameters: Some(items),
        next_token,
    })
}

#[cfg(test)]
mod tests {
    use super::under;

    #[test]
    fn a_path_holds_its_children_and_recursively_their_children() {
        assert!(under("/app/db", "/app", false));
        assert!(under("/app/db", "/app/", false));
        assert!(!under("/app/db/url", "/app", false));
        assert!(under("/app/db/url", "/app", true));
        assert!(!under("/application", "/app", true));
        assert!(under("/top", "/", false));
        assert!(!under("plain", "/", true));
    }
}
