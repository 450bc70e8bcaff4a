//! The statements, written once for both engines: [`SqlStore`] is generic over the sqlx
//! database, and `sqlite.rs`/`postgres.rs` instantiate it. Every statement uses only the
//! dialect both accept (see the `store` module doc). Statements that must report whether
//! they changed a row use `RETURNING`, since sqlx's generic query result has no row count.

use std::str::FromStr;

use relay_proto::{EdgeId, MeetingId, RegionId, TreeEpoch};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use super::{
    Beat, Created, DrainRequest, EdgeLoad, EdgeRecord, EdgeStatus, Ending, Engine, Heartbeat,
    ListQuery, MAX_CREATE_ATTEMPTS, MAX_EDGES, MAX_PAGE, MAX_PLACEMENTS_PER_EDGE, MAX_TREE_LINKS,
    Meeting, MeetingCounts, NewMeeting, Page, PlacementRecord, Presence, StateFilter, Store,
    StoreError, StoreFuture, TreeRecord,
};

/// A pool of one engine, and the statements.
#[derive(Debug)]
pub struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
}

const MEETING: &str = "SELECT id, max_participants, metadata, created_at_ms, ended_at_ms \
                       FROM meetings WHERE id = $1";

/// Insert, or start an ended meeting again; no row when an active one exists.
const CREATE_MEETING: &str = "\
    INSERT INTO meetings (id, max_participants, metadata, created_at_ms, ended_at_ms) \
    VALUES ($1, $2, $3, $4, NULL) \
    ON CONFLICT (id) DO UPDATE SET max_participants = excluded.max_participants, \
        metadata = excluded.metadata, created_at_ms = excluded.created_at_ms, \
        ended_at_ms = NULL \
    WHERE meetings.ended_at_ms IS NOT NULL \
    RETURNING id, max_participants, metadata, created_at_ms, ended_at_ms";

/// Pages: `$1` is the cursor ('' sorts before every name), `$2` the limit.
const LIST_ACTIVE: &str = "SELECT id, max_participants, metadata, created_at_ms, ended_at_ms \
    FROM meetings WHERE id > $1 AND ended_at_ms IS NULL ORDER BY id LIMIT $2";
const LIST_ENDED: &str = "SELECT id, max_participants, metadata, created_at_ms, ended_at_ms \
    FROM meetings WHERE id > $1 AND ended_at_ms IS NOT NULL ORDER BY id LIMIT $2";
const LIST_ALL: &str = "SELECT id, max_participants, metadata, created_at_ms, ended_at_ms \
    FROM meetings WHERE id > $1 ORDER BY id LIMIT $2";

const END_MEETING: &str = "UPDATE meetings SET ended_at_ms = $2 \
    WHERE id = $1 AND ended_at_ms IS NULL \
    RETURNING id, max_participants, metadata, created_at_ms, ended_at_ms";

const COUNT_MEETINGS: &str = "SELECT \
    COALESCE(SUM(CASE WHEN ended_at_ms IS NULL THEN 1 ELSE 0 END), 0) AS active, \
    COALESCE(SUM(CASE WHEN ended_at_ms IS NULL THEN 0 ELSE 1 END), 0) AS ended \
    FROM meetings";

const EDGE: &str = "SELECT id, region, lat, lon, relay_addr, http_url, capacity, status, \
    last_heartbeat_ms, participants, meetings, cpu_permille FROM edges WHERE id = $1";
const EDGES: &str = "SELECT id, region, lat, lon, relay_addr, http_url, capacity, status, \
    last_heartbeat_ms, participants, meetings, cpu_permille FROM edges ORDER BY id LIMIT $1";

const UPSERT_EDGE: &str = "\
    INSERT INTO edges (id, region, lat, lon, relay_addr, http_url, capacity, status, \
        last_heartbeat_ms, participants, meetings, cpu_permille) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
    ON CONFLICT (id) DO UPDATE SET region = excluded.region, lat = excluded.lat, \
        lon = excluded.lon, relay_addr = excluded.relay_addr, http_url = excluded.http_url, \
        capacity = excluded.capacity, status = excluded.status, \
        last_heartbeat_ms = excluded.last_heartbeat_ms, participants = excluded.participants, \
        meetings = excluded.meetings, cpu_permille = excluded.cpu_permille";

