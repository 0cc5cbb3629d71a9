//! How IAM writes its resources in XML.
use crate::state::iam_records::{ManagedPolicyRecord, RoleRecord, UserRecord};
use berth_api::amz_date::format_iso8601;
use berth_api::ec2::Xml;
use berth_api::query::encode_document;
use berth_model::iam;

pub fn tags(x: &mut Xml, tags: &[(String, String)]) {
    if tags.is_empty() {
        return;
    }
    x.members("Tags", tags, |x, (k, v)| {
        x.text("Key", k);
        x.text("Value", v);
    });
}

/// `with_tags`: GetRole shows a role's tags; ListRoles does not.
pub fn role(x: &mut Xml, account: &str, r: &RoleRecord, with_tags: bool) {
    x.text("Path", &r.path);
    x.text("RoleName", &r.name);
    x.text("RoleId", &r.id);
    x.text("Arn", iam::arn(account, "role", &r.path, &r.name));
    x.text("CreateDate", format_iso8601(r.created));
    x.text("AssumeRolePolicyDocument", encode_document(&r.trust.text));
    x.opt("Description", r.description.as_deref());
    x.text("MaxSessionDuration", r.max_session_duration);
    if with_tags {
        tags(x, &r.tags);
    }
}

pub fn user(x: &mut Xml, account: &str, u: &UserRecord, with_tags: bool) {
    x.text("Path", &u.path);
    x.text("UserName", &u.name);
    x.text("UserId", &u.id);
    x.text("Arn", iam::arn(account, "user", &u.path, &u.name));
    x.text("CreateDate", format_iso8601(u.created));
    if with_tags {
        tags(x, &u.tags);
    }
}

/// A policy as GetPolicy and ListPolicies show it (`attachments`: how many roles and users hold it).
pub struct PolicyView<'a> {
    pub name: &'a str,
    pub id: String,
    pub arn: String,
    pub path: &'a str,
    pub created: i64,
    pub description: Option<&'a str>,
    pub attachments: usize,
    pub tags: &'a [(String, String)],
}

impl<'a> PolicyView<'a> {
    pub fn customer(account: &str, p: &'a ManagedPolicyRecord, attachments: usize) -> Self {
        PolicyView {
            name: &p.name,
            id: p.id.clone(),
            arn: iam::arn(account, "policy", &p.path, &p.name),
            path: &p.path,
            created: p.created,
            description: p.description.as_deref(),
            attachments,
            tags: &p.tags,
        }
    }
}

pub fn policy(x: &mut Xml, p: &PolicyView, with_description: bool) {
    x.text("PolicyName", p.name);
    x.text("PolicyId", &p.id);
    x.text("Arn", &p.arn);
    x.text("Path", p.path);
    x.text("DefaultVersionId", "v1");
    x.text("AttachmentCount", p.attachments);
    x.text("PermissionsBoundaryUsageCount", 0);
    x.text("IsAttachable", true);
    if with_description {
        x.opt("Description", p.description);
    }
    x.text("CreateDate", format_iso8601(p.created));
    x.text("UpdateDate", format_iso8601(p.created));
    tags(x, p.tags);
}
