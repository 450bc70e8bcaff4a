// The signaling WebSocket (docs/signaling.md), with resume.
//
// The socket is disposable: media keeps flowing over the PeerConnection when it drops. So an
// unexpected close is not an error for the user, only a "Reconnecting…" banner: we open a new
// socket with backoff and send `resume`, and the edge re-attaches it to the same participant.
// Only `leave`, a fatal error or `close()` end the session for good.
//
// Edges can send us elsewhere (docs/signaling.md): `redirect` answers a join with another
// edge's socket, which we join instead; `migrate` tells a joined client that its edge drains.
// Then we join the new edge on a second socket while the old one (and the media on it) keeps
// going, and only once `joined` arrives there do we switch: the app sees a fresh `joined`
// (it starts new media with the same identity, publications and layout), and we `leave` the
// old edge.

/** Delays before reconnect attempts 1, 2, 3, 4; later attempts wait BACKOFF_STEADY_MS. */
const BACKOFF_MS = [0, 300, 1200, 2700];
const BACKOFF_STEADY_MS = 5000;
/** A socket that has not opened after this long is abandoned and retried. */
const CONNECT_TIMEOUT_MS = 8000;
/** Keep-alive period: NATs and proxies drop idle connections. */
const PING_INTERVAL_MS = 10_000;
/** No frame at all (not even a pong) for this long: the socket is dead even if TCP says not. */
const SILENCE_TIMEOUT_MS = 25_000;
/** After `leave`, the edge closes the socket; if it does not, we do. */
const LEAVE_CLOSE_MS = 1000;
/** Most `redirect`s followed in a row for one join (a loop between edges stops there). */
const MAX_REDIRECTS = 4;

export class Signaling {
  /**
   * @param {object} o
   * @param {string} o.url          ws(s)://host/v1/rtc
   * @param {(msg: object) => void} o.onMessage  every frame from the edge, parsed
   * @param {(status: string, detail?: object) => void} o.onStatus
   *   'connecting' | 'open' | 'reconnecting' | 'closed'
   */
  constructor({ url, onMessage, onStatus }) {
    this.url = url;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.ws = null;
    this.status = 'idle';
    this.token = null;
    this.name = undefined;
    this.participantId = null;
    this.resumeSecret = null;
    this.attempt = 0;
    this.left = false;
    this.closed = false;
    this.fatal = null;
    this.timers = new Set();
    this.lastRxAt = 0;
    this.redirects = 0;
    /** The socket of a migration under way (joining another edge), or null. */
    this.migrating = null;
    /** Migrations completed (test hook). */
    this.migrations = 0;
  }

  /** Connects and joins. Resolves with the `joined` message; rejects on a fatal error. */
  join(token, name) {
    this.token = token;
    this.name = name;
    return new Promise((resolve, reject) => {
      this.pendingJoin = { resolve, reject };
      this.#open(this.#joinHello());
    });
  }

