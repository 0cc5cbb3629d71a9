//! The task definition rules: RegisterTaskDefinition's request, decoded from any JSON,
//! through every rule berth applies when it registers a revision.
#![no_main]
use berth_api::ecs::{decode_input, RegisterTaskDefinitionRequest};
use berth_model::Scope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = decode_input::<RegisterTaskDefinitionRequest>(data) else {
        return;
    };
    let scope = Scope::new("111122223333", "us-east-1");
    if let Ok(td) = berth_model::task_definition::register(
        &scope,
        &req,
        1,
        "arn:aws:iam::111122223333:root",
        0.0,
    ) {
        let _ = berth_model::resources::demand(&td, None);
        let _ = berth_model::unhonoured::first(&td);
        let _ = berth_model::task_definition::network_mode(&td);
    }
});
