//! API errors: one variant per error code a client can receive.
use std::fmt;

macro_rules! error_codes {
    ($($code:ident $(= $wire:literal)? => $status:expr),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode { $($code),* }

        impl ErrorCode {
            /// The code on the wire: the variant's name unless it is spelled otherwise (EC2's dotted codes).
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$code => error_codes!(@wire $code $($wire)?)),* }
            }

            /// The HTTP status AWS answers this code with.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$code => $status),* }
            }
        }
    };
    (@wire $code:ident) => { stringify!($code) };
    (@wire $code:ident $wire:literal) => { $wire };
}

error_codes! {
    // ECS model errors.
    ClientException => 400,
    ServerException => 500,
    InvalidParameterException => 400,
    ClusterNotFoundException => 400,
    TargetNotFoundException => 400,
    AttributeLimitExceededException => 400,
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
    ThrottlingException => 400,
    // JSON protocol errors.
    SerializationException => 400,
    UnknownOperationException => 400,
    RequestEntityTooLargeException => 413,
    RequestTimeoutException => 408,
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
    AccessDenied => 403,
    // IAM and STS errors.
    NoSuchEntity => 404,
    EntityAlreadyExists => 409,
    MalformedPolicyDocument => 400,
    DeleteConflict => 409,
    LimitExceeded => 409,
    ValidationError => 400,
    InvalidInput => 400,
    UnmodifiableEntity => 400,
    ExpiredToken => 400,
    ExpiredTokenException => 400,
    // EC2 errors.
    AuthFailure => 401,
    UnauthorizedOperation => 403,
    RequestExpired => 400,
    InvalidParameterValue => 400,
    InvalidParameterCombination => 400,
    MissingParameter => 400,
    UnknownParameter => 400,
    InvalidVpcIdNotFound = "InvalidVpcID.NotFound" => 400,
    InvalidVpcIdMalformed = "InvalidVpcID.Malformed" => 400,
    InvalidVpcRange = "InvalidVpc.Range" => 400,
    InvalidSubnetIdNotFound = "InvalidSubnetID.NotFound" => 400,
    InvalidSubnetIdMalformed = "InvalidSubnetID.Malformed" => 400,
    InvalidSubnetRange = "InvalidSubnet.Range" => 400,
    InvalidSubnetConflict = "InvalidSubnet.Conflict" => 400,
    InvalidGroupNotFound = "InvalidGroup.NotFound" => 400,
    InvalidGroupIdMalformed = "InvalidGroupId.Malformed" => 400,
    InvalidGroupDuplicate = "InvalidGroup.Duplicate" => 400,
    InvalidGroupReserved = "InvalidGroup.Reserved" => 400,
    InvalidPermissionDuplicate = "InvalidPermission.Duplicate" => 400,
    InvalidPermissionNotFound = "InvalidPermission.NotFound" => 400,
    InvalidPermissionMalformed = "InvalidPermission.Malformed" => 400,
    InvalidSecurityGroupRuleIdNotFound = "InvalidSecurityGroupRuleId.NotFound" => 400,
    InvalidAvailabilityZone => 400,
    InvalidFilter => 400,
    DefaultVpcAlreadyExists => 400,
    CannotDelete => 400,
    DependencyViolation => 400,
    VpcLimitExceeded => 400,
    InvalidNetworkInterfaceIdNotFound = "InvalidNetworkInterfaceID.NotFound" => 400,
    // ECR errors.
    RepositoryNotFoundException => 400,
    RepositoryAlreadyExistsException => 400,
    RepositoryNotEmptyException => 400,
    RepositoryPolicyNotFoundException => 400,
    ImageNotFoundException => 400,
    ImageTagAlreadyExistsException => 400,
    ImageAlreadyExistsException => 400,
    LayersNotFoundException => 400,
    LifecyclePolicyNotFoundException => 400,
    InvalidTagParameterException => 400,
    TooManyTagsException => 400,
    ValidationException => 400,
    // CloudWatch Logs errors.
    ResourceAlreadyExistsException => 400,
    DataAlreadyAcceptedException => 400,
    ServiceUnavailableException => 503,
    // Secrets Manager errors.
    ResourceExistsException => 400,
    InvalidRequestException => 400,
    DecryptionFailure => 400,
    MalformedPolicyDocumentException => 400,
    // SSM Parameter Store errors.
    ParameterNotFound => 400,
    ParameterAlreadyExists => 400,
    ParameterVersionNotFound => 400,
    ParameterMaxVersionLimitExceeded => 400,
    ParameterVersionLabelLimitExceeded => 400,
    ParameterPatternMismatchException => 400,
    HierarchyTypeMismatchException => 400,
    UnsupportedParameterType => 400,
    InvalidKeyId => 400,
    InvalidFilterKey => 400,
    InvalidFilterOption => 400,
    InvalidFilterValue => 400,
    InvalidNextToken => 400,
    InvalidResourceId => 400,
    InvalidResourceType => 400,
    TooManyTagsError => 400,
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
