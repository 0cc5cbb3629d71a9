//! STS and other query-protocol answers (XML), enough for GetCallerIdentity.
use crate::ApiError;

pub const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn get_caller_identity_xml(
    account: &str,
    arn: &str,
    user_id: &str,
    request_id: &str,
) -> String {
    format!(
        "<GetCallerIdentityResponse xmlns=\"{STS_NS}\">\n  <GetCallerIdentityResult>\n    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n",
        xml_escape(arn),
        xml_escape(user_id),
        xml_escape(account),
        request_id
    )
}

/// The query protocol's error document.
pub fn error_xml(err: &ApiError, request_id: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{STS_NS}\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        err.code.as_str(),
        xml_escape(&err.message),
        request_id
    )
}
