//! Who is calling, where, and when: what every handler of a request is given.
use crate::state::State;
use berth_model::Scope;

pub struct Ctx<'a> {
    pub state: &'a std::sync::Arc<State>,
    pub scope: Scope,
    /// The caller's IAM ARN.
    pub principal: String,
    pub now: f64,
    /// The `Host` the caller reached this server by (DiscoverPollEndpoint answers with it).
    pub host: Option<String>,
}
