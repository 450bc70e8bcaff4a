//! The origin's durable state, behind one [`Store`] trait with two engines: SQLite (the
//! embedded default, one file) and PostgreSQL (shared by an active and a standby origin).
//!
//! ```no_run
//! # async fn demo() -> Result<(), arbor_origin::store::StoreError> {
//! use arbor_origin::store::{self, NewMeeting};
//! let store = store::open("sqlite://origin.db", 4).await?; // connects and migrates
//! let meeting = relay_proto::MeetingId::new("standup-42").unwrap();
//! let now_ms = 1_767_225_600_000; // the caller reads the clock, the store never does
//! store.create_meeting(now_ms, &NewMeeting::new(meeting.clone())).await?;
//! assert!(store.meeting(&meeting).await?.is_some());
//! # Ok(()) }
//! ```
//!
//! **Why an object-safe trait.** The engine is picked at run time from a URL, so the HTTP
//! state holds an `Arc<dyn Store>`: one router type, handlers compiled once, and tests can
//! hand in any store. The price is one boxed future per call ([`StoreFuture`]), nothing next
//! to a database round trip.
//!
//! **One SQL dialect.** Both engines run the same statements (`sql.rs`, generic over the
//! sqlx engine) and the same migrations (`origin/migrations/*.sql`): `BIGINT`, `DOUBLE
//! PRECISION` and `TEXT` columns, `$n` parameters, `INSERT … ON CONFLICT … DO UPDATE … WHERE`
//! and `RETURNING`, all of which SQLite ≥ 3.35 and PostgreSQL ≥ 9.5 accept. Times are unix
//! milliseconds passed in by the caller; JSON (tree links) is `TEXT`. `sqlite.rs` and
//! `postgres.rs` hold only what differs: connecting, pool sizing and migration locking.
//!
//! **What is stored.** Meetings (created through the API); edges (as the registry last saw
//! them, plus an operator's drain not yet delivered to the edge); per (meeting, edge) participant counts reported by edges (no per-participant rows);
//! each meeting's tree (epoch and links); placements (meeting, region → edge). Presence,
//! trees and placements do not reference the meetings table: apps may mint tokens with any
//! LiveKit SDK and join edges for meetings the API never created.

mod postgres;
mod sql;
mod sqlite;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use relay_proto::{EdgeId, MeetingId, RegionId, TreeEpoch};
use serde::Serialize;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Most meetings one [`Store::list_meetings`] page returns.
pub const MAX_PAGE: u32 = 100;
/// Most edges [`Store::edges`] returns (and the most a deployment may register).
pub const MAX_EDGES: u32 = 10_000;
/// Most links a stored tree may have (a tree over [`MAX_EDGES`] edges has fewer).
pub const MAX_TREE_LINKS: usize = MAX_EDGES as usize;
/// Longest meeting metadata accepted, in bytes.
pub const MAX_METADATA_LEN: usize = 4096;
/// How often [`Store::create_meeting`] retries when a concurrent end races it.
const MAX_CREATE_ATTEMPTS: usize = 3;

/// A store call in flight.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Everything the origin keeps across restarts. See the module doc for the model.
///
/// Every method is one statement or one transaction, safe to call concurrently from many
/// tasks and (on PostgreSQL) from several origin processes.
pub trait Store: Send + Sync + fmt::Debug {
    /// Which engine this is.
    fn engine(&self) -> Engine;

    /// Checks that the database answers (for `/readyz`).
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Creates `new`, idempotently: an active meeting of that name is returned unchanged as
    /// [`Created::Existing`]; an ended one is started again with the new settings (its name
    /// is free again) as [`Created::New`].
    fn create_meeting<'a>(&'a self, now_ms: i64, new: &'a NewMeeting) -> StoreFuture<'a, Created>;

    /// The meeting named `id`, active or ended.
    fn meeting<'a>(&'a self, id: &'a MeetingId) -> StoreFuture<'a, Option<Meeting>>;

    /// One page of meetings in name order (the database's collation), after the cursor.
    fn list_meetings<'a>(&'a self, query: &'a ListQuery) -> StoreFuture<'a, Page>;

