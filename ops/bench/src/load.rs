//! The load generator fleet behind `arbor load` and `arbor bench`: a [`LoadSpec`] is planned
//! into seats ([`plan`]), run against real edges ([`run()`]) and aggregated into a [`Report`].

pub mod plan;
pub mod report;
pub mod run;

pub use plan::{Camera, LoadSpec, PlanError, Seat, SeatRole, Target, plan};
pub use report::{EdgeReport, Outcome, Percentiles, Report, aggregate};
pub use run::{Auth, LoadError, Phase, Progress, Window, camera_of, measure, run, run_with};
