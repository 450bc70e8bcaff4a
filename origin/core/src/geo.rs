//! Coordinates and the latency they imply.
//!
//! An edge registers its location; until two edges have measured their round-trip time, the
//! registry estimates it from the great-circle distance. The estimate is deliberately crude
//! (a route factor over fibre speed plus a fixed base) and only has to order edges sensibly:
//! measured samples replace it within seconds of two edges meeting.

/// Mean Earth radius (IUGG), in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Light in fibre covers about 200 km per millisecond (refractive index ≈ 1.5).
const FIBRE_KM_PER_MS: f64 = 200.0;

/// Real routes are longer than great circles; 1.5 is a common rule of thumb for
/// terrestrial backbones.
const ROUTE_FACTOR: f64 = 1.5;

/// Fixed cost of any round trip: serialisation, switching, the edges' own stacks.
pub const BASE_RTT_US: u32 = 500;

/// Why a coordinate pair is not a place on Earth.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum GeoError {
    #[error("latitude {0} is not a finite number in [-90, 90]")]
    Latitude(f64),
    #[error("longitude {0} is not a finite number in [-180, 180]")]
    Longitude(f64),
}

/// A validated point: latitude and longitude in degrees (WGS 84 is close enough).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    lat: f64,
    lon: f64,
}

impl GeoPoint {
    /// Checks that both numbers are finite and in range.
    pub fn new(lat: f64, lon: f64) -> Result<Self, GeoError> {
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            return Err(GeoError::Latitude(lat));
        }
        if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
            return Err(GeoError::Longitude(lon));
        }
        Ok(Self { lat, lon })
    }

    /// Latitude in degrees, north positive.
    pub fn lat(&self) -> f64 {
        self.lat
    }

    /// Longitude in degrees, east positive.
    pub fn lon(&self) -> f64 {
        self.lon
    }
}

/// Great-circle distance by the haversine formula, in kilometres.
pub fn distance_km(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    // `min` guards asin against rounding just above 1 for antipodal points.
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// Estimated round-trip time between two places, in microseconds:
/// `2 × distance × ROUTE_FACTOR / FIBRE_KM_PER_MS + BASE_RTT_US`, i.e. 15 µs per km plus
/// 0.5 ms (London–New York, 5,570 km: about 84 ms; a measured path is typically 70–80 ms).
pub fn estimated_rtt_us(a: GeoPoint, b: GeoPoint) -> u32 {
    let one_way_ms = distance_km(a, b) * ROUTE_FACTOR / FIBRE_KM_PER_MS;
    // At most half the circumference: ~300,000 µs, far inside u32.
    (2.0 * one_way_ms * 1000.0).round() as u32 + BASE_RTT_US
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    #[test]
    fn rejects_impossible_coordinates() {
        assert_eq!(GeoPoint::new(91.0, 0.0), Err(GeoError::Latitude(91.0)));
        assert_eq!(GeoPoint::new(0.0, -180.5), Err(GeoError::Longitude(-180.5)));
        assert!(GeoPoint::new(f64::NAN, 0.0).is_err());
        assert!(GeoPoint::new(0.0, f64::INFINITY).is_err());
        assert!(GeoPoint::new(-90.0, 180.0).is_ok());
    }

    #[test]
    fn known_distances() {
        let london = p(51.5074, -0.1278);
        let new_york = p(40.7128, -74.0060);
        let d = distance_km(london, new_york);
        assert!((5560.0..5580.0).contains(&d), "{d}");
        assert_eq!(distance_km(london, london), 0.0);
        // Antipodes: half the circumference, no NaN.
        let half = distance_km(p(0.0, 0.0), p(0.0, 180.0));
        assert!((half - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
    }

    #[test]
    fn estimate_is_symmetric_and_grows_with_distance() {
        let a = p(48.85, 2.35);
        let b = p(52.52, 13.40);
        let c = p(35.68, 139.69);
        assert_eq!(estimated_rtt_us(a, b), estimated_rtt_us(b, a));
        assert_eq!(estimated_rtt_us(a, a), BASE_RTT_US);
        assert!(estimated_rtt_us(a, b) < estimated_rtt_us(a, c));
        let ny = estimated_rtt_us(p(51.5074, -0.1278), p(40.7128, -74.0060));
        assert!((80_000..90_000).contains(&ny), "{ny}");
    }
}
