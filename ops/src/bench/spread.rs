//! The median and range of repeated runs: `arbor bench --runs N` reports each figure as its
//! median over the runs, with the smallest and largest beside it.

use std::fmt::{Display, Write as _};

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

/// `a / b`, each with its range.
pub fn pair(a: Option<Spread>, b: Option<Spread>, decimals: usize) -> String {
    format!("{} / {}", show(a, decimals), show(b, decimals))
}

/// A scenario's text report: its title, then a `label  value` row per figure, the labels
/// padded to one column.
#[derive(Debug)]
pub struct Table {
    text: String,
    label_width: usize,
}

impl Table {
    pub fn new(title: &str, label_width: usize) -> Table {
        Table {
            text: format!("{title}\n"),
            label_width,
        }
    }

    pub fn row(&mut self, label: &str, value: impl Display) {
        let _ = writeln!(self.text, "  {label:<w$} {value}", w = self.label_width);
    }

    pub fn finish(self) -> String {
        self.text
    }
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
        assert_eq!(pair(Spread::of([1.0]), None, 0), "1 / -");
    }

    #[test]
    fn tables_align_their_labels() {
        let mut t = Table::new("title", 6);
        t.row("loss", "0.1");
        t.row("cores", 2);
        assert_eq!(t.finish(), "title\n  loss   0.1\n  cores  2\n");
    }
}
