//! Attribute definitions of the supported resource types (TS-0001 §9.6, short names from TS-0004 §8.2)
//! and the checks a CREATE or UPDATE request's content must pass.

use serde_json::{Map, Value};

use crate::time::Timestamp;
use crate::types::{Operation, ResourceType};

/// The value shape an attribute accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Str,
    /// A boolean.
    Bool,
    /// A non-negative integer.
    Uint,
    /// A timestamp `YYYYMMDDTHHMMSS[,ffffff]`.
    Time,
    /// A list of strings.
    StrList,
    /// A list of non-negative integers.
    UintList,
    /// A JSON object.
    Object,
    /// Any JSON value (e.g. `con`).
    Any,
}

/// Whether an attribute may appear in a request (TS-0001 "RW/RO/WO" with M/O/NP per operation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Must be present.
    Mandatory,
    /// May be present.
    Optional,
    /// Must not be present (read-only or fixed at creation).
    NotPresent,
}

use Kind::*;
use Presence::{Mandatory as M, NotPresent as NP, Optional as O};

/// One attribute of a resource type.
#[derive(Clone, Copy, Debug)]
pub struct Attribute {
    /// Short name, the JSON key.
    pub short: &'static str,
    /// Long name, for messages.
    pub long: &'static str,
    /// Accepted value shape.
    pub kind: Kind,
    /// Presence in CREATE.
    pub create: Presence,
    /// Presence in UPDATE.
    pub update: Presence,
}

const fn a(
    short: &'static str,
    long: &'static str,
    kind: Kind,
    create: Presence,
    update: Presence,
) -> Attribute {
    Attribute {
        short,
        long,
        kind,
        create,
        update,
    }
}

/// Universal and common attributes (TS-0001 §9.6.1.3), valid on every supported type.
pub const COMMON: &[Attribute] = &[
    a("ty", "resourceType", Uint, NP, NP),
    a("ri", "resourceID", Str, NP, NP),
    a("rn", "resourceName", Str, O, NP),
    a("pi", "parentID", Str, NP, NP),
    a("ct", "creationTime", Time, NP, NP),
    a("lt", "lastModifiedTime", Time, NP, NP),
    a("et", "expirationTime", Time, O, O),
    a("lbl", "labels", StrList, O, O),
    a("acpi", "accessControlPolicyIDs", StrList, O, O),
    a("daci", "dynamicAuthorizationConsultationIDs", StrList, O, O),
    a("at", "announceTo", StrList, O, O),
    a("aa", "announcedAttribute", StrList, O, O),
    a("cstn", "custodian", Str, O, O),
];

const AE: &[Attribute] = &[
    a("api", "App-ID", Str, M, NP),
    a("apn", "appName", Str, O, O),
    a("aei", "AE-ID", Str, NP, NP),
    a("poa", "pointOfAccess", StrList, O, O),
    a("or", "ontologyRef", Str, O, O),
    a("nl", "nodeLink", Str, O, O),
    a("rr", "requestReachability", Bool, M, O),
    a("csz", "contentSerialization", StrList, O, O),
    a("srv", "supportedReleaseVersions", StrList, O, O),
    a("esi", "e2eSecInfo", Object, O, O),
];

const CONTAINER: &[Attribute] = &[
    a("cr", "creator", Str, O, NP),
    a("st", "stateTag", Uint, NP, NP),
    a("mni", "maxNrOfInstances", Uint, O, O),
    a("mbs", "maxByteSize", Uint, O, O),
    a("mia", "maxInstanceAge", Uint, O, O),
    a("cni", "currentNrOfInstances", Uint, NP, NP),
    a("cbs", "currentByteSize", Uint, NP, NP),
    a("li", "locationID", Str, O, O),
    a("or", "ontologyRef", Str, O, O),
    a("disr", "disableRetrieval", Bool, O, O),
];

const CONTENT_INSTANCE: &[Attribute] = &[
    a("cr", "creator", Str, O, NP),
    a("st", "stateTag", Uint, NP, NP),
    a("cnf", "contentInfo", Str, O, NP),
    a("cs", "contentSize", Uint, NP, NP),
    a("conr", "contentRef", Object, O, NP),
    a("or", "ontologyRef", Str, O, NP),
    a("con", "content", Any, M, NP),
];

const ACP: &[Attribute] = &[
    a("cr", "creator", Str, O, NP),
    a("pv", "privileges", Object, M, O),
    a("pvs", "selfPrivileges", Object, M, O),
];

/// `<dynamicAuthorizationConsultation>` (TS-0001 §9.6.40, TS-0003 §7.3.2.2).
const DYNAMIC_AUTHORIZATION_CONSULTATION: &[Attribute] = &[
    a("cr", "creator", Str, O, NP),
    a("dae", "dynamicAuthorizationEnabled", Bool, M, O),
    a("dap", "dynamicAuthorizationPoA", StrList, M, O),
    a("dal", "dynamicAuthorizationLifetime", Uint, O, O),
];