  #joinHello() {
    return { type: 'join', token: this.token, ...(this.name ? { name: this.name } : {}) };
  }

  get isOpen() {
    return this.status === 'open' && this.ws?.readyState === WebSocket.OPEN;
  }

  /** Sends one message. Returns false (and sends nothing) while disconnected. */
  send(msg) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** Leaves the meeting: the edge closes the PeerConnection and the socket. */
  leave() {
    if (this.left) return;
    this.left = true;
    this.send({ type: 'leave' });
    this.#later(() => this.close(), LEAVE_CLOSE_MS);
  }

  /** Closes for good, without telling the edge (it times the participant out). */
  close() {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    clearInterval(this.pingTimer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, 'bye');
    this.migrating?.close(1000, 'bye');
    this.migrating = null;
    this.#setStatus('closed');
  }

  /** Cuts the socket the way a network fault would (test hook): the client must resume. */
  drop() {
    this.ws?.close(4000, 'dropped');
  }

  #open(hello) {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.#setStatus(this.participantId ? 'reconnecting' : 'connecting', { attempt: this.attempt });
    const connectTimer = this.#later(() => {
      if (ws.readyState === WebSocket.CONNECTING) ws.close();
    }, CONNECT_TIMEOUT_MS);

    ws.onopen = () => {
      if (ws !== this.ws) return;
      clearTimeout(connectTimer);
      this.lastRxAt = performance.now();
      ws.send(JSON.stringify(hello));
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.#keepAlive(ws), PING_INTERVAL_MS);
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      this.lastRxAt = performance.now();
      this.#parse(ev.data, (msg) => this.#handle(msg));
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      clearTimeout(connectTimer);
      clearInterval(this.pingTimer);
      this.#handleClose(ev);
    };
    // onerror is always followed by onclose, which does the work.
  }

  #handle(msg) {
    if (msg.type === 'redirect' && msg.ws_url) {
      this.#followRedirect(msg);
      return;
    }
    if (msg.type === 'migrate' && msg.ws_url) {
      this.#migrate(msg.ws_url, 0);
      return;
    }
    if (msg.type === 'joined' || msg.type === 'resumed') {
      this.participantId = msg.participant?.id ?? this.participantId;
      this.resumeSecret = msg.resume_secret ?? this.resumeSecret;
      this.attempt = 0;
      this.redirects = 0;
      this.#setStatus('open');
    } else if (msg.type === 'error' && msg.fatal) {
      this.fatal = msg;
    }
    this.onMessage(msg);
    if (msg.type === 'joined' && this.pendingJoin) {
      this.pendingJoin.resolve(msg);
      this.pendingJoin = null;
    } else if (msg.type === 'error' && msg.fatal && this.pendingJoin) {
      this.pendingJoin.reject(Object.assign(new Error(msg.message || msg.code), { code: msg.code }));
      this.pendingJoin = null;
    }
  }

  /** Joins at the edge a `redirect` names (the old socket's close is then ignored). */
  #followRedirect(msg) {
    this.redirects += 1;
    if (this.redirects > MAX_REDIRECTS) {
      this.fatal = { type: 'error', code: 'redirect_loop', message: 'Too many redirects between edges.', fatal: true };
      this.pendingJoin?.reject(Object.assign(new Error(this.fatal.message), { code: this.fatal.code }));
      this.pendingJoin = null;
      this.ws?.close(1000, 'redirect loop');
      return;
    }
    this.url = msg.ws_url;
    // There is no participant on the other edge to resume: join there.
    this.participantId = null;
    this.resumeSecret = null;
    clearInterval(this.pingTimer);
    const old = this.ws;
    this.#open(this.#joinHello());
    if (old && old.readyState <= WebSocket.OPEN) old.close(1000, 'redirected');
  }

  /**
   * Joins the meeting at `url` on a second socket, following its redirects; the current
   * socket and its media go on until `joined` arrives there, then we switch and leave here.
   * A migration that fails is dropped: we stay, and the edge says `migrate` again if it can.
   */
  #migrate(url, redirects) {
    if (this.left || this.closed || this.fatal) return;
    if (this.migrating) this.migrating.close(1000, 'superseded');
    const ws = new WebSocket(url);
    this.migrating = ws;
    const hello = this.#joinHello();
    const timer = this.#later(() => {
      if (this.migrating === ws && ws.readyState !== WebSocket.CLOSED) ws.close(1000, 'too slow');
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => ws.send(JSON.stringify(hello));
    ws.onmessage = (ev) => {
      if (ws === this.ws) {
        // Switched: this is our socket now.
        this.lastRxAt = performance.now();
        this.#parse(ev.data, (msg) => this.#handle(msg));
        return;
      }
      if (ws !== this.migrating) return;
      this.#parse(ev.data, (msg) => {
        if (msg.type === 'redirect' && msg.ws_url && redirects < MAX_REDIRECTS) {
          this.#migrate(msg.ws_url, redirects + 1);
        } else if (msg.type === 'joined') {
          clearTimeout(timer);
          this.#switchTo(ws, url, msg);
        } else if (msg.type === 'error' && msg.fatal) {
          console.warn('signaling: migration refused', msg);
          ws.close(1000, 'refused');
        }
      });
    };
    ws.onclose = (ev) => {
      if (ws === this.ws) {
        clearInterval(this.pingTimer);
        this.#handleClose(ev);
      } else if (ws === this.migrating) {
        this.migrating = null;
      }
    };
  }

  /** The migration's socket is joined: it becomes ours, and we leave the old edge. */
  #switchTo(ws, url, joined) {
    const old = this.ws;
    this.migrating = null;
    this.migrations += 1;
    this.url = url;
    this.ws = ws;
    this.lastRxAt = performance.now();
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.#keepAlive(ws), PING_INTERVAL_MS);
    if (old && old.readyState === WebSocket.OPEN) {
      old.send(JSON.stringify({ type: 'leave' }));
      this.#later(() => old.readyState <= WebSocket.OPEN && old.close(1000, 'migrated'), LEAVE_CLOSE_MS);
    }
    this.participantId = null;
    this.#handle(joined);
  }

  #parse(data, then) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      console.warn('signaling: unparsable frame', data);
      return;
    }
    then(msg);
  }

  #handleClose(ev) {
    if (this.left || this.closed || this.fatal) {
      this.#setStatus('closed', { fatal: this.fatal });
      return;
    }
    if (!this.participantId) {
      // Never got in: nothing to resume. The join fails with what we know.
      this.#setStatus('closed');
      this.pendingJoin?.reject(
        Object.assign(new Error(`Could not connect to the meeting server (code ${ev.code}).`), {
          code: 'connect_failed',
        }),
      );
      this.pendingJoin = null;
      return;
    }
    const delay = BACKOFF_MS[this.attempt] ?? BACKOFF_STEADY_MS;
    this.attempt += 1;
    this.#setStatus('reconnecting', { attempt: this.attempt, delayMs: delay });
    this.#later(() => {
      if (this.closed || this.left) return;
      this.#open({
        type: 'resume',
        token: this.token,
        participant_id: this.participantId,
        resume_secret: this.resumeSecret,
      });
    }, delay);
  }

  #keepAlive(ws) {
    if (ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
    if (performance.now() - this.lastRxAt > SILENCE_TIMEOUT_MS) {
      ws.close(4001, 'silent');
      return;
    }
    ws.send(JSON.stringify({ type: 'ping', ts: Date.now() }));
  }

  #setStatus(status, detail = {}) {
    if (status === this.status && status !== 'reconnecting') return;
    this.status = status;
    this.onStatus?.(status, detail);
  }

  #later(fn, ms) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }
}

/** The signaling URL of the edge that served this page. */
export function signalingUrl(loc = location) {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/v1/rtc`;
}