    /// Ends a meeting and forgets its placements. Its tree row stays, so epochs keep
    /// increasing if the name is started again.
    fn end_meeting<'a>(&'a self, now_ms: i64, id: &'a MeetingId) -> StoreFuture<'a, Ending>;

    /// How many meetings are active and ended (for `/metrics`).
    fn count_meetings(&self) -> StoreFuture<'_, MeetingCounts>;

    /// Inserts or replaces an edge's registration and state.
    fn upsert_edge<'a>(&'a self, edge: &'a EdgeRecord) -> StoreFuture<'a, ()>;

    /// Updates a registered edge's status, heartbeat time and load. `false` if the edge is
    /// not registered.
    fn record_heartbeat<'a>(&'a self, beat: &'a Heartbeat) -> StoreFuture<'a, bool>;

    /// [`Store::record_heartbeat`], and the drain bookkeeping that goes with it: a beat that
    /// says `Draining` acknowledges a pending operator drain (clears it); other beats keep
    /// it. `None` if the edge is not registered.
    fn heartbeat<'a>(&'a self, beat: &'a Heartbeat) -> StoreFuture<'a, Option<Beat>>;

    /// Records an operator's drain of edge `id`, to be delivered over its control link on its
    /// next heartbeat. Idempotent: a pending request keeps its first time.
    fn request_drain<'a>(&'a self, now_ms: i64, id: &'a EdgeId) -> StoreFuture<'a, DrainRequest>;

    /// One edge and, if an operator's drain of it is pending, when it was requested.
    fn edge_drain<'a>(
        &'a self,
        id: &'a EdgeId,
    ) -> StoreFuture<'a, Option<(EdgeRecord, Option<i64>)>>;

    /// One edge.
    fn edge<'a>(&'a self, id: &'a EdgeId) -> StoreFuture<'a, Option<EdgeRecord>>;

    /// Every edge (at most [`MAX_EDGES`]), by id.
    fn edges(&self) -> StoreFuture<'_, Vec<EdgeRecord>>;

    /// Records an edge's report of a meeting's participants there. A report with no
    /// participants removes the row, so rows are the edges that host the meeting.
    fn set_presence<'a>(&'a self, presence: &'a Presence) -> StoreFuture<'a, ()>;

    /// The edges hosting `meeting` with their counts (at most [`MAX_EDGES`]), by edge id.
    fn presence<'a>(&'a self, meeting: &'a MeetingId) -> StoreFuture<'a, Vec<Presence>>;

    /// Stores `tree` if its epoch is newer than the stored one; `true` if it was stored.
    fn put_tree<'a>(&'a self, tree: &'a TreeRecord) -> StoreFuture<'a, bool>;

    /// The newest tree of `meeting`.
    fn tree<'a>(&'a self, meeting: &'a MeetingId) -> StoreFuture<'a, Option<TreeRecord>>;

    /// Records where `meeting` is placed in a region (replacing any earlier choice).
    fn set_placement<'a>(&'a self, placement: &'a PlacementRecord) -> StoreFuture<'a, ()>;

    /// Where `meeting` is placed, one row per region, by region.
    fn placements<'a>(&'a self, meeting: &'a MeetingId) -> StoreFuture<'a, Vec<PlacementRecord>>;

    /// The placements on `edge` (at most [`MAX_PLACEMENTS_PER_EDGE`]), by meeting: what to
    /// move when it dies.
    fn placements_on<'a>(&'a self, edge: &'a EdgeId) -> StoreFuture<'a, Vec<PlacementRecord>>;

    /// Forgets `meeting`'s placement in `region`; `true` if there was one.
    fn delete_placement<'a>(
        &'a self,
        meeting: &'a MeetingId,
        region: &'a RegionId,
    ) -> StoreFuture<'a, bool>;
}

/// Most placements [`Store::placements_on`] returns for one edge.
pub const MAX_PLACEMENTS_PER_EDGE: u32 = 100_000;