/// `<role>` (TS-0001 §9.6.38, TS-0003 §7.4): a role assigned by an Authorization Authority.
/// Everything but the token link is fixed at creation.
const ROLE: &[Attribute] = &[
    a("cr", "creator", Str, O, NP),
    a("rlid", "roleID", Str, M, NP),
    a("tkis", "issuer", Str, M, NP),
    a("tkhd", "holder", Str, M, NP),
    a("tknb", "notBefore", Time, M, NP),
    a("tkna", "notAfter", Time, M, NP),
    a("rlnm", "roleName", Str, O, NP),
    a("rltl", "tokenLink", Str, O, O),
];

/// `<token>` (TS-0001 §9.6.39, TS-0003 §7.4): a token in a Token Repository. Only
/// `tokenObject` is authoritative; the other attributes are copies for reading.
const TOKEN: &[Attribute] = &[
    a("cr", "creator", Str, O, NP),
    a("tkid", "tokenID", Str, M, NP),
    a("tkob", "tokenObject", Str, M, NP),
    a("vr", "version", Str, O, NP),
    a("tkis", "issuer", Str, O, NP),
    a("tkau", "audience", StrList, O, NP),
    a("tkhd", "holder", Str, O, NP),
    a("tknb", "notBefore", Time, O, NP),
    a("tkna", "notAfter", Time, O, NP),
    a("tknm", "tokenName", Str, O, NP),
    a("tkps", "permissions", Any, O, NP),
    a("tkex", "extension", Str, O, NP),
];

const SUBSCRIPTION: &[Attribute] = &[
    a("cr", "creator", Str, O, NP),
    a("enc", "eventNotificationCriteria", Object, O, O),
    a("exc", "expirationCounter", Uint, O, O),
    a("nu", "notificationURI", StrList, M, O),
    a("gpi", "groupID", Str, O, O),
    a("nfu", "notificationForwardingURI", Str, O, O),
    a("bn", "batchNotify", Object, O, O),
    a("rl", "rateLimit", Object, O, O),
    a("pn", "pendingNotification", Uint, O, O),
    a("nsp", "notificationStoragePriority", Uint, O, O),
    a("ln", "latestNotify", Bool, O, O),
    a("nct", "notificationContentType", Uint, O, O),
    a("nec", "notificationEventCat", Uint, O, O),
    a("su", "subscriberURI", Str, O, NP),
];

const GROUP: &[Attribute] = &[
    a("cr", "creator", Str, O, NP),
    a("mt", "memberType", Uint, O, NP),
    a("cnm", "currentNrOfMembers", Uint, NP, NP),
    a("mnm", "maxNrOfMembers", Uint, M, O),
    a("mid", "memberIDs", StrList, M, O),
    a("macp", "membersAccessControlPolicyIDs", StrList, O, O),
    a("mtv", "memberTypeValidated", Bool, NP, NP),
    a("csy", "consistencyStrategy", Uint, O, NP),
    a("gn", "groupName", Str, O, O),
];

const REMOTE_CSE: &[Attribute] = &[
    a("cst", "cseType", Uint, O, NP),
    a("poa", "pointOfAccess", StrList, O, O),
    a("cb", "CSEBase", Str, M, NP),
    a("csi", "CSE-ID", Str, M, NP),
    a("rr", "requestReachability", Bool, M, O),
    a("nl", "nodeLink", Str, O, O),
    a("csz", "contentSerialization", StrList, O, O),
    a("srv", "supportedReleaseVersions", StrList, O, O),
    a("dcse", "descendantCSEs", StrList, O, O),
    a("esi", "e2eSecInfo", Object, O, O),
];

const CSE_BASE: &[Attribute] = &[
    a("cst", "cseType", Uint, NP, NP),
    a("csi", "CSE-ID", Str, NP, NP),
    a("srt", "supportedResourceType", UintList, NP, NP),
    a("poa", "pointOfAccess", StrList, NP, NP),
    a("nl", "nodeLink", Str, NP, NP),
    a("csz", "contentSerialization", StrList, NP, NP),
    a("srv", "supportedReleaseVersions", StrList, NP, NP),
    a("esi", "e2eSecInfo", Object, NP, NP),
];

