//! Writes that contend on one key whichever server takes them go to one
//! server: a RegisterTaskDefinition through a server that does not lead is
//! sent on to the leader, whose queue folds concurrent registrations of a
//! family into one transaction, rather than servers' transactions on the
//! family's revision counter losing to each other. The leader authenticates
//! the request as it came (SigV4 signs the client's Host, which is kept).
use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::response::Response;
use http_body_util::BodyExt;
use std::time::Duration;

/// Marks a request one server sent on to another: it is never sent on again.
pub const FORWARDED: &str = "x-berth-forwarded";
/// How long the leader has to answer a request sent on to it.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);
const CONNECT_WITHIN: Duration = Duration::from_secs(2);

/// Whether a request with this `X-Amz-Target` goes to the leader.
pub fn contends(target: Option<&str>) -> bool {
    target == Some("AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition")
}

pub enum Forwarded {
    /// The leader's answer.
    Answered(Response),
    /// The request never reached the leader: this server may answer it itself.
    NotSent(String),
    /// It reached the leader, whose answer did not come back (it may have been acted on).
    Lost(String),
}

/// Sends the request (`parts`, `body`) on to the server at `url`.
pub async fn forward(url: &str, parts: &Parts, body: Bytes) -> Forwarded {
    let mut sender = match crate::peer_http::connect(url, CONNECT_WITHIN).await {
        Ok((sender, _)) => sender,
        Err(e) => return Forwarded::NotSent(e),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(path);
    for (name, value) in &parts.headers {
        request = request.header(name, value);
    }
    let Ok(request) = request.header(FORWARDED, "1").body(Body::from(body)) else {
        return Forwarded::NotSent("the request could not be rebuilt".into());
    };
    let answered = async {
        let answer = sender.send_request(request).await?;
        let (parts, body) = answer.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok::<_, hyper::Error>(Response::from_parts(parts, Body::from(bytes)))
    };
    match tokio::time::timeout(ANSWER_WITHIN, answered).await {
        Ok(Ok(r)) => Forwarded::Answered(r),
        Ok(Err(e)) => Forwarded::Lost(e.to_string()),
        Err(_) => Forwarded::Lost("no answer in time".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registrations_go_to_the_leader() {
        assert!(contends(Some(
            "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition"
        )));
        assert!(!contends(Some(
            "AmazonEC2ContainerServiceV20141113.DescribeClusters"
        )));
        assert!(!contends(None));
    }
}
