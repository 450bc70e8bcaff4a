//! The store conformance suite: the same checks against SQLite (a temp file) and PostgreSQL
//! (the server named by `ARBOR_TEST_POSTGRES_URL`; `ops/pg-test.sh` starts one). The
//! PostgreSQL tests fail, never skip, when the variable is missing.
//!
//! Each test gets a fresh database: a new SQLite file, or a new PostgreSQL database created
//! on the server for the test and dropped after it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use arbor_origin::store::{
    self, Beat, Created, DrainRequest, EdgeLoad, EdgeRecord, EdgeStatus, Ending, Engine, Heartbeat,
    ListQuery, MAX_TREE_LINKS, MeetingCounts, NewMeeting, PlacementRecord, Presence, StateFilter,
    Store, StoreError, TreeRecord,
};
use relay_proto::{EdgeId, MeetingId, RegionId, TreeEpoch};
use sqlx::Connection as _;

const T0: i64 = 1_800_000_000_000;

fn m(s: &str) -> MeetingId {
    MeetingId::new(s).unwrap()
}

fn e(s: &str) -> EdgeId {
    EdgeId::new(s).unwrap()
}

fn r(s: &str) -> RegionId {
    RegionId::new(s).unwrap()
}

/// A fresh, migrated store of one engine, and how to clean it up.
struct Fresh {
    store: Arc<dyn Store>,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Database { admin_url: String, name: String },
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(test: &str) -> String {
    format!(
        "arbor_{}_{}_{}",
        test,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn sqlite(test: &str) -> Fresh {
    let path = std::env::temp_dir().join(format!("{}.db", unique(test)));
    let url = format!("sqlite://{}", path.display());
    let store = store::open(&url, 4).await.unwrap();
    assert_eq!(store.engine(), Engine::Sqlite);
    Fresh {
        store,
        url,
        cleanup: Cleanup::File(path),
    }
}

async fn postgres(test: &str) -> Fresh {
    let admin_url = std::env::var("ARBOR_TEST_POSTGRES_URL").expect(
        "ARBOR_TEST_POSTGRES_URL must name a PostgreSQL server for the store tests; \
         `eval \"$(ops/pg-test.sh start)\"` starts a throwaway one (this test never skips)",
    );
    let name = unique(test);
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = with_database(&admin_url, &name);
    let store = store::open(&url, 4).await.unwrap();
    assert_eq!(store.engine(), Engine::Postgres);
    Fresh {
        store,
        url,
        cleanup: Cleanup::Database { admin_url, name },
    }
}

/// `url` with its database (path) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").unwrap() + 3;
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{}/{name}{query}", &base[..host_end])
}

impl Fresh {
    async fn done(self) {
        drop(self.store);
        match self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Database { admin_url, name } => {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
                sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
            }
        }
    }
}

fn edge(id: &str, region: &str) -> EdgeRecord {
    EdgeRecord {
        id: e(id),
        region: r(region),
        lat: 50.110_924,
        lon: -8.682_127,
        relay_addr: "[2001:db8::7]:7890".parse().unwrap(),
        http_url: format!("https://{id}.example"),
        capacity: 250,
        status: EdgeStatus::Alive,
        last_heartbeat_ms: T0,
        load: EdgeLoad {
            participants: 12,
            meetings: 3,
            cpu_permille: 415,
        },
    }
}

/// Runs each named check against a fresh store of both engines.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let fresh = super::sqlite(stringify!($check)).await;
                    super::$check(&fresh).await;
                    fresh.done().await;
                }
            )*
        }
        mod postgres_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let fresh = super::postgres(stringify!($check)).await;
                    super::$check(&fresh).await;
                    fresh.done().await;
                }
            )*
        }
    };
}

conformance!(
    meetings_are_created_idempotently,
    meetings_end_and_start_again,
    meetings_page_in_name_order,
    concurrent_creates_make_one_meeting,
    edges_round_trip_and_heartbeat,
    edge_drains_wait_for_the_edge,
    presence_counts_per_edge,
    trees_only_move_forward,
    placements_per_region,
    reopening_keeps_data_and_migrations,
);

