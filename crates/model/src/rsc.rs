//! Response Status Codes (TS-0004 §6.6) and their HTTP mapping (TS-0009 §6.3).

use std::fmt;

/// A oneM2M Response Status Code. Unknown numbers round-trip unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponseStatusCode(pub u16);

macro_rules! codes {
    ($($name:ident = $num:literal, $http:literal;)*) => {
        impl ResponseStatusCode {
            $(
                #[doc = concat!("RSC ", stringify!($num), " ", stringify!($name), ".")]
                pub const $name: Self = Self($num);
            )*

            /// The TS-0004 name of a known code.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($num => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// The HTTP status code TS-0009 maps this code to.
            pub fn http_status(self) -> u16 {
                match self.0 {
                    $($num => $http,)*
                    1000..=1999 => 202,
                    2000..=2999 => 200,
                    4000..=4999 => 400,
                    _ => 500,
                }
            }
        }
    };
}

codes! {
    ACCEPTED = 1000, 202;
    OK = 2000, 200;
    CREATED = 2001, 201;
    DELETED = 2002, 200;
    UPDATED = 2004, 200;
    BAD_REQUEST = 4000, 400;
    RELEASE_VERSION_NOT_SUPPORTED = 4001, 501;
    NOT_FOUND = 4004, 404;
    OPERATION_NOT_ALLOWED = 4005, 405;
    REQUEST_TIMEOUT = 4008, 408;
    UNSUPPORTED_MEDIA_TYPE = 4015, 415;
    SUBSCRIPTION_CREATOR_HAS_NO_PRIVILEGE = 4101, 403;
    CONTENTS_UNACCEPTABLE = 4102, 400;
    ORIGINATOR_HAS_NO_PRIVILEGE = 4103, 403;
    GROUP_REQUEST_IDENTIFIER_EXISTS = 4104, 409;
    CONFLICT = 4105, 409;
    ORIGINATOR_HAS_NOT_REGISTERED = 4106, 403;
    SECURITY_ASSOCIATION_REQUIRED = 4107, 403;
    INVALID_CHILD_RESOURCE_TYPE = 4108, 403;
    NO_MEMBERS = 4109, 403;
    GROUP_MEMBER_TYPE_INCONSISTENT = 4110, 400;
    ESPRIM_UNSUPPORTED_OPTION = 4111, 403;
    ESPRIM_UNKNOWN_KEY_ID = 4112, 403;
    ESPRIM_UNKNOWN_ORIG_RAND_ID = 4113, 403;
    ESPRIM_UNKNOWN_RECV_RAND_ID = 4114, 403;
    ESPRIM_BAD_MAC = 4115, 403;
    ESPRIM_IMPERSONATION_ERROR = 4116, 403;
    ORIGINATOR_HAS_ALREADY_REGISTERED = 4117, 403;
    APP_RULE_VALIDATION_FAILED = 4126, 403;
    INTERNAL_SERVER_ERROR = 5000, 500;
    NOT_IMPLEMENTED = 5001, 501;
    TARGET_NOT_REACHABLE = 5103, 404;
    RECEIVER_HAS_NO_PRIVILEGE = 5105, 403;
    ALREADY_EXISTS = 5106, 409;
    TARGET_NOT_SUBSCRIBABLE = 5203, 403;
    SUBSCRIPTION_VERIFICATION_INITIATION_FAILED = 5204, 500;
    SUBSCRIPTION_HOST_HAS_NO_PRIVILEGE = 5205, 403;
    NON_BLOCKING_REQUEST_NOT_SUPPORTED = 5206, 501;
    NOT_ACCEPTABLE = 5207, 406;
    GROUP_MEMBERS_NOT_RESPONDED = 5209, 500;
    ESPRIM_DECRYPTION_ERROR = 5210, 500;
    ESPRIM_ENCRYPTION_ERROR = 5211, 500;
    EXTERNAL_OBJECT_NOT_REACHABLE = 6003, 404;
    EXTERNAL_OBJECT_NOT_FOUND = 6005, 404;
    MAX_NUMBER_OF_MEMBER_EXCEEDED = 6010, 400;
    INVALID_ARGUMENTS = 6023, 400;
    INSUFFICIENT_ARGUMENTS = 6024, 400;
}

impl ResponseStatusCode {
    /// True for the 1xxx and 2xxx classes.
    pub fn is_success(self) -> bool {
        (1000..3000).contains(&self.0)
    }
}

impl fmt::Debug for ResponseStatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{} {}", self.0, n),
            None => write!(f, "{}", self.0),
        }
    }
}

impl fmt::Display for ResponseStatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::ResponseStatusCode as R;

    /// TS-0009 Table 6.3.2-1 rows, transcribed: (RSC, HTTP status).
    const TS0009: &[(u16, u16)] = &[
        (2000, 200),
        (2001, 201),
        (2002, 200),
        (2004, 200),
        (4000, 400),
        (4004, 404),
        (4005, 405),
        (4008, 408),
        (4101, 403),
        (4102, 400),
        (4103, 403),
        (4104, 409),
        (4105, 409),
        (4106, 403),
        (4107, 403),
        (4108, 403),
        (4110, 400),
        (5000, 500),
        (5001, 501),
        (5103, 404),
        (5105, 403),
        (5106, 409),
        (5203, 403),
        (5204, 500),
        (5205, 403),
        (5207, 406),
        (6010, 400),
    ];

    #[test]
    fn http_mapping_matches_ts0009() {
        for &(rsc, http) in TS0009 {
            assert_eq!(R(rsc).http_status(), http, "RSC {rsc}");
        }
    }

    #[test]
    fn unknown_codes_round_trip_and_map_by_class() {
        assert_eq!(R(4999).name(), None);
        assert_eq!(R(4999).http_status(), 400);
        assert_eq!(R(6999).http_status(), 500);
        assert_eq!(format!("{}", R(4103)), "4103 ORIGINATOR_HAS_NO_PRIVILEGE");
        assert!(R::CREATED.is_success() && !R::NOT_FOUND.is_success());
    }
}
