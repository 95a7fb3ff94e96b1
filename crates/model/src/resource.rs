//! A stored resource: its type, structured address and attribute map (short names).

use serde_json::{Map, Value};

use crate::time::Timestamp;
use crate::types::ResourceType;

/// A resource as hosted: the full attribute representation plus the structured address.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// `ty`.
    pub ty: ResourceType,
    /// The structured CSE-relative address, `cse-in/ae/cnt`.
    pub srn: String,
    /// Every attribute by short name, common ones included (`ri`, `rn`, `pi`, `ct`, `lt`, `et`, ...).
    pub attrs: Map<String, Value>,
}

impl Resource {
    fn str_attr(&self, key: &str) -> &str {
        self.attrs.get(key).and_then(Value::as_str).unwrap_or("")
    }

    fn time_attr(&self, key: &str) -> Option<Timestamp> {
        self.attrs
            .get(key)
            .and_then(Value::as_str)
            .and_then(Timestamp::parse)
    }

    /// `ri`.
    pub fn ri(&self) -> &str {
        self.str_attr("ri")
    }
    /// `pi`; empty for `<CSEBase>`.
    pub fn pi(&self) -> &str {
        self.str_attr("pi")
    }
    /// `rn`.
    pub fn rn(&self) -> &str {
        self.str_attr("rn")
    }
    /// `ct`.
    pub fn ct(&self) -> Option<Timestamp> {
        self.time_attr("ct")
    }
    /// `lt`.
    pub fn lt(&self) -> Option<Timestamp> {
        self.time_attr("lt")
    }
    /// `et`; `None` for resources that never expire (`<CSEBase>`).
    pub fn et(&self) -> Option<Timestamp> {
        self.time_attr("et")
    }
    /// `cr`, the creator.
    pub fn creator(&self) -> Option<&str> {
        self.attrs.get("cr").and_then(Value::as_str)
    }
    /// An unsigned attribute.
    pub fn uint(&self, key: &str) -> Option<u64> {
        self.attrs.get(key).and_then(Value::as_u64)
    }
    /// A list-of-strings attribute; empty when absent.
    pub fn str_list(&self, key: &str) -> Vec<&str> {
        self.attrs
            .get(key)
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
    /// True when `et` is at or before `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.et().is_some_and(|et| et <= now)
    }

    /// The representation `{"m2m:xx": {...}}`.
    pub fn to_json(&self) -> Value {
        let mut outer = Map::new();
        let key = self.ty.short_name().unwrap_or("m2m:unknown");
        outer.insert(key.to_string(), Value::Object(self.attrs.clone()));
        Value::Object(outer)
    }
}
