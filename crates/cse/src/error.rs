//! Errors of the resource engine and the one place that maps them to Response Status Codes.

use m2mtrust_model::{ResponseStatusCode as Rsc, schema::SchemaError};
use m2mtrust_store::StoreError;

/// Why a request failed. The message is what the peer reads in `m2m:dbg`, except for
/// [`CseError::Store`], whose detail goes to the log only.
#[derive(Debug, thiserror::Error)]
pub enum CseError {
    /// 4000: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 4001: unsupported `rvi`.
    #[error("{0}")]
    ReleaseVersionNotSupported(String),
    /// 4004: no such resource.
    #[error("{0}")]
    NotFound(String),
    /// 4005: the operation is not allowed on this resource.
    #[error("{0}")]
    OperationNotAllowed(String),
    /// 4103: access control denied the request.
    #[error("{0}")]
    NoPrivilege(String),
    /// 4103, with the Token Request Information (`tqf`) naming the Dynamic Authorization
    /// Systems to obtain tokens from (TS-0003 §7.3.2.3 step 2.3).
    #[error("{0}")]
    AskDas(String, Box<serde_json::Value>),
    /// 4105: the name or ID is taken.
    #[error("{0}")]
    Conflict(String),
    /// 4106: the originator is not registered (or not the identity of its connection).
    #[error("{0}")]
    NotRegistered(String),
    /// 4107: a CSE sent a request without a security association.
    #[error("{0}")]
    SecurityAssociationRequired(String),
    /// 4108: this type cannot be a child of the target.
    #[error("{0}")]
    InvalidChildType(String),
    /// 4110: group members of the wrong type with consistencyStrategy ABANDON_GROUP.
    #[error("{0}")]
    GroupMemberTypeInconsistent(String),
    /// 5103: the target is hosted elsewhere.
    #[error("{0}")]
    TargetNotReachable(String),
    /// 5204: a notification target did not confirm the subscription.
    #[error("{0}")]
    VerificationFailed(String),
    /// 5207: the content does not fit (e.g. larger than the container's `mbs`).
    #[error("{0}")]
    NotAcceptable(String),
    /// 6010: more members than `mnm`.
    #[error("{0}")]
    MaxMembersExceeded(String),
    /// 5000: a storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SchemaError> for CseError {
    fn from(e: SchemaError) -> Self {
        CseError::BadRequest(e.to_string())
    }
}

impl From<&CseError> for Rsc {
    fn from(e: &CseError) -> Self {
        match e {
            CseError::BadRequest(_) => Rsc::BAD_REQUEST,
            CseError::ReleaseVersionNotSupported(_) => Rsc::RELEASE_VERSION_NOT_SUPPORTED,
            CseError::NotFound(_) => Rsc::NOT_FOUND,
            CseError::OperationNotAllowed(_) => Rsc::OPERATION_NOT_ALLOWED,
            CseError::NoPrivilege(_) | CseError::AskDas(..) => Rsc::ORIGINATOR_HAS_NO_PRIVILEGE,
            CseError::Conflict(_) => Rsc::CONFLICT,
            CseError::NotRegistered(_) => Rsc::ORIGINATOR_HAS_NOT_REGISTERED,
            CseError::SecurityAssociationRequired(_) => Rsc::SECURITY_ASSOCIATION_REQUIRED,
            CseError::InvalidChildType(_) => Rsc::INVALID_CHILD_RESOURCE_TYPE,
            CseError::GroupMemberTypeInconsistent(_) => Rsc::GROUP_MEMBER_TYPE_INCONSISTENT,
            CseError::TargetNotReachable(_) => Rsc::TARGET_NOT_REACHABLE,
            CseError::VerificationFailed(_) => Rsc::SUBSCRIPTION_VERIFICATION_INITIATION_FAILED,
            CseError::NotAcceptable(_) => Rsc::NOT_ACCEPTABLE,
            CseError::MaxMembersExceeded(_) => Rsc::MAX_NUMBER_OF_MEMBER_EXCEEDED,
            CseError::Store(_) => Rsc::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Shorthand for results of the engine.
pub type Result<T, E = CseError> = std::result::Result<T, E>;

/// `CseError::BadRequest(format!(..))`.
macro_rules! bad_request {
    ($($t:tt)*) => { $crate::error::CseError::BadRequest(format!($($t)*)) };
}
pub(crate) use bad_request;
