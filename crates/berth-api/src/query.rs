//! The query protocol's answers for IAM and STS: `<{Action}Response>` around
//! `<{Action}Result>` and the request id; lists as `<member>` elements.
use crate::ec2::Xml;

pub const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
pub const STS_NS: &str = crate::sts::STS_NS;

/// `<{action}Response xmlns=…><{action}Result>…</{action}Result><ResponseMetadata>…`.
pub fn response(action: &str, ns: &str, request_id: &str, body: impl FnOnce(&mut Xml)) -> String {
    let mut x = Xml::default();
    x.out
        .push_str(&format!("<{action}Response xmlns=\"{ns}\">"));
    x.elem(&format!("{action}Result"), body);
    x.elem("ResponseMetadata", |x| x.text("RequestId", request_id));
    x.out.push_str(&format!("</{action}Response>"));
    x.out
}

/// An answer with no result members (DeleteRole, PutRolePolicy, …).
pub fn empty(action: &str, ns: &str, request_id: &str) -> String {
    format!("<{action}Response xmlns=\"{ns}\"><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>")
}

/// IAM hands policy documents back URL-encoded; the SDKs decode them.
pub fn encode_document(doc: &str) -> String {
    let mut out = String::with_capacity(doc.len() * 2);
    for b in doc.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_and_documents() {
        let doc = response("GetRole", IAM_NS, "rid", |x| {
            x.elem("Role", |x| x.text("RoleName", "web"));
            x.members("Tags", &[("k", "v")], |x, (k, v)| {
                x.text("Key", k);
                x.text("Value", v);
            });
        });
        assert_eq!(
            doc,
            format!("<GetRoleResponse xmlns=\"{IAM_NS}\"><GetRoleResult><Role><RoleName>web</RoleName></Role><Tags><member><Key>k</Key><Value>v</Value></member></Tags></GetRoleResult><ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></GetRoleResponse>")
        );
        assert_eq!(encode_document("{\"a\": 1}"), "%7B%22a%22%3A%201%7D");
        assert!(empty("DeleteRole", IAM_NS, "r").contains("<RequestId>r</RequestId>"));
    }
}