/// The resource types this CSE hosts and their specific attributes.
pub fn specific_attributes(ty: ResourceType) -> Option<&'static [Attribute]> {
    Some(match ty {
        ResourceType::ACCESS_CONTROL_POLICY => ACP,
        ResourceType::AE => AE,
        ResourceType::CONTAINER => CONTAINER,
        ResourceType::CONTENT_INSTANCE => CONTENT_INSTANCE,
        ResourceType::CSE_BASE => CSE_BASE,
        ResourceType::DYNAMIC_AUTHORIZATION_CONSULTATION => DYNAMIC_AUTHORIZATION_CONSULTATION,
        ResourceType::GROUP => GROUP,
        ResourceType::REMOTE_CSE => REMOTE_CSE,
        ResourceType::ROLE => ROLE,
        ResourceType::SUBSCRIPTION => SUBSCRIPTION,
        ResourceType::TOKEN => TOKEN,
        _ => return None,
    })
}

/// The types a client may create (CSEBase exists once and is made by the CSE).
pub const CREATABLE: &[ResourceType] = &[
    ResourceType::ACCESS_CONTROL_POLICY,
    ResourceType::AE,
    ResourceType::CONTAINER,
    ResourceType::CONTENT_INSTANCE,
    ResourceType::DYNAMIC_AUTHORIZATION_CONSULTATION,
    ResourceType::GROUP,
    ResourceType::REMOTE_CSE,
    ResourceType::ROLE,
    ResourceType::SUBSCRIPTION,
    ResourceType::TOKEN,
];

/// TS-0001 §9.6: which child types a parent type accepts.
pub fn allowed_children(parent: ResourceType) -> &'static [ResourceType] {
    use ResourceType as T;
    match parent {
        T::CSE_BASE => &[
            T::ACCESS_CONTROL_POLICY,
            T::AE,
            T::CONTAINER,
            T::DYNAMIC_AUTHORIZATION_CONSULTATION,
            T::GROUP,
            T::REMOTE_CSE,
            T::ROLE,
            T::SUBSCRIPTION,
            T::TOKEN,
        ],
        T::AE => &[
            T::ACCESS_CONTROL_POLICY,
            T::CONTAINER,
            T::DYNAMIC_AUTHORIZATION_CONSULTATION,
            T::GROUP,
            T::SUBSCRIPTION,
        ],
        T::CONTAINER => &[T::CONTAINER, T::CONTENT_INSTANCE, T::SUBSCRIPTION],
        T::REMOTE_CSE => &[
            T::ACCESS_CONTROL_POLICY,
            T::AE,
            T::CONTAINER,
            T::DYNAMIC_AUTHORIZATION_CONSULTATION,
            T::GROUP,
            T::SUBSCRIPTION,
        ],
        T::GROUP | T::ACCESS_CONTROL_POLICY | T::ROLE | T::TOKEN => &[T::SUBSCRIPTION],
        _ => &[],
    }
}

/// Why request content was refused; every variant names the attribute.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    /// Not an attribute of this type.
    #[error("unknown attribute '{0}' for this resource type")]
    Unknown(String),
    /// Mandatory but absent.
    #[error("missing mandatory attribute '{short}' ({long})")]
    Missing {
        /// Short name.
        short: &'static str,
        /// Long name.
        long: &'static str,
    },
    /// Present but not allowed in this operation.
    #[error("attribute '{short}' ({long}) must not be present in {op}")]
    NotAllowed {
        /// Short name.
        short: &'static str,
        /// Long name.
        long: &'static str,
        /// CREATE or UPDATE.
        op: &'static str,
    },
    /// Wrong value shape.
    #[error("attribute '{short}' ({long}) must be {expected}")]
    WrongType {
        /// Short name.
        short: &'static str,
        /// Long name.
        long: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// The type is not hosted here.
    #[error("resource type {0} is not supported")]
    UnsupportedType(u16),
}

fn kind_ok(kind: Kind, v: &Value) -> bool {
    match kind {
        Str => v.is_string(),
        Bool => v.is_boolean(),
        Uint => v.is_u64(),
        Time => v.as_str().and_then(Timestamp::parse).is_some(),
        StrList => v.as_array().is_some_and(|l| l.iter().all(Value::is_string)),
        UintList => v.as_array().is_some_and(|l| l.iter().all(Value::is_u64)),
        Object => v.is_object(),
        Any => true,
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Str => "a string",
        Bool => "a boolean",
        Uint => "a non-negative integer",
        Time => "a timestamp YYYYMMDDTHHMMSS",
        StrList => "a list of strings",
        UintList => "a list of non-negative integers",
        Object => "an object",
        Any => "any value",
    }
}

/// Looks up the definition of `short` for `ty`.
pub fn attribute(ty: ResourceType, short: &str) -> Option<&'static Attribute> {
    specific_attributes(ty)?
        .iter()
        .chain(COMMON.iter())
        .find(|a| a.short == short)
}

