//! TS-0003 §7.1.3 (accessControlLocationRegion) and Annex F (location-based access control):
//! admissible regions given as ISO 3166-1 alpha-2 country codes or as circles (centre latitude
//! and longitude in degrees, radius in metres), matched against `rq_loc`.
//!
//! The engine does not acquire locations (Annex F.2 is the CSE's business, through
//! `<locationPolicy>` or an IP-to-country lookup); the caller passes what it knows as an
//! [`OriginatorLocation`]. A circle is matched with the great-circle (haversine) distance on a
//! sphere of the IUGG mean Earth radius; a point exactly on the circle is inside. Antimeridian
//! and polar circles need no special case on a sphere.

use crate::error::LocationError;

/// IUGG mean Earth radius R1, in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A point on the Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates {
    latitude: f64,
    longitude: f64,
}

impl Coordinates {
    /// Checks latitude (−90…90) and longitude (−180…180).
    pub fn new(latitude: f64, longitude: f64) -> Result<Self, LocationError> {
        if latitude.is_finite()
            && longitude.is_finite()
            && (-90.0..=90.0).contains(&latitude)
            && (-180.0..=180.0).contains(&longitude)
        {
            Ok(Self {
                latitude,
                longitude,
            })
        } else {
            Err(LocationError::Coordinates {
                latitude: latitude.to_string(),
                longitude: longitude.to_string(),
            })
        }
    }

    /// Latitude in degrees.
    pub fn latitude(&self) -> f64 {
        self.latitude
    }

    /// Longitude in degrees.
    pub fn longitude(&self) -> f64 {
        self.longitude
    }

    /// Great-circle distance in metres (haversine formula).
    pub fn distance_m(&self, other: &Coordinates) -> f64 {
        let (p1, p2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let dp = p2 - p1;
        let dl = (other.longitude - self.longitude).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }
}

/// An ISO 3166-1 alpha-2 country code, stored in upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Accepts two ASCII letters in either case (`kr` is `KR`).
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Ok(Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => Err(LocationError::CountryCode(text.into())),
        }
    }

    /// The code in upper case.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

/// `rq_loc`: what the hosting CSE knows about where the originator is (TS-0003 Table 7.1.2-2,
/// Annex F.2). Either part may be unknown; a region that needs an unknown part is
/// indeterminate, and the rule does not grant access.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OriginatorLocation {
    /// Coordinates, e.g. from a network-based `<locationPolicy>` (Annex F.2.1).
    pub coordinates: Option<Coordinates>,
    /// Country, e.g. derived from the IP address (Annex F.2.2).
    pub country: Option<CountryCode>,
}

/// One admissible region of an `aclr` element.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Region {
    Country(CountryCode),
    Circle { centre: Coordinates, radius_m: f64 },
}

/// What matching one region against `rq_loc` gave.
pub(crate) enum RegionMatch {
    Inside,
    Outside,
    /// The location lacks the part this region needs.
    CountryUnknown,
    /// The location lacks the part this region needs.
    CoordinatesUnknown,
}

impl Region {
    pub(crate) fn circle(latitude: f64, longitude: f64, radius_m: f64) -> Result<Self, String> {
        let centre = Coordinates::new(latitude, longitude).map_err(|e| e.to_string())?;
        if !(radius_m.is_finite() && radius_m >= 0.0) {
            return Err(format!(
                "radius {radius_m} must be a non-negative number of metres"
            ));
        }
        Ok(Self::Circle { centre, radius_m })
    }

    pub(crate) fn test(&self, loc: &OriginatorLocation) -> RegionMatch {
        match self {
            Self::Country(code) => match loc.country {
                Some(c) if c == *code => RegionMatch::Inside,
                Some(_) => RegionMatch::Outside,
                None => RegionMatch::CountryUnknown,
            },
            Self::Circle { centre, radius_m } => match loc.coordinates {
                Some(p) if centre.distance_m(&p) <= *radius_m => RegionMatch::Inside,
                Some(_) => RegionMatch::Outside,
                None => RegionMatch::CoordinatesUnknown,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let a = Coordinates::new(0.0, 179.9).unwrap();
        let b = Coordinates::new(0.0, -179.9).unwrap();
        let d = a.distance_m(&b);
        assert!((d - 22_239.0).abs() < 10.0, "{d}");
        let n1 = Coordinates::new(89.9, 0.0).unwrap();
        let n2 = Coordinates::new(89.9, 180.0).unwrap();
        let d = n1.distance_m(&n2);
        assert!((d - 22_239.0).abs() < 10.0, "{d}");
        let seoul = Coordinates::new(37.5665, 126.978).unwrap();
        let busan = Coordinates::new(35.1796, 129.0756).unwrap();
        let d = seoul.distance_m(&busan);
        assert!((d - 325_000.0).abs() < 2_000.0, "{d}");
    }

    #[test]
    fn refused() {
        assert!(Coordinates::new(90.1, 0.0).is_err());
        assert!(Coordinates::new(0.0, -180.1).is_err());
        assert!(Coordinates::new(f64::NAN, 0.0).is_err());
        assert!(Region::circle(0.0, 0.0, -1.0).is_err());
        assert!(Region::circle(0.0, 0.0, f64::INFINITY).is_err());
        assert!(CountryCode::parse("KOR").is_err());
        assert!(CountryCode::parse("K1").is_err());
        assert_eq!(CountryCode::parse("kr").unwrap().as_str(), "KR");
    }
}
