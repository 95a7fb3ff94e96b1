//! Builders for request primitives (TS-0001 §8.1.2), each with a fresh request identifier.
//!
//! Every builder sets `From` to the given originator; set [`Request::from`] to `None` afterwards
//! for a request without `X-M2M-Origin` (e.g. an AE registration letting the CSE assign the
//! AE-ID). Other parameters (result content, filter criteria, release version) are public fields
//! of [`Request`].

use m2mtrust_model::{Operation, Request, ResourceType};
use serde_json::Value;

/// A fresh request identifier, `rq-` followed by 16 random hexadecimal digits.
pub fn request_id() -> String {
    format!("rq-{:016x}", rand::random::<u64>())
}

fn request(operation: Operation, to: &str, from: &str) -> Request {
    let mut req = Request::new(operation, to, Some(from.to_owned()));
    req.request_id = request_id();
    req
}

/// CREATE a resource of type `ty` under `to`; `content` is the resource representation, e.g.
/// `{"m2m:ae": {...}}`.
pub fn create(to: &str, from: &str, ty: ResourceType, content: Value) -> Request {
    let mut req = request(Operation::Create, to, from);
    req.resource_type = Some(ty);
    req.content = Some(content);
    req
}

/// RETRIEVE the resource `to`.
pub fn retrieve(to: &str, from: &str) -> Request {
    request(Operation::Retrieve, to, from)
}

/// UPDATE the resource `to` with the attributes in `content`.
pub fn update(to: &str, from: &str, content: Value) -> Request {
    let mut req = request(Operation::Update, to, from);
    req.content = Some(content);
    req
}

/// DELETE the resource `to`.
pub fn delete(to: &str, from: &str) -> Request {
    request(Operation::Delete, to, from)
}

/// NOTIFY `to` with `content`, e.g. `{"m2m:sgn": {...}}`.
pub fn notify(to: &str, from: &str, content: Value) -> Request {
    let mut req = request(Operation::Notify, to, from);
    req.content = Some(content);
    req
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn builders_fill_the_mandatory_parameters() {
        let c = create("cse-in", "CAdmin", ResourceType::AE, json!({"m2m:ae": {}}));
        assert_eq!(c.operation, Operation::Create);
        assert_eq!(c.to, "cse-in");
        assert_eq!(c.from.as_deref(), Some("CAdmin"));
        assert_eq!(c.resource_type, Some(ResourceType::AE));
        assert_eq!(c.content, Some(json!({"m2m:ae": {}})));
        assert!(c.request_id.starts_with("rq-") && c.request_id.len() == 19);

        assert_eq!(retrieve("a", "C").operation, Operation::Retrieve);
        assert_eq!(delete("a", "C").operation, Operation::Delete);
        let u = update("a", "C", json!({"m2m:ae": {"lbl": ["x"]}}));
        assert_eq!(u.operation, Operation::Update);
        assert!(u.content.is_some() && u.resource_type.is_none());
        let n = notify("a", "C", json!({"m2m:sgn": {}}));
        assert_eq!(n.operation, Operation::Notify);
    }

    #[test]
    fn request_ids_are_fresh() {
        let ids: std::collections::HashSet<String> = (0..100).map(|_| request_id()).collect();
        assert_eq!(ids.len(), 100);
    }
}