/// Checks the attributes of a CREATE or UPDATE of a resource of type `ty`.
///
/// A `null` value in UPDATE deletes an optional attribute (TS-0004 §7.2.2.2) and is accepted for
/// any attribute that may be updated; `cr: null` in CREATE asks for the creator to be filled in.
pub fn check(
    ty: ResourceType,
    op: Operation,
    attrs: &Map<String, Value>,
) -> Result<(), SchemaError> {
    let specific = specific_attributes(ty).ok_or(SchemaError::UnsupportedType(ty.0))?;
    let op_name = if op == Operation::Create {
        "CREATE"
    } else {
        "UPDATE"
    };
    for (key, value) in attrs {
        let def = attribute(ty, key).ok_or_else(|| SchemaError::Unknown(key.clone()))?;
        let presence = if op == Operation::Create {
            def.create
        } else {
            def.update
        };
        if presence == NP {
            return Err(SchemaError::NotAllowed {
                short: def.short,
                long: def.long,
                op: op_name,
            });
        }
        if value.is_null() {
            if op == Operation::Create && def.short != "cr" {
                return Err(SchemaError::WrongType {
                    short: def.short,
                    long: def.long,
                    expected: kind_name(def.kind),
                });
            }
            if op == Operation::Update && presence == M {
                return Err(SchemaError::NotAllowed {
                    short: def.short,
                    long: def.long,
                    op: op_name,
                });
            }
            continue;
        }
        if def.short == "cr" {
            // TS-0001 §9.6.1.3: the creator is filled in by the Hosting CSE; only null is accepted.
            return Err(SchemaError::WrongType {
                short: "cr",
                long: "creator",
                expected: "null",
            });
        }
        if !kind_ok(def.kind, value) {
            return Err(SchemaError::WrongType {
                short: def.short,
                long: def.long,
                expected: kind_name(def.kind),
            });
        }
    }
    if op == Operation::Create {
        for def in specific.iter().chain(COMMON.iter()) {
            if def.create == M && !attrs.contains_key(def.short) {
                return Err(SchemaError::Missing {
                    short: def.short,
                    long: def.long,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn ae_create_needs_api_and_rr() {
        let t = ResourceType::AE;
        assert!(check(t, Operation::Create, &obj(json!({"api":"Nx","rr":true}))).is_ok());
        assert_eq!(
            check(t, Operation::Create, &obj(json!({"rr":true}))),
            Err(SchemaError::Missing {
                short: "api",
                long: "App-ID"
            })
        );
        assert!(matches!(
            check(t, Operation::Create, &obj(json!({"api":"Nx"}))),
            Err(SchemaError::Missing { short: "rr", .. })
        ));
    }

    #[test]
    fn unknown_read_only_and_wrong_types_are_refused() {
        let t = ResourceType::CONTAINER;
        assert_eq!(
            check(t, Operation::Create, &obj(json!({"xyz":1}))),
            Err(SchemaError::Unknown("xyz".into()))
        );
        assert!(matches!(
            check(t, Operation::Create, &obj(json!({"cni":1}))),
            Err(SchemaError::NotAllowed { .. })
        ));
        assert!(matches!(
            check(t, Operation::Update, &obj(json!({"rn":"x"}))),
            Err(SchemaError::NotAllowed { .. })
        ));
        assert!(matches!(
            check(t, Operation::Create, &obj(json!({"mni":-1}))),
            Err(SchemaError::WrongType { .. })
        ));
        assert!(matches!(
            check(t, Operation::Create, &obj(json!({"lbl":"a"}))),
            Err(SchemaError::WrongType { .. })
        ));
        assert!(matches!(
            check(t, Operation::Create, &obj(json!({"et":"tomorrow"}))),
            Err(SchemaError::WrongType { .. })
        ));
        assert!(
            check(
                t,
                Operation::Create,
                &obj(json!({"mni":5,"lbl":["a"],"et":"20991231T000000","cr":null}))
            )
            .is_ok()
        );
        assert!(matches!(
            check(t, Operation::Create, &obj(json!({"cr":"Cx"}))),
            Err(SchemaError::WrongType { .. })
        ));
        assert!(check(t, Operation::Update, &obj(json!({"mni":null}))).is_ok());
    }

    #[test]
    fn content_instance_cannot_be_updated() {
        let err = check(
            ResourceType::CONTENT_INSTANCE,
            Operation::Update,
            &obj(json!({"con":"x"})),
        );
        assert!(matches!(
            err,
            Err(SchemaError::NotAllowed { short: "con", .. })
        ));
    }

    #[test]
    fn every_child_type_has_a_schema() {
        for parent in CREATABLE.iter().chain([ResourceType::CSE_BASE].iter()) {
            for child in allowed_children(*parent) {
                assert!(specific_attributes(*child).is_some(), "{child:?}");
                assert!(CREATABLE.contains(child));
            }
        }
    }
}
