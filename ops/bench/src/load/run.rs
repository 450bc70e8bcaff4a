//! Runs a [`LoadSpec`] against real edges: publishers join first, subscribers join at the
//! spec's rate (with a bounded number of joins in flight), everyone is measured for the spec's
//! duration after the last join, then everyone leaves.
//!
//! Each participant is an `arbor_loadgen` client on its own tokio task and UDP socket
//! (DTLS-SRTP, RTCP, NACK and TWCC from str0m). Counters are measured over the steady window
//! only: a snapshot at its start is subtracted from the one at its end, so subscribers that
//! joined early do not inflate the frame rate or hide loss during the ramp.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arbor_loadgen::protocol::{Kind, ServerMsg, Source, TrackInfo};
use arbor_loadgen::{
    ClientConfig, ClientHandle, ClientStats, ConnectOptions, DriverError, Epoch, MediaHandle,
    VideoConfig, connect_with,
};
use relay_proto::token::{Claims, mint};
use relay_proto::{MeetingId, ParticipantId};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::plan::{Camera, LoadSpec, PlanError, Seat, SeatRole, Target, plan};
use super::report::{EdgeReport, Outcome, Report, aggregate};

/// Subscriber joins in flight at once: beyond this, a slow edge turns the ramp into a storm.
pub const MAX_JOINS_IN_FLIGHT: usize = 64;
/// How often progress is reported.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long a participant may take to join, and a subscriber to see its publishers' cameras.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Token lifetime: longer than any run.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Credentials to mint join tokens with.
#[derive(Debug, Clone)]
pub struct Auth {
    pub api_key: String,
    pub api_secret: String,
}

impl Auth {
    /// A token for `identity` to join `meeting`, valid for `ttl` from now.
    pub fn join_token(&self, meeting: &MeetingId, identity: &str, ttl: Duration) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = Claims::join(meeting, identity, now + ttl.as_secs());
        mint(&claims, &self.api_key, self.api_secret.as_bytes())
    }
}

/// Where a run is, for a progress line.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub elapsed: Duration,
    pub phase: Phase,
    pub total: usize,
    pub joined: usize,
    pub failed: usize,
    /// Frames rendered per second by all subscribers since the previous report (measuring
    /// phase only).
    pub rendered_fps: f64,
}

/// The run's phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Joining,
    Measuring,
}

/// Why a run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("publisher {identity} could not join {edge}: {reason}")]
    Publisher {
        identity: String,
        edge: String,
        reason: String,
    },
}

/// Told when the steady window starts and ends, so that a benchmark can read the servers'
/// CPU time over exactly the window the report covers.
pub trait Window {
    /// The window starts: every participant has joined.
    fn started(&mut self) {}
    /// The window ends; the report's counters cover the time since `started`.
    fn ended(&mut self) {}
}

/// No one listening.
impl Window for () {}

/// Runs `spec` against `targets`, calling `on_progress` about every [`PROGRESS_EVERY`].
pub async fn run(
    spec: &LoadSpec,
    targets: &[Target],
    auth: &Auth,
    on_progress: impl FnMut(&Progress),
) -> Result<Report, LoadError> {
    run_with(spec, targets, auth, on_progress, &mut ()).await
}

