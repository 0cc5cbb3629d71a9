//! Who signed a request: an account's root, an IAM user (of the config file
//! or of the IAM API), a role session, or a fleet host.
use super::session::Session;
use berth_model::iam;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Identity {
    Root,
    User {
        name: String,
        path: String,
        /// A key of the config file, whose user may have no IAM record.
        from_config: bool,
    },
    Session(Session),
    Fleet,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Caller {
    pub account: String,
    pub identity: Identity,
}

impl Caller {
    pub fn root(account: &str) -> Caller {
        Caller {
            account: account.to_string(),
            identity: Identity::Root,
        }
    }

    /// The caller's ARN, as GetCallerIdentity and AccessDenied messages show it.
    pub fn arn(&self) -> String {
        match &self.identity {
            Identity::Root | Identity::Fleet => format!("arn:aws:iam::{}:root", self.account),
            Identity::User { name, path, .. } => iam::arn(&self.account, "user", path, name),
            Identity::Session(s) => iam::session_arn(&self.account, &s.role_name, &s.session_name),
        }
    }

    /// The ARN a principal condition (`aws:PrincipalArn`) and trust policies see:
    /// for a session, its role's.
    pub fn principal_arn(&self) -> String {
        match &self.identity {
            Identity::Session(s) => iam::arn(&self.account, "role", &s.role_path, &s.role_name),
            _ => self.arn(),
        }
    }

    pub fn user_name(&self) -> Option<&str> {
        match &self.identity {
            Identity::User { name, .. } => Some(name),
            _ => None,
        }
    }

    pub fn is_root(&self) -> bool {
        self.identity == Identity::Root
    }
}