/// Opens the store a URL names, `sqlite:…` or `postgres://…`, and runs the migrations.
/// `max_connections` bounds the pool.
pub async fn open(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    match Engine::of_url(url) {
        Some(Engine::Sqlite) => Ok(Arc::new(SqliteStore::open(url, max_connections).await?)),
        Some(Engine::Postgres) => Ok(Arc::new(PgStore::open(url, max_connections).await?)),
        None => Err(StoreError::Url(format!(
            "{:?} is neither sqlite:… nor postgres://…",
            redact_url(url)
        ))),
    }
}

/// A database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// The engine a store URL names: `sqlite:` or `postgres://`/`postgresql://`.
    pub fn of_url(url: &str) -> Option<Engine> {
        if url.starts_with("sqlite:") {
            Some(Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Engine::Postgres)
        } else {
            None
        }
    }
}

/// `url` with any password (`user:password@`, `?password=`) replaced by `***`, for messages
/// and logs.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split(':').next().unwrap_or_default();
                    let hidden = if userinfo.contains(':') { ":***" } else { "" };
                    format!("{scheme}://{user}{hidden}@{host}{path}")
                }
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                    format!("{key}=***")
                }
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("bad store URL: {0}")]
    Url(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrating the database schema failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row that does not decode into our types: written by something else, or a bug.
    #[error("the database holds an invalid value: {0}")]
    Corrupt(String),
    /// Concurrent writers kept changing a row; retrying later is safe.
    #[error("gave up after {MAX_CREATE_ATTEMPTS} attempts: {0}")]
    Contended(String),
    /// A value this schema cannot hold (an epoch past `i64::MAX`, too many links).
    #[error("cannot store this value: {0}")]
    Unstorable(String),
}

/// A meeting to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMeeting {
    pub id: MeetingId,
    /// Participants allowed at once (edges enforce it).
    pub max_participants: u32,
    /// Opaque app data, at most [`MAX_METADATA_LEN`] bytes (checked by the API).
    pub metadata: String,
}

impl NewMeeting {
    /// A meeting with 100 participants and no metadata.
    pub fn new(id: MeetingId) -> Self {
        Self {
            id,
            max_participants: 100,
            metadata: String::new(),
        }
    }
}

/// A stored meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Meeting {
    /// Its name: the `video.room` of its tokens.
    #[serde(rename = "name")]
    pub id: MeetingId,
    pub max_participants: u32,
    pub metadata: String,
    pub created_at_ms: i64,
    /// When it ended; `None` while active.
    pub ended_at_ms: Option<i64>,
}

impl Meeting {
    /// Not ended.
    pub fn is_active(&self) -> bool {
        self.ended_at_ms.is_none()
    }
}

/// What [`Store::create_meeting`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new meeting (or an ended one started again).
    New(Meeting),
    /// An active meeting of that name already existed; it is unchanged.
    Existing(Meeting),
}

/// What [`Store::end_meeting`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// It was active and is now ended.
    Ended(Meeting),
    /// It had ended before.
    AlreadyEnded(Meeting),
    /// There is no such meeting.
    NotFound,
}

/// Which meetings to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StateFilter {
    #[default]
    Active,
    Ended,
    All,
}

/// One request for a page of meetings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub state: StateFilter,
    /// Start after this name (the previous page's [`Page::next_cursor`]).
    pub after: Option<MeetingId>,
    /// Page size, 1..=[`MAX_PAGE`] (clamped).
    pub limit: u32,
}

/// A page of meetings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub meetings: Vec<Meeting>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<MeetingId>,
}

/// Meetings by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeetingCounts {
    pub active: u64,
    pub ended: u64,
}

/// An edge's liveness as the registry judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeStatus {
    Alive,
    /// Alive, but takes no new meetings.
    Draining,
    /// Missed its heartbeats or closed its control link.
    Dead,
}

impl EdgeStatus {
    /// The stored (and JSON) form.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeStatus::Alive => "alive",
            EdgeStatus::Draining => "draining",
            EdgeStatus::Dead => "dead",
        }
    }

    fn parse(s: &str) -> Option<EdgeStatus> {
        [EdgeStatus::Alive, EdgeStatus::Draining, EdgeStatus::Dead]
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

/// An edge's load, from its last heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EdgeLoad {
    pub participants: u32,
    pub meetings: u32,
    /// CPU use, 0..=1000 per core-set.
    pub cpu_permille: u32,
}