/// [`run`], telling `window` when the measured window starts and ends.
pub async fn run_with(
    spec: &LoadSpec,
    targets: &[Target],
    auth: &Auth,
    mut on_progress: impl FnMut(&Progress),
    window_probe: &mut impl Window,
) -> Result<Report, LoadError> {
    let seats = plan(spec, targets.len())?;
    let started = Instant::now();
    let epoch = Epoch(started.into_std());
    let ctx = Arc::new(Ctx {
        spec: spec.clone(),
        targets: targets.to_vec(),
        auth: auth.clone(),
        epoch,
    });
    let (pubs, subs): (Vec<Seat>, Vec<Seat>) = seats
        .into_iter()
        .partition(|s| matches!(s.role, SeatRole::Publisher { .. }));
    let publishers = join_publishers(&ctx, pubs).await?;
    let ids: Arc<Vec<ParticipantId>> = Arc::new(
        publishers
            .iter()
            .map(ClientHandle::participant_id)
            .collect(),
    );

    let mut progress = Progress {
        total: publishers.len() + subs.len(),
        joined: publishers.len(),
        ..Progress::default()
    };
    let sub_edges: Vec<usize> = subs.iter().map(|s| s.edge).collect();
    let subscribers =
        join_subscribers(&ctx, &ids, subs, started, &mut progress, &mut on_progress).await;

    progress.phase = Phase::Measuring;
    let pub_media: Vec<&MediaHandle> = publishers.iter().map(ClientHandle::media).collect();
    let sub_media: Vec<Result<&MediaHandle, String>> = subscribers
        .iter()
        .map(|s| s.as_ref().map(ClientHandle::media).map_err(Clone::clone))
        .collect();
    let (outcomes, measured) = measure_outcomes(
        &pub_media,
        &sub_media,
        spec.duration,
        (started, &mut progress, &mut on_progress),
        window_probe,
    )
    .await;
    let publisher_count = pub_media.len();
    drop((pub_media, sub_media));
    leave(publishers, subscribers).await;
    let mut report = aggregate(&outcomes, measured);
    if targets.len() > 1 {
        let subscriber_outcomes = &outcomes[publisher_count..];
        report.by_edge = targets
            .iter()
            .enumerate()
            .map(|(e, target)| {
                let mine = subscriber_outcomes
                    .iter()
                    .zip(&sub_edges)
                    .filter(|(_, edge)| **edge == e)
                    .map(|(o, _)| o);
                EdgeReport::of(&target.id, &aggregate(mine, measured))
            })
            .collect();
    }
    Ok(report)
}

/// Measures joined participants for `duration` (however they joined: Arbor's signaling or
/// another SFU's) and aggregates the window: the subscribers' counters over the window only,
/// `Err` entries as failed joins.
pub async fn measure(
    publishers: &[&MediaHandle],
    subscribers: &[Result<&MediaHandle, String>],
    duration: Duration,
    progress: (Instant, &mut Progress, &mut impl FnMut(&Progress)),
    window_probe: &mut impl Window,
) -> Report {
    let (outcomes, measured) =
        measure_outcomes(publishers, subscribers, duration, progress, window_probe).await;
    aggregate(&outcomes, measured)
}

/// [`measure`]'s window before aggregation: an outcome per publisher, then per subscriber
/// (in the order given), and how long the window lasted.
async fn measure_outcomes(
    publishers: &[&MediaHandle],
    subscribers: &[Result<&MediaHandle, String>],
    duration: Duration,
    (started, progress, on_progress): (Instant, &mut Progress, &mut impl FnMut(&Progress)),
    window_probe: &mut impl Window,
) -> (Vec<Outcome>, Duration) {
    let joined: Vec<&MediaHandle> = subscribers.iter().filter_map(|s| s.clone().ok()).collect();
    let before = snapshot(&joined).await;
    window_probe.started();
    let window = Instant::now();
    let mut tick = tokio::time::interval_at(window + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut last_frames = rendered(&before);
    while window.elapsed() < duration {
        tick.tick().await;
        let now = snapshot(&joined).await;
        let frames = rendered(&now);
        progress.elapsed = started.elapsed();
        progress.rendered_fps =
            frames.saturating_sub(last_frames) as f64 / PROGRESS_EVERY.as_secs_f64();
        last_frames = frames;
        on_progress(progress);
    }
    let after = snapshot(&joined).await;
    window_probe.ended();
    let measured = window.elapsed();

    let mut outcomes = Vec::with_capacity(publishers.len() + subscribers.len());
    for p in publishers {
        let stats = p.stats().await.unwrap_or_default();
        outcomes.push(Outcome::Joined {
            publisher: true,
            stats: Box::new(stats),
        });
    }
    let mut windows = before.into_iter().zip(after);
    for s in subscribers {
        outcomes.push(match s {
            Ok(_) => {
                let (b, a) = windows.next().unwrap_or_default();
                Outcome::Joined {
                    publisher: false,
                    stats: Box::new(window_of(a, b.as_ref())),
                }
            }
            Err(error) => Outcome::Failed {
                publisher: false,
                error: error.clone(),
            },
        });
    }
    (outcomes, measured)
}

/// What every join task needs.
struct Ctx {
    spec: LoadSpec,
    targets: Vec<Target>,
    auth: Auth,
    epoch: Epoch,
}

impl Ctx {
    fn token(&self, identity: &str) -> String {
        self.auth
            .join_token(&self.spec.meeting, identity, TOKEN_TTL)
    }

    fn options(&self) -> ConnectOptions {
        ConnectOptions {
            bind: SocketAddr::new(self.spec.bind_ip, 0),
            signal_timeout: JOIN_TIMEOUT,
            ..ConnectOptions::default()
        }
    }

    async fn connect(&self, seat: &Seat, config: ClientConfig) -> Result<ClientHandle, String> {
        let target = &self.targets[seat.edge];
        connect_with(
            &target.ws_url,
            &self.token(&seat.identity),
            config,
            self.options(),
        )
        .await
        .map_err(|e| e.to_string())
    }
}

fn camera(kind: Camera) -> VideoConfig {
    match kind {
        Camera::Simulcast => VideoConfig::default(),
        Camera::Single => VideoConfig::single_layer(),
    }
}

async fn join_publishers(ctx: &Arc<Ctx>, seats: Vec<Seat>) -> Result<Vec<ClientHandle>, LoadError> {
    let mut tasks = JoinSet::new();
    for (i, seat) in seats.into_iter().enumerate() {
        let ctx = Arc::clone(ctx);
        tasks.spawn(async move {
            let SeatRole::Publisher { n } = seat.role else {
                unreachable!("partitioned")
            };
            let mut config = ClientConfig::new(ctx.epoch);
            config.video = Some(camera(ctx.spec.camera));
            config.source_id = n as u32 + 1;
            config.seed = n as u64 + 1;
            config.name = Some(seat.identity.clone());
            config.srtp_profile = ctx.spec.srtp_profile;
            if let Some(audio) = config.audio.as_mut() {
                audio.speaking = ctx.spec.publishers_speak;
            }
            let joined = ctx.connect(&seat, config).await;
            (i, seat, joined)
        });
    }
    let mut joined: Vec<(usize, ClientHandle)> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let Ok((i, seat, result)) = done else {
            continue;
        };
        match result {
            Ok(handle) => joined.push((i, handle)),
            Err(reason) => {
                return Err(LoadError::Publisher {
                    identity: seat.identity,
                    edge: ctx.targets[seat.edge].id.clone(),
                    reason,
                });
            }
        }
    }
    joined.sort_by_key(|(i, _)| *i);
    Ok(joined.into_iter().map(|(_, h)| h).collect())
}

