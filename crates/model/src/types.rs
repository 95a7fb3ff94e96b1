//! Enumerations of TS-0004 §6.3: operation, resource type, result content and friends.

use std::fmt;

/// TS-0004 §6.3.4.2.5 (m2m:operation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Create a child resource.
    Create,
    /// Retrieve a resource (or discover, with `fu=1`).
    Retrieve,
    /// Update attributes.
    Update,
    /// Delete a resource and its subtree.
    Delete,
    /// Deliver a notification.
    Notify,
}

impl Operation {
    /// The wire number.
    pub fn code(self) -> u8 {
        match self {
            Operation::Create => 1,
            Operation::Retrieve => 2,
            Operation::Update => 3,
            Operation::Delete => 4,
            Operation::Notify => 5,
        }
    }

    /// Parses a wire number.
    pub fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            1 => Operation::Create,
            2 => Operation::Retrieve,
            3 => Operation::Update,
            4 => Operation::Delete,
            5 => Operation::Notify,
            _ => return None,
        })
    }
}

/// TS-0004 §6.3.4.2.1 (m2m:resourceType). Unknown numbers round-trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceType(pub u16);

macro_rules! resource_types {
    ($($name:ident = $num:literal, $short:literal;)*) => {
        impl ResourceType {
            $(
                #[doc = concat!("Resource type ", stringify!($num), ", `", $short, "`.")]
                pub const $name: Self = Self($num);
            )*

            /// The JSON root element name (`m2m:ae`, ...) of a known type.
            pub fn short_name(self) -> Option<&'static str> {
                match self.0 {
                    $($num => Some($short),)*
                    _ => None,
                }
            }

            /// The type whose JSON root element is `name`.
            pub fn from_short_name(name: &str) -> Option<Self> {
                match name {
                    $($short => Some(Self($num)),)*
                    _ => None,
                }
            }
        }
    };
}

resource_types! {
    ACCESS_CONTROL_POLICY = 1, "m2m:acp";
    AE = 2, "m2m:ae";
    CONTAINER = 3, "m2m:cnt";
    CONTENT_INSTANCE = 4, "m2m:cin";
    CSE_BASE = 5, "m2m:cb";
    DELIVERY = 6, "m2m:dlv";
    EVENT_CONFIG = 7, "m2m:evcg";
    EXEC_INSTANCE = 8, "m2m:exin";
    GROUP = 9, "m2m:grp";
    LOCATION_POLICY = 10, "m2m:lcp";
    M2M_SERVICE_SUBSCRIPTION_PROFILE = 11, "m2m:mssp";
    MGMT_CMD = 12, "m2m:mgc";
    MGMT_OBJ = 13, "m2m:mgo";
    NODE = 14, "m2m:nod";
    POLLING_CHANNEL = 15, "m2m:pch";
    REMOTE_CSE = 16, "m2m:csr";
    REQUEST = 17, "m2m:req";
    SCHEDULE = 18, "m2m:sch";
    SERVICE_SUBSCRIBED_APP_RULE = 19, "m2m:asar";
    SERVICE_SUBSCRIBED_NODE = 20, "m2m:svsn";
    STATS_COLLECT = 21, "m2m:stcl";
    STATS_CONFIG = 22, "m2m:stcg";
    SUBSCRIPTION = 23, "m2m:sub";
    SEMANTIC_DESCRIPTOR = 24, "m2m:smd";
    FLEX_CONTAINER = 28, "m2m:fcnt";
    TIME_SERIES = 29, "m2m:ts";
    TIME_SERIES_INSTANCE = 30, "m2m:tsi";
    ROLE = 31, "m2m:rol";
    TOKEN = 32, "m2m:tk";
    DYNAMIC_AUTHORIZATION_CONSULTATION = 34, "m2m:dac";
}

impl fmt::Debug for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.short_name() {
            Some(s) => write!(f, "{}({})", self.0, s),
            None => write!(f, "{}", self.0),
        }
    }
}