/// An edge as the registry last saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeRecord {
    pub id: EdgeId,
    pub region: RegionId,
    /// Degrees, -90..=90.
    pub lat: f64,
    /// Degrees, -180..=180.
    pub lon: f64,
    /// Where peers reach its QUIC backbone endpoint.
    pub relay_addr: SocketAddr,
    /// Its HTTP base URL (signaling, WHIP/WHEP), without a trailing slash.
    pub http_url: String,
    /// Meetings it takes at most (placement's capacity unit).
    pub capacity: u32,
    pub status: EdgeStatus,
    pub last_heartbeat_ms: i64,
    pub load: EdgeLoad,
}

/// One heartbeat, for [`Store::record_heartbeat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub edge: EdgeId,
    pub at_ms: i64,
    pub status: EdgeStatus,
    pub load: EdgeLoad,
}

/// What the store says after a heartbeat ([`Store::heartbeat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    /// An operator's drain awaits delivery to the edge (it did not say `Draining`).
    pub drain_pending: bool,
}

/// What [`Store::request_drain`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum DrainRequest {
    /// Recorded (or already pending, or the edge already drains); the edge as stored, and
    /// when the pending request was made (`None` when the edge already drains).
    Requested(EdgeRecord, Option<i64>),
    /// The edge is dead: there is nothing to drain.
    Dead(EdgeRecord),
    NotFound,
}

/// An edge's report of one meeting's participants there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Presence {
    pub meeting: MeetingId,
    pub edge: EdgeId,
    pub participants: u32,
    /// Of `participants`, how many publish media.
    pub publishers: u32,
    pub updated_at_ms: i64,
}

/// A meeting's tree over edges: undirected links, versioned by epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeRecord {
    pub meeting: MeetingId,
    pub epoch: TreeEpoch,
    /// At most [`MAX_TREE_LINKS`].
    pub links: Vec<(EdgeId, EdgeId)>,
    pub updated_at_ms: i64,
}

/// Where a meeting's participants in one region go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlacementRecord {
    pub meeting: MeetingId,
    pub region: RegionId,
    pub edge: EdgeId,
    pub placed_at_ms: i64,
}

/// The embedded migrations, in order: `origin/migrations/NNNN_name.sql`. Both engines run
/// the same files; sqlx records them in `_sqlx_migrations`.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (
        2,
        "edge_drain",
        include_str!("../../migrations/0002_edge_drain.sql"),
    ),
];

/// [`MIGRATIONS`] as an sqlx migration source (no `migrate!` macro, no files at run time).
#[derive(Debug)]
pub(crate) struct Embedded;

impl<'s> sqlx::migrate::MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>>
                + Send
                + 's,
        >,
    > {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, name, sql)| {
                    sqlx::migrate::Migration::new(
                        *version,
                        (*name).into(),
                        sqlx::migrate::MigrationType::Simple,
                        (*sql).into(),
                        false,
                    )
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_by_url() {
        assert_eq!(Engine::of_url("sqlite://x.db"), Some(Engine::Sqlite));
        assert_eq!(Engine::of_url("sqlite::memory:"), Some(Engine::Sqlite));
        assert_eq!(Engine::of_url("postgres://u@h/db"), Some(Engine::Postgres));
        assert_eq!(Engine::of_url("postgresql://h/db"), Some(Engine::Postgres));
        assert_eq!(Engine::of_url("mysql://h/db"), None);
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://arbor:s3cret@db:5432/arbor?sslmode=require"),
            "postgres://arbor:***@db:5432/arbor?sslmode=require"
        );
        assert_eq!(redact_url("postgres://arbor@db/x"), "postgres://arbor@db/x");
        assert_eq!(redact_url("sqlite://origin.db"), "sqlite://origin.db");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(
            redact_url("postgres://db/x?user=a&password=s3cret&sslmode=require"),
            "postgres://db/x?user=a&password=***&sslmode=require"
        );
    }

    #[test]
    fn statuses_round_trip() {
        for s in [EdgeStatus::Alive, EdgeStatus::Draining, EdgeStatus::Dead] {
            assert_eq!(EdgeStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(EdgeStatus::parse("Alive"), None);
    }
}
