//! TS-0003 §7.1.3 (accessControlOperations): the operations a rule can grant, as the bitmask
//! of `m2m:accessControlOperations` (TS-0004 Table 6.3.4.2.29-1), and the choice between
//! `privileges` and `selfPrivileges` (TS-0003 §7.1.1).

/// An operation as access control sees it. Discovery is a RETRIEVE whose filter criteria carry
/// `filterUsage` = 1 (discovery criteria); the caller maps it with [`Operation::from_primitive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// CREATE, bit 1.
    Create,
    /// RETRIEVE without discovery, bit 2.
    Retrieve,
    /// UPDATE, bit 4.
    Update,
    /// DELETE, bit 8.
    Delete,
    /// NOTIFY, bit 16.
    Notify,
    /// DISCOVERY (RETRIEVE with `fu` = 1 or 3), bit 32.
    Discovery,
}

impl Operation {
    /// All operations, in bit order.
    pub const ALL: [Operation; 6] = [
        Self::Create,
        Self::Retrieve,
        Self::Update,
        Self::Delete,
        Self::Notify,
        Self::Discovery,
    ];

    /// The bit of this operation in `acop`.
    pub const fn bit(self) -> u8 {
        match self {
            Self::Create => 1,
            Self::Retrieve => 2,
            Self::Update => 4,
            Self::Delete => 8,
            Self::Notify => 16,
            Self::Discovery => 32,
        }
    }

    /// TS-0003 §7.1.3 (accessControlOperations): maps the request's `op` (1 Create,
    /// 2 Retrieve, 3 Update, 4 Delete, 5 Notify) and `fc.fu` to the operation to check.
    ///
    /// A RETRIEVE with `fu` = 1 (discovery criteria) or 3 (IPE on-demand discovery) is
    /// Discovery; `fu` absent or 2 (conditional retrieval) is Retrieve. Any other `op` or
    /// `fu` gives `None`, which the caller answers with 4000 BAD_REQUEST.
    pub fn from_primitive(op: u8, filter_usage: Option<u8>) -> Option<Self> {
        match (op, filter_usage) {
            (2, None | Some(2)) => Some(Self::Retrieve),
            (2, Some(1 | 3)) => Some(Self::Discovery),
            (2, Some(_)) => None,
            (1, _) => Some(Self::Create),
            (3, _) => Some(Self::Update),
            (4, _) => Some(Self::Delete),
            (5, _) => Some(Self::Notify),
            _ => None,
        }
    }
}

/// Which attribute of the ACPs a request is evaluated against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleSet {
    /// `privileges` (`pv`): requests to every resource type except `<accessControlPolicy>`.
    Privileges,
    /// `selfPrivileges` (`pvs`): requests to an `<accessControlPolicy>` itself, and UPDATEs
    /// that change the `accessControlPolicyIDs` (`acpi`) of a resource, which are checked
    /// against the `selfPrivileges` of the ACPs that resource currently links (TS-0001
    /// §9.6.2).
    SelfPrivileges,
}

impl RuleSet {
    /// TS-0003 §7.1.1 (general description): "Access requests to ACP's itself are evaluated
    /// against the selfPrivileges attribute of that ACP. Access requests to instances of all
    /// other resource types, are evaluated against the privileges attributes".
    ///
    /// `changes_acpi` is true for an UPDATE whose content sets `acpi`; the caller then passes
    /// the ACPs the target links *before* the update.
    pub fn select(target_is_acp: bool, changes_acpi: bool) -> Self {
        if target_is_acp || changes_acpi {
            Self::SelfPrivileges
        } else {
            Self::Privileges
        }
    }

    /// The short name of the attribute, `pv` or `pvs`.
    pub fn short_name(self) -> &'static str {
        match self {
            Self::Privileges => "pv",
            Self::SelfPrivileges => "pvs",
        }
    }
}

impl std::fmt::Display for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.short_name())
    }
}
