//! API errors: one variant per error code a client can receive.
use std::fmt;

macro_rules! error_codes {
    ($($code:ident => $status:expr),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode { $($code),* }

        impl ErrorCode {
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$code => stringify!($code)),* }
            }

            /// The HTTP status AWS answers this code with.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$code => $status),* }
            }
        }
    };
}

error_codes! {
    // ECS model errors.
    ClientException => 400,
    ServerException => 500,
    InvalidParameterException => 400,
    ClusterNotFoundException => 400,
    ClusterContainsContainerInstancesException => 400,
    ClusterContainsServicesException => 400,
    ClusterContainsTasksException => 400,
    ClusterContainsCapacityProviderException => 400,
    ResourceNotFoundException => 400,
    ResourceInUseException => 400,
    LimitExceededException => 400,
    UnsupportedFeatureException => 400,
    AccessDeniedException => 400,
    UpdateInProgressException => 400,
    ServiceNotFoundException => 400,
    ServiceNotActiveException => 400,
    // JSON protocol errors.
    SerializationException => 400,
    UnknownOperationException => 400,
    RequestEntityTooLargeException => 413,
    // SigV4 refusals on the JSON protocol.
    MissingAuthenticationTokenException => 403,
    IncompleteSignatureException => 400,
    InvalidSignatureException => 403,
    UnrecognizedClientException => 403,
    // SigV4 refusals and errors on the query protocol (STS, EC2).
    MissingAuthenticationToken => 403,
    IncompleteSignature => 400,
    SignatureDoesNotMatch => 403,
    InvalidClientTokenId => 403,
    InvalidAction => 400,
    MissingAction => 400,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterException, message)
    }

    pub fn client(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ClientException, message)
    }

    pub fn server(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServerException, message)
    }

    /// The JSON 1.1 error body: `{"__type": ..., "message": ...}`.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "__type": self.code.as_str(),
            "message": self.message,
        }))
        .unwrap_or_default()
    }
}
