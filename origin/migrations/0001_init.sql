-- The origin's schema, version 1. One file for both engines: SQLite (>= 3.35) and
-- PostgreSQL (>= 9.5) accept every statement here. Only BIGINT, DOUBLE PRECISION and TEXT
-- columns; times are unix milliseconds; JSON is TEXT. No foreign keys to meetings: edges
-- report presence, trees and placements for meetings that apps created with their own tokens.

-- Meetings created through the REST API. `id` is the name (a token's `video.room`).
CREATE TABLE meetings (
    id               TEXT PRIMARY KEY,
    max_participants BIGINT NOT NULL,
    metadata         TEXT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    ended_at_ms      BIGINT
);

-- Edges as the registry last saw them.
CREATE TABLE edges (
    id                TEXT PRIMARY KEY,
    region            TEXT NOT NULL,
    lat               DOUBLE PRECISION NOT NULL,
    lon               DOUBLE PRECISION NOT NULL,
    relay_addr        TEXT NOT NULL,
    http_url          TEXT NOT NULL,
    capacity          BIGINT NOT NULL,
    status            TEXT NOT NULL,
    last_heartbeat_ms BIGINT NOT NULL,
    participants      BIGINT NOT NULL,
    meetings          BIGINT NOT NULL,
    cpu_permille      BIGINT NOT NULL
);

-- Per (meeting, edge) participant counts, as edges report them. A row per hosting edge.
CREATE TABLE presence (
    meeting       TEXT NOT NULL,
    edge          TEXT NOT NULL,
    participants  BIGINT NOT NULL,
    publishers    BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (meeting, edge)
);

-- Each meeting's newest tree: `links` is a JSON array of [edge, edge] pairs.
CREATE TABLE trees (
    meeting       TEXT PRIMARY KEY,
    epoch         BIGINT NOT NULL,
    links         TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Where each meeting's participants in a region go.
CREATE TABLE placements (
    meeting      TEXT NOT NULL,
    region       TEXT NOT NULL,
    edge         TEXT NOT NULL,
    placed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (meeting, region)
);

CREATE INDEX placements_by_edge ON placements (edge, meeting);