async fn join_subscribers(
    ctx: &Arc<Ctx>,
    ids: &Arc<Vec<ParticipantId>>,
    seats: Vec<Seat>,
    started: Instant,
    progress: &mut Progress,
    on_progress: &mut impl FnMut(&Progress),
) -> Vec<Result<ClientHandle, String>> {
    let mut results: Vec<Option<Result<ClientHandle, String>>> =
        (0..seats.len()).map(|_| None).collect();
    let in_flight = Arc::new(Semaphore::new(MAX_JOINS_IN_FLIGHT));
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / ctx.spec.join_rate_per_s));
    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut report = tokio::time::interval_at(Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut tasks = JoinSet::new();
    let mut pending = seats.into_iter().enumerate();
    let mut all_started = false;
    while !all_started || !tasks.is_empty() {
        tokio::select! {
            _ = pace.tick(), if !all_started => {
                let Some((i, seat)) = pending.next() else { all_started = true; continue };
                let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else { break };
                let (ctx, ids) = (Arc::clone(ctx), Arc::clone(ids));
                tasks.spawn(async move {
                    let result = subscriber(&ctx, &ids, &seat).await;
                    drop(permit);
                    (i, result)
                });
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let Ok((i, result)) = done else { continue };
                match &result {
                    Ok(_) => progress.joined += 1,
                    Err(_) => progress.failed += 1,
                }
                results[i] = Some(result);
            }
            _ = report.tick() => {
                progress.elapsed = started.elapsed();
                on_progress(progress);
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("the join task ended without a result".into())))
        .collect()
}

/// Joins one subscriber, subscribes each of its video slots to its publisher's camera and
/// its audio slots to the microphones of the publishers its first video slots watch (the
/// web client fills its audio slots with the active speakers the same way: by `subscribe`).
async fn subscriber(ctx: &Ctx, ids: &[ParticipantId], seat: &Seat) -> Result<ClientHandle, String> {
    let SeatRole::Subscriber { watches } = &seat.role else {
        unreachable!("partitioned")
    };
    let mut config = ClientConfig::subscriber(ctx.epoch, watches.len(), ctx.spec.audio_slots);
    config.name = Some(seat.identity.clone());
    config.srtp_profile = ctx.spec.srtp_profile;
    let handle = ctx.connect(seat, config).await?;
    if !ctx.spec.subscribe {
        return Ok(handle);
    }
    let slots = handle.mids().video_slots;
    for (k, (slot, &publisher)) in slots.iter().zip(watches).enumerate() {
        let track = camera_of(&handle, ids[publisher], JOIN_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?
            .id;
        let height = match ctx.spec.thumbnail_height {
            Some(thumbnail) if k > 0 => thumbnail,
            _ => ctx.spec.max_height,
        };
        handle
            .subscribe(track, *slot, Some(height * 16 / 9), Some(height))
            .await
            .map_err(|e| e.to_string())?;
    }
    let audio_slots = handle.mids().audio_slots;
    for (slot, &publisher) in audio_slots.iter().zip(watches.iter().cycle()) {
        let track = microphone_of(&handle, ids[publisher], JOIN_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?
            .id;
        handle
            .subscribe(track, *slot, None, None)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(handle)
}

/// `who`'s camera as `handle` learns of it: in its `joined` snapshot, or announced later
/// (waiting up to `timeout`).
pub async fn camera_of(
    handle: &ClientHandle,
    who: ParticipantId,
    timeout: Duration,
) -> Result<TrackInfo, DriverError> {
    track_of(handle, who, (Kind::Video, Source::Camera), timeout).await
}

/// `who`'s microphone, as [`camera_of`].
pub async fn microphone_of(
    handle: &ClientHandle,
    who: ParticipantId,
    timeout: Duration,
) -> Result<TrackInfo, DriverError> {
    track_of(handle, who, (Kind::Audio, Source::Microphone), timeout).await
}

async fn track_of(
    handle: &ClientHandle,
    who: ParticipantId,
    (kind, source): (Kind, Source),
    timeout: Duration,
) -> Result<TrackInfo, DriverError> {
    let is_it = |t: &TrackInfo| t.participant_id == who && t.kind == kind && t.source == source;
    if let Some(t) = handle.joined().tracks.iter().find(|t| is_it(t)) {
        return Ok(t.clone());
    }
    let announced =
        |m: &ServerMsg| matches!(m, ServerMsg::TrackPublished { track } if is_it(track));
    let what = match kind {
        Kind::Audio => "the publisher's microphone",
        _ => "the publisher's camera",
    };
    match handle.wait_for_named(what, announced, timeout).await? {
        ServerMsg::TrackPublished { track } => Ok(track),
        _ => unreachable!("matched a TrackPublished"),
    }
}

async fn snapshot(clients: &[&MediaHandle]) -> Vec<Option<ClientStats>> {
    let mut out = Vec::with_capacity(clients.len());
    for c in clients {
        out.push(c.stats().await.ok());
    }
    out
}

fn rendered(stats: &[Option<ClientStats>]) -> u64 {
    let slots = stats.iter().flatten().flat_map(|s| &s.slots);
    slots.map(|s| s.frames_rendered).sum()
}

/// `after`'s counters minus `before`'s (slots matched by mid); join-time figures (connect
/// time, first frame) and latency are kept whole.
fn window_of(after: Option<ClientStats>, before: Option<&ClientStats>) -> ClientStats {
    let Some(mut a) = after else {
        return ClientStats::default();
    };
    let Some(b) = before else { return a };
    for slot in &mut a.slots {
        let Some(old) = b.slots.iter().find(|s| s.mid == slot.mid) else {
            continue;
        };
        slot.packets = slot.packets.saturating_sub(old.packets);
        slot.packets_skipped = slot.packets_skipped.saturating_sub(old.packets_skipped);
        slot.frames_rendered = slot.frames_rendered.saturating_sub(old.frames_rendered);
        slot.freezes = slot.freezes.saturating_sub(old.freezes);
        slot.freeze_total = slot.freeze_total.saturating_sub(old.freeze_total);
        slot.non_contiguous = slot.non_contiguous.saturating_sub(old.non_contiguous);
        slot.frames_missing = slot.frames_missing.saturating_sub(old.frames_missing);
    }
    a
}

async fn leave(publishers: Vec<ClientHandle>, subscribers: Vec<Result<ClientHandle, String>>) {
    let mut tasks = JoinSet::new();
    for c in publishers
        .into_iter()
        .chain(subscribers.into_iter().flatten())
    {
        tasks.spawn(async move {
            let _ = c.close().await;
        });
    }
    while tasks.join_next().await.is_some() {}
}