/// A `draining` beat acknowledges a pending drain and clears it; it survives the others (an
/// edge that died before it heard of it is drained when it comes back).
const HEARTBEAT: &str = "UPDATE edges SET status = $2, last_heartbeat_ms = $3, \
    participants = $4, meetings = $5, cpu_permille = $6, \
    drain_requested_at_ms = CASE WHEN $2 = 'draining' THEN NULL ELSE drain_requested_at_ms END \
    WHERE id = $1 RETURNING id, drain_requested_at_ms";

/// Only a live edge that does not drain yet gets a pending request; no row otherwise.
const REQUEST_DRAIN: &str = "UPDATE edges \
    SET drain_requested_at_ms = COALESCE(drain_requested_at_ms, $2) \
    WHERE id = $1 AND status = 'alive' RETURNING id";
const EDGE_DRAIN: &str = "SELECT id, region, lat, lon, relay_addr, http_url, capacity, status, \
    last_heartbeat_ms, participants, meetings, cpu_permille, drain_requested_at_ms \
    FROM edges WHERE id = $1";

const UPSERT_PRESENCE: &str = "\
    INSERT INTO presence (meeting, edge, participants, publishers, updated_at_ms) \
    VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (meeting, edge) DO UPDATE SET participants = excluded.participants, \
        publishers = excluded.publishers, updated_at_ms = excluded.updated_at_ms";
const DELETE_PRESENCE: &str = "DELETE FROM presence WHERE meeting = $1 AND edge = $2";
const PRESENCE: &str = "SELECT meeting, edge, participants, publishers, updated_at_ms \
    FROM presence WHERE meeting = $1 ORDER BY edge LIMIT $2";

/// Only a newer epoch replaces the stored tree; a row comes back when it did.
const PUT_TREE: &str = "\
    INSERT INTO trees (meeting, epoch, links, updated_at_ms) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (meeting) DO UPDATE SET epoch = excluded.epoch, links = excluded.links, \
        updated_at_ms = excluded.updated_at_ms \
    WHERE trees.epoch < excluded.epoch \
    RETURNING epoch";
const TREE: &str = "SELECT meeting, epoch, links, updated_at_ms FROM trees WHERE meeting = $1";

const UPSERT_PLACEMENT: &str = "\
    INSERT INTO placements (meeting, region, edge, placed_at_ms) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (meeting, region) DO UPDATE SET edge = excluded.edge, \
        placed_at_ms = excluded.placed_at_ms";
const PLACEMENTS: &str = "SELECT meeting, region, edge, placed_at_ms FROM placements \
    WHERE meeting = $1 ORDER BY region LIMIT $2";
const PLACEMENTS_ON: &str = "SELECT meeting, region, edge, placed_at_ms FROM placements \
    WHERE edge = $1 ORDER BY meeting, region LIMIT $2";
const DELETE_PLACEMENT: &str = "DELETE FROM placements WHERE meeting = $1 AND region = $2 \
    RETURNING edge";
const DELETE_PLACEMENTS: &str = "DELETE FROM placements WHERE meeting = $1";

