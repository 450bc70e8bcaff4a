// The in-call chat panel.
//
// The edge echoes every message to everyone, the sender included; that echo (with its `id`)
// is the delivery confirmation. Until it arrives our own message shows as "Sending…". Errors
// (too long, rate limited, not allowed) are not tied to a message by the protocol, so they
// fail the oldest message still waiting.

const DEFAULT_MAX_LEN = 2000;
/** Consecutive messages from one sender within this window share one header. */
const GROUP_WINDOW_MS = 5 * 60_000;
/** Messages kept in the DOM (the edge keeps the last 100 as history). */
const MAX_RENDERED = 500;
/** Show the remaining-characters counter past this fraction of the limit. */
const COUNTER_FROM = 0.9;

const ERROR_TEXT = {
  chat_too_long: (max) => `That message is too long (at most ${max} characters).`,
  rate_limited: () => 'You are sending messages too fast. Wait a moment and try again.',
  permission_denied: () => 'You are not allowed to send messages in this meeting.',
};

export class ChatPanel {
  /**
   * @param {HTMLElement} root  the #chat-panel element
   * @param {{send(text: string): boolean, onUnread(count: number): void, onClose(): void}} hooks
   */
  constructor(root, hooks) {
    this.root = root;
    this.hooks = hooks;
    this.list = root.querySelector('.chat-list');
    this.form = root.querySelector('.chat-form');
    this.input = root.querySelector('textarea');
    this.errorEl = root.querySelector('.chat-error');
    this.countEl = root.querySelector('.chat-count');
    this.emptyEl = root.querySelector('.chat-empty');
    this.maxLen = DEFAULT_MAX_LEN;
    this.selfId = null;
    this.pending = []; // our messages waiting for their echo: { text, el }
    this.unread = 0;
    this.last = null; // { participantId, ts } of the last rendered message, for grouping

    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.#submit();
    });
    this.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.#submit();
      }
    });
    this.input.addEventListener('input', () => this.#onInput());
    root.querySelector('.chat-close').addEventListener('click', () => hooks.onClose());
  }

  get isOpen() {
    return !this.root.hidden;
  }

  setOpen(open) {
    this.root.hidden = !open;
    if (open) {
      this.unread = 0;
      this.hooks.onUnread(0);
      this.#scrollToEnd(true);
      this.input.focus({ preventScroll: true });
    }
  }

  /** Starts over from a snapshot (`joined.chat` / `resumed.chat`). */
  reset({ selfId, history, maxLen }) {
    this.selfId = selfId;
    this.maxLen = maxLen || DEFAULT_MAX_LEN;
    this.input.maxLength = this.maxLen;
    this.list.replaceChildren();
    this.last = null;
    const waiting = this.pending;
    this.pending = [];
    for (const m of history || []) this.add(m, { quiet: true });
    // A message whose echo was lost with the old socket may still have made it: the history
    // says so. The others never reached the edge; keep them visible as failed.
    const delivered = new Set((history || []).filter((m) => m.participant_id === selfId).map((m) => m.text));
    for (const p of waiting) {
      if (!delivered.has(p.text)) this.#renderFailed(p.text, 'Not sent: the connection dropped.');
    }
    this.#updateEmpty();
  }

  /** A `chat` message from the edge. */
  add(message, { quiet = false } = {}) {
    const mine = message.participant_id === this.selfId;
    if (mine) {
      const i = this.pending.findIndex((p) => p.text === message.text);
      if (i >= 0) {
        const [p] = this.pending.splice(i, 1);
        p.el.remove();
      }
    }
    const nearEnd = this.#isNearEnd();
    this.#render(message, { mine });
    this.#trim();
    this.#updateEmpty();
    if (!quiet && !mine && !this.isOpen) {
      this.unread += 1;
      this.hooks.onUnread(this.unread);
    }
    this.#scrollToEnd(mine || nearEnd);
  }

  /** A chat-related `error` from the edge: shown inline, and it fails the oldest pending message. */
  handleError(msg) {
    const text = (ERROR_TEXT[msg.code] ?? (() => msg.message || 'The message could not be sent.'))(this.maxLen);
    this.#showError(text);
    const p = this.pending.shift();
    if (p) {
      p.el.classList.remove('pending');
      p.el.classList.add('failed');
      p.el.querySelector('.chat-status').textContent = 'Not sent';
    }
  }

  #submit() {
    const text = this.input.value.trim();
    if (!text) return;
    if ([...text].length > this.maxLen) {
      this.#showError(ERROR_TEXT.chat_too_long(this.maxLen));
      return;
    }
    if (!this.hooks.send(text)) {
      this.#showError('You are offline. The message will not be sent until you reconnect.');
      return;
    }
    this.#showError('');
    this.input.value = '';
    this.#onInput();
    const el = this.#render(
      { participant_id: this.selfId, name: 'You', text, ts_ms: Date.now() },
      { mine: true, pending: true },
    );
    this.pending.push({ text, el });
    this.#updateEmpty();
    this.#scrollToEnd(true);
  }

  #onInput() {
    const used = [...this.input.value].length;
    const left = this.maxLen - used;
    this.countEl.textContent = used >= this.maxLen * COUNTER_FROM ? `${left} left` : '';
    this.countEl.classList.toggle('over', left < 0);
    // Grow with the text, up to the CSS max-height.
    this.input.style.height = 'auto';
    this.input.style.height = `${this.input.scrollHeight}px`;
    if (this.errorEl.textContent && used <= this.maxLen) this.#showError('');
  }

  #render(message, { mine, pending = false }) {
    const ts = Number(message.ts_ms) || Date.now();
    const grouped =
      !pending &&
      this.last &&
      this.last.participantId === message.participant_id &&
      ts - this.last.ts < GROUP_WINDOW_MS;
    const li = document.createElement('li');
    li.className = 'chat-msg';
    li.classList.toggle('mine', mine);
    li.classList.toggle('pending', pending);
    li.classList.toggle('grouped', !!grouped);
    if (message.id) li.dataset.id = message.id;
    if (!grouped) {
      const head = document.createElement('div');
      head.className = 'chat-head';
      const who = document.createElement('span');
      who.className = 'chat-name';
      who.textContent = mine ? 'You' : message.name || message.identity || 'Guest';
      const when = document.createElement('time');
      when.className = 'chat-time';
      when.dateTime = new Date(ts).toISOString();
      when.textContent = formatTime(ts);
      head.append(who, when);
      li.append(head);
    }
    const body = document.createElement('div');
    body.className = 'chat-text';
    appendLinkified(body, String(message.text ?? ''));
    const status = document.createElement('div');
    status.className = 'chat-status';
    status.textContent = pending ? 'Sending…' : '';
    li.append(body, status);
    this.list.append(li);
    if (!pending) this.last = { participantId: message.participant_id, ts };
    return li;
  }

  #renderFailed(text, why) {
    const el = this.#render({ participant_id: this.selfId, text, ts_ms: Date.now() }, { mine: true, pending: true });
    el.classList.replace('pending', 'failed');
    el.querySelector('.chat-status').textContent = why;
  }

  #showError(text) {
    this.errorEl.textContent = text;
    this.errorEl.hidden = !text;
  }

  #trim() {
    while (this.list.childElementCount > MAX_RENDERED) this.list.firstElementChild.remove();
  }

  #updateEmpty() {
    if (this.emptyEl) this.emptyEl.hidden = this.list.childElementCount > 0;
  }

  #isNearEnd() {
    const l = this.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 60;
  }

  #scrollToEnd(force) {
    if (force) this.list.scrollTop = this.list.scrollHeight;
  }
}

function formatTime(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** Appends `text` with http(s) URLs as links, building nodes (never innerHTML: it is untrusted). */
function appendLinkified(el, text) {
  const re = /\bhttps?:\/\/[^\s<>"]+/g;
  let at = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > at) el.append(text.slice(at, m.index));
    const a = document.createElement('a');
    a.href = m[0];
    a.textContent = m[0];
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    el.append(a);
    at = m.index + m[0].length;
  }
  if (at < text.length) el.append(text.slice(at));
}