/// TS-0004 §6.3.4.2.7 (m2m:resultContent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultContent {
    /// 0: nothing.
    Nothing,
    /// 1: the resource's attributes.
    Attributes,
    /// 2: the hierarchical address.
    HierarchicalAddress,
    /// 3: hierarchical address and attributes.
    HierarchicalAddressAndAttributes,
    /// 4: attributes and child resources.
    AttributesAndChildResources,
    /// 5: attributes and child resource references.
    AttributesAndChildResourceReferences,
    /// 6: child resource references.
    ChildResourceReferences,
    /// 7: the original resource (announced resources; treated as 1 here).
    OriginalResource,
    /// 8: child resources.
    ChildResources,
    /// 9: modified attributes (update only).
    ModifiedAttributes,
}

impl ResultContent {
    /// The wire number.
    pub fn code(self) -> u8 {
        match self {
            Self::Nothing => 0,
            Self::Attributes => 1,
            Self::HierarchicalAddress => 2,
            Self::HierarchicalAddressAndAttributes => 3,
            Self::AttributesAndChildResources => 4,
            Self::AttributesAndChildResourceReferences => 5,
            Self::ChildResourceReferences => 6,
            Self::OriginalResource => 7,
            Self::ChildResources => 8,
            Self::ModifiedAttributes => 9,
        }
    }

    /// Parses the wire number.
    pub fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            0 => Self::Nothing,
            1 => Self::Attributes,
            2 => Self::HierarchicalAddress,
            3 => Self::HierarchicalAddressAndAttributes,
            4 => Self::AttributesAndChildResources,
            5 => Self::AttributesAndChildResourceReferences,
            6 => Self::ChildResourceReferences,
            7 => Self::OriginalResource,
            8 => Self::ChildResources,
            9 => Self::ModifiedAttributes,
            _ => return None,
        })
    }
}

/// TS-0004 §6.3.4.2.31 (m2m:discResType): the form of discovered addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DiscoveryResultType {
    /// 1: structured (hierarchical) addresses.
    #[default]
    Structured,
    /// 2: unstructured (resource ID) addresses.
    Unstructured,
}

/// TS-0004 §6.3.4.2.18 (m2m:notificationEventType).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationEventType {
    /// 1: the subscribed-to resource was updated.
    UpdateOfResource,
    /// 2: the subscribed-to resource was deleted.
    DeleteOfResource,
    /// 3: a direct child was created.
    CreateOfDirectChildResource,
    /// 4: a direct child was deleted.
    DeleteOfDirectChildResource,
}

impl NotificationEventType {
    /// The wire number.
    pub fn code(self) -> u8 {
        match self {
            Self::UpdateOfResource => 1,
            Self::DeleteOfResource => 2,
            Self::CreateOfDirectChildResource => 3,
            Self::DeleteOfDirectChildResource => 4,
        }
    }

    /// Parses the wire number.
    pub fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            1 => Self::UpdateOfResource,
            2 => Self::DeleteOfResource,
            3 => Self::CreateOfDirectChildResource,
            4 => Self::DeleteOfDirectChildResource,
            _ => return None,
        })
    }
}

/// TS-0004 §6.3.4.2.16 (m2m:consistencyStrategy) of a `<group>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsistencyStrategy {
    /// 1: drop members of another type.
    AbandonMember,
    /// 2: reject the whole request.
    AbandonGroup,
    /// 3: accept and set the member type to mixed (24).
    SetMixed,
}

impl ConsistencyStrategy {
    /// Parses the wire number.
    pub fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            1 => Self::AbandonMember,
            2 => Self::AbandonGroup,
            3 => Self::SetMixed,
            _ => return None,
        })
    }
}

/// The `mt` value of a group whose members have different types.
pub const MIXED_MEMBER_TYPE: u16 = 24;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_type_names_round_trip() {
        for n in 0..100u16 {
            if let Some(s) = ResourceType(n).short_name() {
                assert_eq!(ResourceType::from_short_name(s), Some(ResourceType(n)));
            }
        }
        assert_eq!(
            ResourceType::from_short_name("m2m:ae"),
            Some(ResourceType::AE)
        );
        assert_eq!(ResourceType::from_short_name("m2m:nope"), None);
    }

    #[test]
    fn operations_round_trip() {
        for c in 1..=5 {
            assert_eq!(
                Operation::from_code(c).map(|o| u64::from(o.code())),
                Some(c)
            );
        }
        assert_eq!(Operation::from_code(6), None);
        assert_eq!(ResultContent::from_code(10), None);
    }
}
