//! berth's registry: the ECR repositories' images, behind ECR's logins and
//! policies. The engine (Distribution) stores blobs and speaks the protocol;
//! the front authenticates, authorizes and keeps ECR's records.
pub mod collector;
pub mod engine;
pub mod fence;
pub mod front;
pub mod manifest;
pub mod route;