async fn meetings_are_created_idempotently(f: &Fresh) {
    let s = &*f.store;
    s.ping().await.unwrap();
    assert_eq!(s.meeting(&m("standup")).await.unwrap(), None);
    let new = NewMeeting {
        id: m("standup"),
        max_participants: u32::MAX,
        metadata: "{\"team\":\"blue\",\"emoji\":\"🌳\"}".into(),
    };
    let Created::New(created) = s.create_meeting(T0, &new).await.unwrap() else {
        panic!("a new name makes a new meeting");
    };
    assert_eq!(created.id, new.id);
    assert_eq!(created.max_participants, u32::MAX);
    assert_eq!(created.metadata, new.metadata);
    assert_eq!((created.created_at_ms, created.ended_at_ms), (T0, None));
    assert_eq!(s.meeting(&new.id).await.unwrap(), Some(created.clone()));

    // The same name again, with other settings: the existing meeting, unchanged.
    let other = NewMeeting {
        max_participants: 5,
        ..NewMeeting::new(m("standup"))
    };
    let again = s.create_meeting(T0 + 1, &other).await.unwrap();
    assert_eq!(again, Created::Existing(created.clone()));
    assert_eq!(
        s.count_meetings().await.unwrap(),
        MeetingCounts {
            active: 1,
            ended: 0
        }
    );
}

async fn meetings_end_and_start_again(f: &Fresh) {
    let s = &*f.store;
    let id = m("town-hall");
    assert_eq!(s.end_meeting(T0, &id).await.unwrap(), Ending::NotFound);
    s.create_meeting(T0, &NewMeeting::new(id.clone()))
        .await
        .unwrap();
    for region in ["eu", "us"] {
        let p = PlacementRecord {
            meeting: id.clone(),
            region: r(region),
            edge: e("fra-1"),
            placed_at_ms: T0,
        };
        s.set_placement(&p).await.unwrap();
    }
    let other = PlacementRecord {
        meeting: m("other"),
        region: r("eu"),
        edge: e("fra-1"),
        placed_at_ms: T0,
    };
    s.set_placement(&other).await.unwrap();

    let Ending::Ended(ended) = s.end_meeting(T0 + 5, &id).await.unwrap() else {
        panic!("an active meeting ends");
    };
    assert_eq!(ended.ended_at_ms, Some(T0 + 5));
    assert!(!ended.is_active());
    assert_eq!(
        s.end_meeting(T0 + 6, &id).await.unwrap(),
        Ending::AlreadyEnded(ended.clone())
    );
    assert!(s.placements(&id).await.unwrap().is_empty(), "placements go");
    assert_eq!(s.placements(&m("other")).await.unwrap(), [other]);

    // The name is free again: a new meeting with the new settings.
    let restart = NewMeeting {
        max_participants: 7,
        metadata: "second".into(),
        ..NewMeeting::new(id.clone())
    };
    let Created::New(again) = s.create_meeting(T0 + 10, &restart).await.unwrap() else {
        panic!("an ended meeting starts again");
    };
    assert_eq!(
        (again.max_participants, again.metadata.as_str()),
        (7, "second")
    );
    assert_eq!((again.created_at_ms, again.ended_at_ms), (T0 + 10, None));
}