// The bounds say: this engine runs statements on pools and transactions, binds `$n`
// arguments, and stores i64, f64 and text. Both SQLite and PostgreSQL meet them.
impl<DB> Store for SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    &'static str: ColumnIndex<DB::Row>,
{
    fn engine(&self) -> Engine {
        if DB::NAME == <sqlx::Postgres as Database>::NAME {
            Engine::Postgres
        } else {
            Engine::Sqlite
        }
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query::<DB>("SELECT 1").fetch_one(&self.pool).await?;
            Ok(())
        })
    }

    fn create_meeting<'a>(&'a self, now_ms: i64, new: &'a NewMeeting) -> StoreFuture<'a, Created> {
        Box::pin(async move {
            for _ in 0..MAX_CREATE_ATTEMPTS {
                let row = sqlx::query::<DB>(CREATE_MEETING)
                    .bind(new.id.as_str())
                    .bind(i64::from(new.max_participants))
                    .bind(new.metadata.as_str())
                    .bind(now_ms)
                    .fetch_optional(&self.pool)
                    .await?;
                if let Some(row) = row {
                    return Ok(Created::New(meeting_of(&row)?));
                }
                // An active meeting of that name exists, unless it ended in between: then retry.
                match self.meeting(&new.id).await? {
                    Some(m) if m.is_active() => return Ok(Created::Existing(m)),
                    _ => continue,
                }
            }
            Err(StoreError::Contended(format!(
                "meeting {} kept ending while being created",
                new.id
            )))
        })
    }

    fn meeting<'a>(&'a self, id: &'a MeetingId) -> StoreFuture<'a, Option<Meeting>> {
        Box::pin(async move {
            let row = sqlx::query::<DB>(MEETING)
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(meeting_of).transpose()
        })
    }

    fn list_meetings<'a>(&'a self, query: &'a ListQuery) -> StoreFuture<'a, Page> {
        Box::pin(async move {
            let limit = query.limit.clamp(1, MAX_PAGE);
            let sql = match query.state {
                StateFilter::Active => LIST_ACTIVE,
                StateFilter::Ended => LIST_ENDED,
                StateFilter::All => LIST_ALL,
            };
            let after = query.after.as_ref().map_or("", MeetingId::as_str);
            // One more than asked for tells whether another page follows.
            let rows = sqlx::query::<DB>(sql)
                .bind(after)
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.pool)
                .await?;
            let mut meetings = rows.iter().map(meeting_of).collect::<Result<Vec<_>, _>>()?;
            let next_cursor = if meetings.len() > limit as usize {
                meetings.truncate(limit as usize);
                meetings.last().map(|m| m.id.clone())
            } else {
                None
            };
            Ok(Page {
                meetings,
                next_cursor,
            })
        })
    }

    fn end_meeting<'a>(&'a self, now_ms: i64, id: &'a MeetingId) -> StoreFuture<'a, Ending> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query::<DB>(END_MEETING)
                .bind(id.as_str())
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok(match self.meeting(id).await? {
                    Some(m) => Ending::AlreadyEnded(m),
                    None => Ending::NotFound,
                });
            };
            let meeting = meeting_of(&row)?;
            sqlx::query::<DB>(DELETE_PLACEMENTS)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Ending::Ended(meeting))
        })
    }

    fn count_meetings(&self) -> StoreFuture<'_, MeetingCounts> {
        Box::pin(async move {
            let row = sqlx::query::<DB>(COUNT_MEETINGS)
                .fetch_one(&self.pool)
                .await?;
            Ok(MeetingCounts {
                active: unsigned(row.try_get("active")?, "meeting count")?,
                ended: unsigned(row.try_get("ended")?, "meeting count")?,
            })
        })
    }

    fn upsert_edge<'a>(&'a self, e: &'a EdgeRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query::<DB>(UPSERT_EDGE)
                .bind(e.id.as_str())
                .bind(e.region.as_str())
                .bind(e.lat)
                .bind(e.lon)
                .bind(e.relay_addr.to_string())
                .bind(e.http_url.as_str())
                .bind(i64::from(e.capacity))
                .bind(e.status.as_str())
                .bind(e.last_heartbeat_ms)
                .bind(i64::from(e.load.participants))
                .bind(i64::from(e.load.meetings))
                .bind(i64::from(e.load.cpu_permille))
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn record_heartbeat<'a>(&'a self, beat: &'a Heartbeat) -> StoreFuture<'a, bool> {
        Box::pin(async move { Ok(self.heartbeat(beat).await?.is_some()) })
    }

    fn heartbeat<'a>(&'a self, beat: &'a Heartbeat) -> StoreFuture<'a, Option<Beat>> {
        Box::pin(async move {
            let row = sqlx::query::<DB>(HEARTBEAT)
                .bind(beat.edge.as_str())
                .bind(beat.status.as_str())
                .bind(beat.at_ms)
                .bind(i64::from(beat.load.participants))
                .bind(i64::from(beat.load.meetings))
                .bind(i64::from(beat.load.cpu_permille))
                .fetch_optional(&self.pool)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let pending: Option<i64> = row.try_get("drain_requested_at_ms")?;
            Ok(Some(Beat {
                drain_pending: pending.is_some(),
            }))
        })
    }

    fn request_drain<'a>(&'a self, now_ms: i64, id: &'a EdgeId) -> StoreFuture<'a, DrainRequest> {
        Box::pin(async move {
            sqlx::query::<DB>(REQUEST_DRAIN)
                .bind(id.as_str())
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
            // Read back either way: the answer depends on the status, whoever set it.
            Ok(match self.edge_drain(id).await? {
                None => DrainRequest::NotFound,
                Some((edge, _)) if edge.status == EdgeStatus::Dead => DrainRequest::Dead(edge),
                Some((edge, pending)) => DrainRequest::Requested(edge, pending),
            })
        })
    }

    fn edge_drain<'a>(
        &'a self,
        id: &'a EdgeId,
    ) -> StoreFuture<'a, Option<(EdgeRecord, Option<i64>)>> {
        Box::pin(async move {
            let row = sqlx::query::<DB>(EDGE_DRAIN)
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
            let Some(row) = row else { return Ok(None) };
            Ok(Some((
                edge_of(&row)?,
                row.try_get("drain_requested_at_ms")?,
            )))
        })
    }

    fn edge<'a>(&'a self, id: &'a EdgeId) -> StoreFuture<'a, Option<EdgeRecord>> {
        Box::pin(async move {
            let row = sqlx::query::<DB>(EDGE)
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(edge_of).transpose()
        })
    }

    fn edges(&self) -> StoreFuture<'_, Vec<EdgeRecord>> {
        Box::pin(async move {
            let rows = sqlx::query::<DB>(EDGES)
                .bind(i64::from(MAX_EDGES))
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(edge_of).collect()
        })
    }

    fn set_presence<'a>(&'a self, p: &'a Presence) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let query = if p.participants == 0 {
                sqlx::query::<DB>(DELETE_PRESENCE)
                    .bind(p.meeting.as_str())
                    .bind(p.edge.as_str())
            } else {
                sqlx::query::<DB>(UPSERT_PRESENCE)
                    .bind(p.meeting.as_str())
                    .bind(p.edge.as_str())
                    .bind(i64::from(p.participants))
                    .bind(i64::from(p.publishers))
                    .bind(p.updated_at_ms)
            };
            query.execute(&self.pool).await?;
            Ok(())
        })
    }

    fn presence<'a>(&'a self, meeting: &'a MeetingId) -> StoreFuture<'a, Vec<Presence>> {
        Box::pin(async move {
            let rows = sqlx::query::<DB>(PRESENCE)
                .bind(meeting.as_str())
                .bind(i64::from(MAX_EDGES))
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(Presence {
                        meeting: parsed(row, "meeting")?,
                        edge: parsed(row, "edge")?,
                        participants: small(row.try_get("participants")?, "participants")?,
                        publishers: small(row.try_get("publishers")?, "publishers")?,
                        updated_at_ms: row.try_get("updated_at_ms")?,
                    })
                })
                .collect()
        })
    }

    fn put_tree<'a>(&'a self, tree: &'a TreeRecord) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            if tree.links.len() > MAX_TREE_LINKS {
                return Err(StoreError::Unstorable(format!(
                    "a tree of {} links (the limit is {MAX_TREE_LINKS})",
                    tree.links.len()
                )));
            }
            let epoch = i64::try_from(tree.epoch.0)
                .map_err(|_| StoreError::Unstorable(format!("{} is past i64::MAX", tree.epoch)))?;
            let links = serde_json::to_string(&tree.links)
                .map_err(|e| StoreError::Unstorable(format!("tree links: {e}")))?;
            let row = sqlx::query::<DB>(PUT_TREE)
                .bind(tree.meeting.as_str())
                .bind(epoch)
                .bind(links)
                .bind(tree.updated_at_ms)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.is_some())
        })
    }

    fn tree<'a>(&'a self, meeting: &'a MeetingId) -> StoreFuture<'a, Option<TreeRecord>> {
        Box::pin(async move {
            let row = sqlx::query::<DB>(TREE)
                .bind(meeting.as_str())
                .fetch_optional(&self.pool)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let links: String = row.try_get("links")?;
            let links: Vec<(EdgeId, EdgeId)> = serde_json::from_str(&links)
                .map_err(|e| StoreError::Corrupt(format!("tree links of {meeting}: {e}")))?;
            if links.len() > MAX_TREE_LINKS {
                return Err(StoreError::Corrupt(format!(
                    "tree of {meeting} has {} links",
                    links.len()
                )));
            }
            Ok(Some(TreeRecord {
                meeting: parsed(&row, "meeting")?,
                epoch: TreeEpoch(unsigned(row.try_get("epoch")?, "tree epoch")?),
                links,
                updated_at_ms: row.try_get("updated_at_ms")?,
            }))
        })
    }

    fn set_placement<'a>(&'a self, p: &'a PlacementRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query::<DB>(UPSERT_PLACEMENT)
                .bind(p.meeting.as_str())
                .bind(p.region.as_str())
                .bind(p.edge.as_str())
                .bind(p.placed_at_ms)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn placements<'a>(&'a self, meeting: &'a MeetingId) -> StoreFuture<'a, Vec<PlacementRecord>> {
        Box::pin(async move {
            let rows = sqlx::query::<DB>(PLACEMENTS)
                .bind(meeting.as_str())
                .bind(i64::from(MAX_EDGES))
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(placement_of).collect()
        })
    }

    fn placements_on<'a>(&'a self, edge: &'a EdgeId) -> StoreFuture<'a, Vec<PlacementRecord>> {
        Box::pin(async move {
            let rows = sqlx::query::<DB>(PLACEMENTS_ON)
                .bind(edge.as_str())
                .bind(i64::from(MAX_PLACEMENTS_PER_EDGE))
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(placement_of).collect()
        })
    }

    fn delete_placement<'a>(
        &'a self,
        meeting: &'a MeetingId,
        region: &'a RegionId,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let row = sqlx::query::<DB>(DELETE_PLACEMENT)
                .bind(meeting.as_str())
                .bind(region.as_str())
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.is_some())
        })
    }
}

