//! The registry protocol's paths (Docker Registry HTTP API v2), taken apart,
//! and the ECR action each request needs.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/v2/`: the version check `docker login` makes.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/{name}/manifests/{reference}` (a tag or a digest).
    Manifest { name: &'a str, reference: &'a str },
    /// `/v2/{name}/blobs/{digest}`.
    Blob { name: &'a str, digest: &'a str },
    /// `/v2/{name}/blobs/uploads/` or `/v2/{name}/blobs/uploads/{id}`.
    Upload { name: &'a str, id: &'a str },
    /// `/v2/{name}/tags/list`.
    Tags { name: &'a str },
}

/// A reference that names a manifest by content rather than by tag.
pub fn is_digest(reference: &str) -> bool {
    reference.contains(':')
}

pub fn parse(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags { name });
    }
    if let Some(i) = rest.rfind("/blobs/uploads/") {
        let id = &rest[i + "/blobs/uploads/".len()..];
        if !id.contains('/') {
            return Some(Route::Upload {
                name: &rest[..i],
                id,
            });
        }
    }
    let mut parts = rest.rsplitn(3, '/');
    let last = parts.next()?;
    let kind = parts.next()?;
    let name = parts.next()?;
    if last.is_empty() || name.is_empty() {
        return None;
    }
    match kind {
        "manifests" => Some(Route::Manifest {
            name,
            reference: last,
        }),
        "blobs" => Some(Route::Blob { name, digest: last }),
        _ => None,
    }
}

impl Route<'_> {
    /// The repository the request concerns.
    pub fn name(&self) -> Option<&str> {
        match *self {
            Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::Upload { name, .. }
            | Route::Tags { name } => Some(name),
            Route::Base | Route::Catalog => None,
        }
    }

    /// The ECR action a request needs, as ECR's own registry maps them.
    pub fn action(&self, method: &str) -> Option<&'static str> {
        Some(match (self, method) {
            (Route::Manifest { .. }, "GET" | "HEAD") => "ecr:BatchGetImage",
            (Route::Manifest { .. }, "PUT") => "ecr:PutImage",
            (Route::Manifest { .. }, "DELETE") => "ecr:BatchDeleteImage",
            (Route::Blob { .. }, "GET") => "ecr:GetDownloadUrlForLayer",
            (Route::Blob { .. }, "HEAD") => "ecr:BatchCheckLayerAvailability",
            (Route::Upload { .. }, "POST") => "ecr:InitiateLayerUpload",
            (Route::Upload { .. }, "PUT") => "ecr:CompleteLayerUpload",
            (Route::Upload { .. }, "PATCH" | "GET" | "DELETE") => "ecr:UploadLayerPart",
            (Route::Tags { .. }, "GET") => "ecr:ListImages",
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_repository_and_resource() {
        assert_eq!(parse("/v2/"), Some(Route::Base));
        assert_eq!(parse("/v2"), Some(Route::Base));
        assert_eq!(parse("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(
            parse("/v2/1/us-east-1/team/web/manifests/v1"),
            Some(Route::Manifest {
                name: "1/us-east-1/team/web",
                reference: "v1"
            })
        );
        // A repository may itself have a component called "manifests" or "blobs".
        assert_eq!(
            parse("/v2/a/manifests/b/blobs/sha256:00"),
            Some(Route::Blob {
                name: "a/manifests/b",
                digest: "sha256:00"
            })
        );
        assert_eq!(
            parse("/v2/a/b/blobs/uploads/"),
            Some(Route::Upload {
                name: "a/b",
                id: ""
            })
        );
        assert_eq!(
            parse("/v2/a/b/blobs/uploads/0f-1"),
            Some(Route::Upload {
                name: "a/b",
                id: "0f-1"
            })
        );
        assert_eq!(
            parse("/v2/a/b/tags/list"),
            Some(Route::Tags { name: "a/b" })
        );
        assert_eq!(parse("/v2/a/other/x"), None);
        assert_eq!(parse("/v2/manifests/x"), None);
        assert_eq!(parse("/healthz"), None);
    }

    #[test]
    fn each_request_needs_ecr_own_action() {
        let m = Route::Manifest {
            name: "a",
            reference: "v1",
        };
        assert_eq!(m.action("HEAD"), Some("ecr:BatchGetImage"));
        assert_eq!(m.action("PUT"), Some("ecr:PutImage"));
        let b = Route::Blob {
            name: "a",
            digest: "sha256:0",
        };
        assert_eq!(b.action("GET"), Some("ecr:GetDownloadUrlForLayer"));
        assert_eq!(b.action("HEAD"), Some("ecr:BatchCheckLayerAvailability"));
        let u = Route::Upload { name: "a", id: "" };
        assert_eq!(u.action("POST"), Some("ecr:InitiateLayerUpload"));
        assert_eq!(u.action("PATCH"), Some("ecr:UploadLayerPart"));
        assert_eq!(u.action("PUT"), Some("ecr:CompleteLayerUpload"));
        assert_eq!(Route::Base.action("GET"), None);
        assert!(is_digest("sha256:ab") && !is_digest("latest"));
    }
}