async fn meetings_page_in_name_order(f: &Fresh) {
    let s = &*f.store;
    // Lower-case letters and digits: the same order in every collation.
    let names: Vec<String> = (0..7).map(|i| format!("room{i:02}")).collect();
    for (i, name) in names.iter().enumerate().rev() {
        s.create_meeting(T0 + i as i64, &NewMeeting::new(m(name)))
            .await
            .unwrap();
    }
    for name in ["room01", "room04"] {
        s.end_meeting(T0 + 100, &m(name)).await.unwrap();
    }
    let collect = |state: StateFilter, limit: u32| async move {
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let q = ListQuery {
                state,
                after: after.clone(),
                limit,
            };
            let page = s.list_meetings(&q).await.unwrap();
            assert!(page.meetings.len() <= limit as usize);
            pages += 1;
            seen.extend(page.meetings.iter().map(|m| m.id.to_string()));
            match page.next_cursor {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        (seen, pages)
    };
    let (all, pages) = collect(StateFilter::All, 3).await;
    assert_eq!(all, names);
    assert_eq!(pages, 3);
    let (active, _) = collect(StateFilter::Active, 2).await;
    assert_eq!(active, ["room00", "room02", "room03", "room05", "room06"]);
    let (ended, pages) = collect(StateFilter::Ended, 2).await;
    assert_eq!((ended, pages), (vec!["room01".into(), "room04".into()], 1));
    // An exact fit has no next page; limits are clamped to 1..=MAX_PAGE.
    let (all, pages) = collect(StateFilter::All, 7).await;
    assert_eq!((all.len(), pages), (7, 1));
    let one = ListQuery {
        state: StateFilter::All,
        after: None,
        limit: 0,
    };
    assert_eq!(s.list_meetings(&one).await.unwrap().meetings.len(), 1);
    assert_eq!(
        s.count_meetings().await.unwrap(),
        MeetingCounts {
            active: 5,
            ended: 2
        }
    );
}

async fn concurrent_creates_make_one_meeting(f: &Fresh) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = f.store.clone();
            tokio::spawn(async move {
                store
                    .create_meeting(T0 + i, &NewMeeting::new(m("busy")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Created::New(_)) {
            new += 1;
        }
    }
    assert_eq!(new, 1, "exactly one create wins");
}

async fn edges_round_trip_and_heartbeat(f: &Fresh) {
    let s = &*f.store;
    assert!(s.edges().await.unwrap().is_empty());
    let (b, a) = (edge("fra-2", "eu"), edge("fra-1", "eu"));
    s.upsert_edge(&b).await.unwrap();
    s.upsert_edge(&a).await.unwrap();
    assert_eq!(s.edges().await.unwrap(), [a.clone(), b.clone()], "by id");
    assert_eq!(s.edge(&e("fra-1")).await.unwrap(), Some(a.clone()));
    assert_eq!(s.edge(&e("nope")).await.unwrap(), None);

    // Registration again: everything replaced.
    let mut moved = a.clone();
    moved.region = r("us");
    moved.lat = -33.868_82;
    moved.lon = 151.209_29;
    moved.relay_addr = "10.0.0.1:7000".parse().unwrap();
    moved.capacity = 1;
    s.upsert_edge(&moved).await.unwrap();
    assert_eq!(s.edge(&a.id).await.unwrap(), Some(moved.clone()));

    let beat = Heartbeat {
        edge: a.id.clone(),
        at_ms: T0 + 1000,
        status: EdgeStatus::Draining,
        load: EdgeLoad {
            participants: 0,
            meetings: u32::MAX,
            cpu_permille: 1000,
        },
    };
    assert!(s.record_heartbeat(&beat).await.unwrap());
    let after = s.edge(&a.id).await.unwrap().unwrap();
    assert_eq!(after.status, EdgeStatus::Draining);
    assert_eq!(after.last_heartbeat_ms, T0 + 1000);
    assert_eq!(after.load, beat.load);
    assert_eq!(after.relay_addr, moved.relay_addr, "registration kept");
    let stranger = Heartbeat {
        edge: e("nope"),
        ..beat
    };
    assert!(!s.record_heartbeat(&stranger).await.unwrap());
}

async fn edge_drains_wait_for_the_edge(f: &Fresh) {
    let s = &*f.store;
    assert_eq!(
        s.request_drain(T0, &e("nope")).await.unwrap(),
        DrainRequest::NotFound
    );
    let a = edge("fra-1", "eu");
    s.upsert_edge(&a).await.unwrap();
    assert_eq!(s.edge_drain(&a.id).await.unwrap(), Some((a.clone(), None)));
    assert_eq!(
        s.request_drain(T0 + 1, &a.id).await.unwrap(),
        DrainRequest::Requested(a.clone(), Some(T0 + 1))
    );
    // Idempotent; the record itself is untouched (the edge reports its own status).
    assert_eq!(
        s.request_drain(T0 + 2, &a.id).await.unwrap(),
        DrainRequest::Requested(a.clone(), Some(T0 + 1))
    );
    let beat = |status, participants| Heartbeat {
        edge: a.id.clone(),
        at_ms: T0 + 10,
        status,
        load: EdgeLoad {
            participants,
            meetings: 1,
            cpu_permille: 5,
        },
    };
    let pending = Some(Beat {
        drain_pending: true,
    });
    assert_eq!(
        s.heartbeat(&beat(EdgeStatus::Alive, 3)).await.unwrap(),
        pending
    );
    // Death and a new registration keep it: the edge has not heard of it.
    assert_eq!(
        s.heartbeat(&beat(EdgeStatus::Dead, 0)).await.unwrap(),
        pending
    );
    let Some((dead, Some(T0_1))) = s.edge_drain(&a.id).await.unwrap() else {
        panic!("the drain is still pending");
    };
    assert_eq!(dead.status, EdgeStatus::Dead);
    assert!(matches!(
        s.request_drain(T0 + 3, &a.id).await.unwrap(),
        DrainRequest::Dead(d) if d.status == EdgeStatus::Dead
    ));
    s.upsert_edge(&a).await.unwrap();
    assert_eq!(
        s.heartbeat(&beat(EdgeStatus::Alive, 0)).await.unwrap(),
        pending
    );
    // A draining beat acknowledges it.
    let acked = Some(Beat {
        drain_pending: false,
    });
    assert_eq!(
        s.heartbeat(&beat(EdgeStatus::Draining, 2)).await.unwrap(),
        acked
    );
    let (now, pending_at) = s.edge_drain(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (now.status, now.load.participants, pending_at),
        (EdgeStatus::Draining, 2, None)
    );
    // Asking again while it drains records nothing new.
    assert!(matches!(
        s.request_drain(T0 + 4, &a.id).await.unwrap(),
        DrainRequest::Requested(d, None) if d.status == EdgeStatus::Draining
    ));
    assert_eq!(
        s.heartbeat(&beat(EdgeStatus::Alive, 0)).await.unwrap(),
        acked
    );
    assert_eq!(
        s.heartbeat(&Heartbeat {
            edge: e("nope"),
            ..beat(EdgeStatus::Alive, 0)
        })
        .await
        .unwrap(),
        None
    );
}

const T0_1: i64 = T0 + 1;

async fn presence_counts_per_edge(f: &Fresh) {
    let s = &*f.store;
    let p = |meeting: &str, edge: &str, participants, publishers, at| Presence {
        meeting: m(meeting),
        edge: e(edge),
        participants,
        publishers,
        updated_at_ms: at,
    };
    s.set_presence(&p("x", "sfo-1", 3, 1, T0)).await.unwrap();
    s.set_presence(&p("x", "fra-1", 40, 2, T0)).await.unwrap();
    s.set_presence(&p("y", "fra-1", 1, 1, T0)).await.unwrap();
    assert_eq!(
        s.presence(&m("x")).await.unwrap(),
        [p("x", "fra-1", 40, 2, T0), p("x", "sfo-1", 3, 1, T0)]
    );
    s.set_presence(&p("x", "fra-1", 41, 3, T0 + 1))
        .await
        .unwrap();
    s.set_presence(&p("x", "sfo-1", 0, 0, T0 + 1))
        .await
        .unwrap();
    assert_eq!(
        s.presence(&m("x")).await.unwrap(),
        [p("x", "fra-1", 41, 3, T0 + 1)],
        "a zero count removes the edge"
    );
    assert_eq!(s.presence(&m("y")).await.unwrap().len(), 1);
    assert!(s.presence(&m("z")).await.unwrap().is_empty());
}

async fn trees_only_move_forward(f: &Fresh) {
    let s = &*f.store;
    let tree = |epoch, links: &[(&str, &str)], at| TreeRecord {
        meeting: m("x"),
        epoch: TreeEpoch(epoch),
        links: links.iter().map(|(a, b)| (e(a), e(b))).collect(),
        updated_at_ms: at,
    };
    assert_eq!(s.tree(&m("x")).await.unwrap(), None);
    let first = tree(1, &[("fra-1", "lon-1"), ("fra-1", "sfo-1")], T0);
    assert!(s.put_tree(&first).await.unwrap());
    assert_eq!(s.tree(&m("x")).await.unwrap(), Some(first.clone()));
    // Same or older epochs are ignored: updates are idempotent and reorder-safe.
    assert!(!s.put_tree(&tree(1, &[], T0 + 1)).await.unwrap());
    assert!(!s.put_tree(&tree(0, &[], T0 + 1)).await.unwrap());
    assert_eq!(s.tree(&m("x")).await.unwrap(), Some(first));
    let big = i64::MAX as u64;
    let newest = tree(big, &[], T0 + 2);
    assert!(s.put_tree(&newest).await.unwrap());
    assert_eq!(s.tree(&m("x")).await.unwrap(), Some(newest));
    // What the schema cannot hold is refused, not truncated.
    let e1 = s.put_tree(&tree(big + 1, &[], T0)).await.unwrap_err();
    assert!(matches!(e1, StoreError::Unstorable(_)), "{e1}");
    let mut huge = tree(big, &[], T0);
    huge.links = vec![(e("a"), e("b")); MAX_TREE_LINKS + 1];
    let e2 = s.put_tree(&huge).await.unwrap_err();
    assert!(matches!(e2, StoreError::Unstorable(_)), "{e2}");
}

async fn placements_per_region(f: &Fresh) {
    let s = &*f.store;
    let p = |meeting: &str, region: &str, edge: &str| PlacementRecord {
        meeting: m(meeting),
        region: r(region),
        edge: e(edge),
        placed_at_ms: T0,
    };
    s.set_placement(&p("x", "us", "sfo-1")).await.unwrap();
    s.set_placement(&p("x", "eu", "fra-1")).await.unwrap();
    s.set_placement(&p("y", "eu", "fra-1")).await.unwrap();
    assert_eq!(
        s.placements(&m("x")).await.unwrap(),
        [p("x", "eu", "fra-1"), p("x", "us", "sfo-1")]
    );
    assert_eq!(
        s.placements_on(&e("fra-1")).await.unwrap(),
        [p("x", "eu", "fra-1"), p("y", "eu", "fra-1")]
    );
    // Placing again in a region replaces the edge.
    s.set_placement(&p("x", "eu", "fra-2")).await.unwrap();
    assert_eq!(
        s.placements_on(&e("fra-1")).await.unwrap(),
        [p("y", "eu", "fra-1")]
    );
    assert!(s.delete_placement(&m("x"), &r("eu")).await.unwrap());
    assert!(!s.delete_placement(&m("x"), &r("eu")).await.unwrap());
    assert_eq!(
        s.placements(&m("x")).await.unwrap(),
        [p("x", "us", "sfo-1")]
    );
}

async fn reopening_keeps_data_and_migrations(f: &Fresh) {
    f.store
        .create_meeting(T0, &NewMeeting::new(m("kept")))
        .await
        .unwrap();
    f.store.upsert_edge(&edge("fra-1", "eu")).await.unwrap();
    // A second origin on the same database (a restart, or a standby): the migrations are
    // already applied, the data is there.
    let second = store::open(&f.url, 2).await.unwrap();
    assert!(second.meeting(&m("kept")).await.unwrap().is_some());
    assert_eq!(second.edges().await.unwrap().len(), 1);
}

#[test]
fn database_urls_are_rewritten() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/arbor_test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}
