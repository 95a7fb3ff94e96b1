//! oneM2M data model: identifiers, request and response primitives, resource types with their
//! attributes, response status codes and timestamps. No I/O and no clock reads in the cores:
//! [`time::Timestamp::now`] exists for the outer layers only.

pub mod id;
pub mod peer;
pub mod primitive;
pub mod resource;
pub mod rsc;
pub mod schema;
pub mod time;
pub mod types;

pub use id::{CseId, Home, IdError, Originator, SpId, Target};
pub use peer::{Authentication, PeerIdentity};
pub use primitive::{FilterCriteria, FilterUsage, Request, Response};
pub use resource::Resource;
pub use rsc::ResponseStatusCode;
pub use time::Timestamp;
pub use types::{
    ConsistencyStrategy, DiscoveryResultType, NotificationEventType, Operation, ResourceType,
    ResultContent,
};