fn meeting_of<R>(row: &R) -> Result<Meeting, StoreError>
where
    R: Row,
    for<'q> i64: Decode<'q, R::Database> + Type<R::Database>,
    for<'q> String: Decode<'q, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    Ok(Meeting {
        id: parsed(row, "id")?,
        max_participants: small(row.try_get("max_participants")?, "max_participants")?,
        metadata: row.try_get("metadata")?,
        created_at_ms: row.try_get("created_at_ms")?,
        ended_at_ms: row.try_get("ended_at_ms")?,
    })
}

fn edge_of<R>(row: &R) -> Result<EdgeRecord, StoreError>
where
    R: Row,
    for<'q> i64: Decode<'q, R::Database> + Type<R::Database>,
    for<'q> f64: Decode<'q, R::Database> + Type<R::Database>,
    for<'q> String: Decode<'q, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    let status: String = row.try_get("status")?;
    Ok(EdgeRecord {
        id: parsed(row, "id")?,
        region: parsed(row, "region")?,
        lat: row.try_get("lat")?,
        lon: row.try_get("lon")?,
        relay_addr: parsed(row, "relay_addr")?,
        http_url: row.try_get("http_url")?,
        capacity: small(row.try_get("capacity")?, "edge capacity")?,
        status: EdgeStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("edge status {status:?}")))?,
        last_heartbeat_ms: row.try_get("last_heartbeat_ms")?,
        load: EdgeLoad {
            participants: small(row.try_get("participants")?, "edge participants")?,
            meetings: small(row.try_get("meetings")?, "edge meetings")?,
            cpu_permille: small(row.try_get("cpu_permille")?, "edge cpu_permille")?,
        },
    })
}

fn placement_of<R>(row: &R) -> Result<PlacementRecord, StoreError>
where
    R: Row,
    for<'q> i64: Decode<'q, R::Database> + Type<R::Database>,
    for<'q> String: Decode<'q, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    Ok(PlacementRecord {
        meeting: parsed(row, "meeting")?,
        region: parsed(row, "region")?,
        edge: parsed(row, "edge")?,
        placed_at_ms: row.try_get("placed_at_ms")?,
    })
}

/// A stored text parsed into a typed value (an id, an address).
fn parsed<R, T>(row: &R, column: &'static str) -> Result<T, StoreError>
where
    R: Row,
    for<'q> String: Decode<'q, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text: String = row.try_get(column)?;
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("column {column} holds {text:?}: {e}")))
}

/// A stored BIGINT that must fit a `u32`.
fn small(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} is not a u32")))
}

/// A stored BIGINT that must not be negative.
fn unsigned(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} is negative")))
}
