//! The EC2 query protocol: flattened form parameters in, XML out.
use crate::sts::xml_escape;
use crate::ApiError;
use std::collections::BTreeMap;
use std::fmt::Display;

pub const EC2_NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
pub const API_VERSION: &str = "2016-11-15";

/// An XML document written element by element, EC2's way: lists as
/// `<fooSet><item>…</item></fooSet>`, absent members left out.
#[derive(Default)]
pub struct Xml {
    pub(crate) out: String,
}

impl Xml {
    /// `<{action}Response>` with its request id and whatever `body` writes.
    pub fn response(action: &str, request_id: &str, body: impl FnOnce(&mut Xml)) -> String {
        let mut x = Xml::default();
        x.out.push_str(&format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{EC2_NS}\">"
        ));
        x.text("requestId", request_id);
        body(&mut x);
        x.out.push_str(&format!("</{action}Response>"));
        x.out
    }

    pub fn text(&mut self, name: &str, value: impl Display) {
        let v = xml_escape(&value.to_string());
        self.out.push_str(&format!("<{name}>{v}</{name}>"));
    }

    /// Escaped text with no element around it (a scalar list's member).
    pub fn value(&mut self, value: impl Display) {
        self.out.push_str(&xml_escape(&value.to_string()));
    }

    pub fn opt<T: Display>(&mut self, name: &str, value: Option<T>) {
        if let Some(v) = value {
            self.text(name, v);
        }
    }

    pub fn elem(&mut self, name: &str, body: impl FnOnce(&mut Xml)) {
        self.out.push_str(&format!("<{name}>"));
        body(self);
        self.out.push_str(&format!("</{name}>"));
    }

    /// `<{name}><item>…</item>…</{name}>`, one item per element of `items`.
    pub fn set<T>(&mut self, name: &str, items: &[T], mut each: impl FnMut(&mut Xml, &T)) {
        self.elem(name, |x| {
            for i in items {
                x.elem("item", |x| each(x, i));
            }
        });
    }

    /// The query protocol's lists (IAM, STS): `<{name}><member>…</member>…</{name}>`.
    pub fn members<T>(&mut self, name: &str, items: &[T], mut each: impl FnMut(&mut Xml, &T)) {
        self.elem(name, |x| {
            for i in items {
                x.elem("member", |x| each(x, i));
            }
        });
    }

    /// `tagSet` from (key, value) pairs.
    pub fn tags(&mut self, tags: &[(String, String)]) {
        self.set("tagSet", tags, |x, (k, v)| {
            x.text("key", k);
            x.text("value", v);
        });
    }
}

/// EC2's error document.
pub fn error_xml(err: &ApiError, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        err.code.as_str(),
        xml_escape(&err.message),
        request_id
    )
}

/// A request's flattened parameters (`Filter.1.Value.2=…`).
#[derive(Debug, Default, Clone)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Params {
        Params {
            map: pairs.into_iter().collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// The parameters under `prefix.`, with that prefix taken off.
    pub fn under(&self, prefix: &str) -> Params {
        let p = format!("{prefix}.");
        Params {
            map: self
                .map
                .range(p.clone()..)
                .take_while(|(k, _)| k.starts_with(&p))
                .map(|(k, v)| (k[p.len()..].to_string(), v.clone()))
                .collect(),
        }
    }

    /// The members `prefix.1`, `prefix.2`, … in index order, each as its own Params.
    pub fn members(&self, prefix: &str) -> Vec<Params> {
        let under = self.under(prefix);
        let mut indexes: Vec<u32> = under
            .map
            .keys()
            .filter_map(|k| k.split('.').next()?.parse().ok())
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        indexes
            .into_iter()
            .map(|i| {
                let mut p = under.under(&i.to_string());
                if let Some(v) = under.get(&i.to_string()) {
                    p.map.insert(String::new(), v.to_string());
                }
                p
            })
            .collect()
    }

    /// The scalar list `prefix.1`, `prefix.2`, … in index order.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.members(prefix)
            .into_iter()
            .filter_map(|p| p.get("").map(String::from))
            .collect()
    }

    /// `Filter.N.Name` with its `Filter.N.Value.M` values.
    pub fn filters(&self) -> Vec<(String, Vec<String>)> {
        self.members("Filter")
            .into_iter()
            .map(|f| {
                (
                    f.get("Name").unwrap_or_default().to_string(),
                    f.list("Value"),
                )
            })
            .collect()
    }

    /// Tags of `TagSpecification.N` for `resource_type`.
    pub fn tag_specifications(&self, resource_type: &str) -> Vec<(String, String)> {
        self.members("TagSpecification")
            .into_iter()
            .filter(|s| s.get("ResourceType") == Some(resource_type))
            .flat_map(|s| {
                s.members("Tag")
                    .into_iter()
                    .map(|t| {
                        (
                            t.get("Key").unwrap_or_default().to_string(),
                            t.get("Value").unwrap_or_default().to_string(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn flattened_lists_and_filters_come_back_in_index_order() {
        let p = params(&[
            ("VpcId.2", "vpc-b"),
            ("VpcId.1", "vpc-a"),
            ("VpcId.10", "vpc-j"),
            ("Filter.1.Name", "vpc-id"),
            ("Filter.1.Value.1", "vpc-a"),
            ("Filter.1.Value.2", "vpc-b"),
            ("Filter.2.Name", "is-default"),
            ("Filter.2.Value.1", "true"),
            ("TagSpecification.1.ResourceType", "vpc"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "main"),
            ("TagSpecification.2.ResourceType", "subnet"),
            ("TagSpecification.2.Tag.1.Key", "other"),
        ]);
        assert_eq!(p.list("VpcId"), ["vpc-a", "vpc-b", "vpc-j"]);
        assert_eq!(
            p.filters(),
            vec![
                (
                    "vpc-id".to_string(),
                    vec!["vpc-a".to_string(), "vpc-b".into()]
                ),
                ("is-default".to_string(), vec!["true".to_string()]),
            ]
        );
        assert_eq!(
            p.tag_specifications("vpc"),
            vec![("Name".to_string(), "main".to_string())]
        );
        assert!(p.list("SubnetId").is_empty());
    }

    #[test]
    fn responses_and_errors_are_ec2_xml() {
        let doc = Xml::response("DescribeVpcs", "rid-1", |x| {
            x.set("vpcSet", &["vpc-1"], |x, id| {
                x.text("vpcId", id);
                x.opt::<&str>("cidrBlock", None);
                x.tags(&[("a&b".into(), "<c>".into())]);
            });
        });
        assert!(doc.contains(&format!("<DescribeVpcsResponse xmlns=\"{EC2_NS}\"><requestId>rid-1</requestId><vpcSet><item><vpcId>vpc-1</vpcId><tagSet><item><key>a&amp;b</key><value>&lt;c&gt;</value></item></tagSet></item></vpcSet></DescribeVpcsResponse>")), "{doc}");
        let e = error_xml(
            &ApiError::new(
                crate::ErrorCode::InvalidVpcIdNotFound,
                "The vpc ID 'vpc-x' does not exist",
            ),
            "rid-2",
        );
        assert!(e.contains("<Code>InvalidVpcID.NotFound</Code><Message>The vpc ID 'vpc-x' does not exist</Message>"), "{e}");
        assert!(e.contains("<RequestID>rid-2</RequestID>"));
    }
}
