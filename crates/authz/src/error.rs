//! Errors of the authorization crate. None of them is an access decision: a refused access is a
//! [`crate::Decision::Deny`], never an `Err`.

/// TS-0003 §7.1.3 (format of privileges and selfPrivileges): an `<accessControlPolicy>`
/// that cannot be compiled. The CSE answers such a CREATE or UPDATE with 4000 BAD_REQUEST.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid accessControlPolicy: `{path}` {problem}")]
pub struct CompileError {
    /// Where the problem is, in short names, e.g. `pv.acr[2].acco[0].actw[1]`.
    pub path: String,
    /// What is wrong there.
    pub problem: Problem,
}

impl CompileError {
    pub(crate) fn new(path: impl Into<String>, problem: Problem) -> Self {
        Self {
            path: path.into(),
            problem,
        }
    }

    pub(crate) fn invalid(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(path, Problem::Invalid(detail.into()))
    }
}

/// The kind of problem a [`CompileError`] reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A mandatory element is absent.
    #[error("is missing")]
    Missing,
    /// The element has the wrong JSON type.
    #[error("must be {0}")]
    WrongType(&'static str),
    /// The element has the right type but a value the spec does not allow.
    #[error("is invalid: {0}")]
    Invalid(String),
}

/// A CSE-ID, AE-ID or M2M-SP-ID that cannot be normalised to absolute form. The CSE answers a
/// request whose `From` is refused here with 4000 BAD_REQUEST.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid identifier `{input}`: {reason}")]
pub struct IdError {
    /// The text that was refused.
    pub input: String,
    /// Why it was refused.
    pub reason: &'static str,
}

impl IdError {
    pub(crate) fn new(input: &str, reason: &'static str) -> Self {
        Self {
            input: input.into(),
            reason,
        }
    }
}

/// An originator location (`rq_loc`) or country code that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    /// Latitude outside −90…90, longitude outside −180…180, or not a finite number.
    #[error("coordinates out of range: latitude {latitude}, longitude {longitude}")]
    Coordinates {
        /// The latitude given, in degrees.
        latitude: String,
        /// The longitude given, in degrees.
        longitude: String,
    },
    /// Not an ISO 3166-1 alpha-2 code.
    #[error("`{0}` is not an ISO 3166-1 alpha-2 country code")]
    CountryCode(String),
}
