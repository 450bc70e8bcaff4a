//! The median and range of repeated runs: `arbor bench --runs N` reports each figure as its
//! median over the runs, with the smallest and largest beside it.

use serde::Serialize;

/// Median, min and max of a figure over runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Spread {
    /// The spread of the finite values, or `None` if there are none. An even count's median
    /// is the mean of the middle two.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            runs: n,
        })
    }

    /// `median` alone for one run, `median (min–max)` for more, with `decimals`.
    pub fn show(&self, decimals: usize) -> String {
        if self.runs == 1 {
            format!("{:.*}", decimals, self.median)
        } else {
            format!(
                "{:.*} ({:.*}–{:.*})",
                decimals, self.median, decimals, self.min, decimals, self.max
            )
        }
    }
}

/// [`Spread::show`], or `-` for nothing measured.
pub fn show(s: Option<Spread>, decimals: usize) -> String {
    s.map_or_else(|| "-".to_owned(), |s| s.show(decimals))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
        assert_eq!(s.show(1), "2.0 (1.0–3.0)");
        assert_eq!(Spread::of([4.0, 1.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of([5.0]).unwrap().show(0), "5");
        assert_eq!(Spread::of([f64::NAN]), None);
        assert_eq!(show(None, 2), "-");
    }
}
