//! oneM2M access control decisions: TS-0003 §7.1 (access control mechanism), the pure
//! Policy Decision Point of the hosting CSE.
//!
//! # API
//!
//! 1. When an `<accessControlPolicy>` is created or updated, the CSE compiles its JSON once
//!    with [`CompiledAcp::compile`]. A [`CompileError`] names the bad element
//!    (e.g. `pv.acr[0].acop`) and becomes 4000 BAD_REQUEST. The compiled ACP is immutable;
//!    keep it as `Arc<CompiledAcp>` next to the stored resource.
//! 2. At start-up the CSE builds one [`Pdp`] from its identity ([`HostingCse`]: M2M-SP-ID
//!    and CSE-ID) and the time zone in which time windows are read.
//! 3. For each request it normalises the authenticated `From` ([`Pdp::originator`]), chooses
//!    the rule set ([`RuleSet::select`]: `selfPrivileges` for an ACP target and for an
//!    UPDATE that changes `acpi`, `privileges` otherwise), fills a [`Request`] and calls
//!    [`Pdp::decide`] with the ACP set of the target and a [`Directory`] for `<group>`
//!    members. [`Decision::Deny`] becomes 4103 ORIGINATOR_HAS_NO_PRIVILEGE.
//! 4. Discovery results go through [`Pdp::filter_discovery`]; partial RETRIEVEs and UPDATEs
//!    under attribute-level rules use [`Pdp::permitted_attributes`] or
//!    [`Attributes::Touched`].
//!
//! ```
//! use m2mtrust_authz::{CompiledAcp, HostingCse, NoDirectory, Operation, Pdp, Request, RuleSet};
//!
//! let acp = serde_json::json!({"ri": "acp1",
//!     "pv": {"acr": [{"acor": ["/id-in/C*"], "acop": 3}]},
//!     "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}});
//! let acps = vec![std::sync::Arc::new(CompiledAcp::compile(&acp)?)];
//! let pdp = Pdp::new(HostingCse::new("//m2mtrust.example", "/id-in")?);
//! let from = pdp.originator("Csensor")?;
//! let now = chrono::DateTime::UNIX_EPOCH;
//! let request = Request::new(&from, Operation::Retrieve, now);
//! let decision = pdp.decide(&acps, RuleSet::Privileges, &request, &NoDirectory);
//! assert!(decision.is_permit());
//! assert_eq!(decision.to_string(), "permit by pv acp[0] (acp1) rule 0");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Invariants
//!
//! * **Pure.** No I/O, no clock, no global state. `rq_time` is [`Request::time`], `rq_ip`,
//!   `rq_loc` and `rq_authn` are given by the caller, and `<group>` resolution goes through
//!   the caller's [`Directory`]. The same inputs always give the same [`Decision`].
//! * **Never fails open.** Only a rule whose every term is TRUE permits (§7.1.4). A missing
//!   input a rule needs (no peer address for `acip`, no location for `aclr`, no resource
//!   type for `acod`), an unresolvable group, and any rule element or `acor` form the engine
//!   does not understand make that rule indeterminate, and an indeterminate rule never
//!   permits. When nothing permits, the deny reason records the first indeterminate rule.
//! * **Order does not matter.** Permit-overrides across rules and ACPs (§7.1.5): shuffling
//!   rules or ACPs never changes whether access is permitted.
//! * **Compiled once.** Originator patterns, bitmasks, time windows, CIDR ranges and
//!   regions are parsed at compile time; a decision allocates nothing on the common path.
//!
//! # Audit
//!
//! The crate emits no `tracing` events: it does not know the peer address, credential or
//! target that an audit event carries. Every [`Decision`] instead names the rule set, the
//! ACP index and resource-ID and the rule index that permitted ([`Permit`]), or why access
//! was denied ([`DenyReason`]); its `Display` form is a one-line summary for the CSE's event.
//!
//! # Readings of the specification
//!
//! Where TS-0003 V2 leaves a choice open, this crate takes the reading that grants less:
//!
//! * `acor` forms (§7.1.3, Table 7.1.3-2): `all` (exact, lower case); SP domains `//fqdn`
//!   (whole SP-ID, case-sensitive); absolute and SP-relative CSE-IDs/AE-IDs with `*` matching
//!   within one `/`-separated segment; bare AE-ID-Stems `C…` (relative to the hosting CSE)
//!   and `S…` (relative to the hosting SP); Role-IDs (`x@issuer`); anything else without
//!   `*` is a `<group>` resource-ID. Text with the syntax of an ID is never looked up as a
//!   group, so the CSE must give `<group>` resources resource-IDs that do not start with `C`
//!   or `S` (e.g. `grp…`) for them to be usable in `acor`. Nested groups are followed to
//!   [`MAX_GROUP_DEPTH`]; a group the directory does not know is indeterminate.
//! * Discovery is RETRIEVE with `fu` = 1 or 3 ([`Operation::from_primitive`]).
//! * `actw` (TS-0004 §7.3.8) has six fields plus an optional year; day-of-month and
//!   day-of-week must both match. Windows are read in the [`Pdp`]'s time zone, UTC by default.
//! * `aclr` may list country codes (`accc`) and circles (`accr`); each is an admissible region
//!   (Annex F), so a location inside any of them matches. A country region needs a country in
//!   `rq_loc` and a circle needs coordinates; the engine does not convert one to the other.
//! * `acod` with `spty` (or `specializationID`) matches the `mgmtDefinition` or
//!   `containerDefinition` given in the CREATE's Content (§7.1.5).
//! * `aca` (accessControlAttributes, beyond this release): see [`Attributes`].

mod address;
mod decision;
mod error;
mod location;
mod operation;
mod originator;
mod policy;
mod schedule;

pub use decision::{
    AttributeGrant, Attributes, CreateDetails, Decision, Deny, DenyReason, Directory, GroupMember,
    Indeterminacy, MAX_GROUP_DEPTH, NoDirectory, Pdp, Permit, Request, RuleRef,
};
pub use error::{CompileError, IdError, LocationError, Problem};
pub use location::{Coordinates, CountryCode, EARTH_RADIUS_M, OriginatorLocation};
pub use operation::{Operation, RuleSet};
pub use originator::{HostingCse, Originator};
pub use policy::CompiledAcp;

// Compiled ACPs, the decision point and decisions are shared between request tasks; this fails
// to compile if one of them stops being `Send + Sync`.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<std::sync::Arc<CompiledAcp>>();
    shareable::<Pdp>();
    shareable::<Decision>();
};
