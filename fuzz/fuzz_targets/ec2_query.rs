//! The EC2 (and STS/IAM) query decoder: a form body into parameters, and what each
//! EC2 action reads of them for authorization; STS's session bounds and IAM's tags.
#![no_main]
use berth_api::ec2::Params;
use berth_model::Scope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let form = String::from_utf8_lossy(data);
    let params = Params::from_pairs(berth_server::http::form_pairs(&form));
    let scope = Scope::new("111122223333", "us-east-1");
    for action in berth_server::ec2::IMPLEMENTED {
        let _ = berth_server::ec2::permissions::resources(&scope, action, &params);
    }
    for prefix in [
        "Filter",
        "IpPermissions",
        "TagSpecification",
        "Tags.member",
        "PolicyArns.member",
    ] {
        for m in params.members(prefix) {
            let _ = m.members("Value");
        }
    }
    let _ = berth_server::sts::session_bounds(&params);
    let _ = berth_server::iam::tags(&params);
});
