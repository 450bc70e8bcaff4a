-- An operator's drain of an edge (POST /v1/edges/{id}/drain) that the edge has not yet
-- acknowledged: set by the API, cleared once the edge heartbeats `draining` (from then on the
-- edge carries the drain itself, across origin restarts). NULL: none pending. Kept here so
-- that an origin restarted before the edge heard of it still delivers it.
ALTER TABLE edges ADD COLUMN drain_requested_at_ms BIGINT;
