// Inline SVG icons (24x24, stroke style). Inline rather than an icon font or sprite file so
// the page needs nothing but these modules, works offline and inherits `currentColor`.

const STROKE =
  'fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"';

const PATHS = {
  mic: '<rect x="9" y="2.5" width="6" height="12" rx="3"/><path d="M5 11a7 7 0 0 0 14 0M12 18v3.5M8.5 21.5h7"/>',
  micOff:
    '<path d="M15 9.5V5.5a3 3 0 0 0-5.7-1.3M9 9v2.5a3 3 0 0 0 5.1 2.1M19 11a7 7 0 0 1-1.2 3.9M5 11a7 7 0 0 0 11.3 5.5M12 18v3.5M8.5 21.5h7M3 3l18 18"/>',
  cam: '<rect x="2.5" y="6" width="13" height="12" rx="2.5"/><path d="M15.5 10.5l6-3.5v10l-6-3.5z"/>',
  camOff:
    '<path d="M9 6h4a2.5 2.5 0 0 1 2.5 2.5v2l6-3.5v10l-2.2-1.3M15.5 15.5a2.5 2.5 0 0 1-2.5 2.5H5A2.5 2.5 0 0 1 2.5 15.5v-7A2.5 2.5 0 0 1 5 6M3 3l18 18"/>',
  present:
    '<rect x="2.5" y="4" width="19" height="13" rx="2"/><path d="M8 21h8M12 17v4M12 13.5V7.5M9.2 10.2L12 7.5l2.8 2.7"/>',
  stopPresent:
    '<rect x="2.5" y="4" width="19" height="13" rx="2"/><path d="M8 21h8M12 17v4M9.5 8l5 5M14.5 8l-5 5"/>',
  chat: '<path d="M20 15.5a2 2 0 0 1-2 2H8l-4.5 4V5.5a2 2 0 0 1 2-2H18a2 2 0 0 1 2 2z"/><path d="M8 9h8M8 12.5h5"/>',
  leave:
    '<path d="M12 9.5c-3.8 0-7.3 1.2-9.2 3.1a1.2 1.2 0 0 0 0 1.7l2 2a1.2 1.2 0 0 0 1.6.1l2.1-1.6a1.2 1.2 0 0 0 .5-1v-2a12 12 0 0 1 6 0v2a1.2 1.2 0 0 0 .5 1l2.1 1.6a1.2 1.2 0 0 0 1.6-.1l2-2a1.2 1.2 0 0 0 0-1.7C19.3 10.7 15.8 9.5 12 9.5z"/>',
  pin: '<path d="M9 3.5h6M10 3.5v5.5l-3 3.5v1.5h10v-1.5L14 9V3.5M12 14v6.5"/>',
  people:
    '<circle cx="9" cy="8" r="3.5"/><path d="M2.5 20.5v-1a5 5 0 0 1 5-5h3a5 5 0 0 1 5 5v1"/><path d="M16 4.7a3.5 3.5 0 0 1 0 6.6M18.5 14.6a5 5 0 0 1 3 4.9v1"/>',
  link: '<path d="M10 14a4.5 4.5 0 0 0 6.4.4l3-3a4.5 4.5 0 0 0-6.4-6.4l-1.4 1.4"/><path d="M14 10a4.5 4.5 0 0 0-6.4-.4l-3 3a4.5 4.5 0 0 0 6.4 6.4l1.4-1.4"/>',
  send: '<path d="M21.5 2.5L11 13M21.5 2.5l-6.5 19-4-8.5-8.5-4z"/>',
  close: '<path d="M6 6l12 12M18 6L6 18"/>',
  volumeOff: '<path d="M11 5L6 9H2.5v6H6l5 4zM22 9l-6 6M16 9l6 6"/>',
  fullscreen: '<path d="M3 8.5V3h5.5M21 8.5V3h-5.5M3 15.5V21h5.5M21 15.5V21h-5.5"/>',
  info: '<circle cx="12" cy="12" r="9.5"/><path d="M12 11v5.5M12 7.5v.1"/>',
  alert: '<path d="M12 3l10 18H2z"/><path d="M12 10v4.5M12 17.5v.1"/>',
};

/** The SVG markup of icon `name`, for innerHTML. Decorative: screen readers use the button label. */
export function icon(name, cls = '') {
  const body = PATHS[name];
  if (!body) throw new Error(`unknown icon ${name}`);
  return `<svg class="icon ${cls}" viewBox="0 0 24 24" width="24" height="24" aria-hidden="true" ${STROKE}>${body}</svg>`;
}

/** Signal-strength bars for the connection-quality indicator; `level` is 0..4. */
export function bars(level) {
  let out = '<svg class="bars" viewBox="0 0 20 16" width="20" height="16" aria-hidden="true">';
  for (let i = 0; i < 4; i++) {
    const h = 4 + i * 3.5;
    const on = i < level ? ' on' : '';
    out += `<rect class="bar${on}" x="${1 + i * 5}" y="${15 - h}" width="3.2" height="${h}" rx="1"/>`;
  }
  return out + '</svg>';
}

/** Stable colour for a participant's avatar, from its id. */
export function avatarColor(seed) {
  let h = 0;
  for (const ch of String(seed)) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  const hues = [210, 260, 330, 20, 160, 190, 290, 40];
  return `hsl(${hues[h % hues.length]} 45% 42%)`;
}

/** One or two initials for an avatar. */
export function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
  if (parts.length === 0) return '?';
  const first = [...parts[0]][0] || '?';
  const second = parts.length > 1 ? [...parts[parts.length - 1]][0] : '';
  return (first + second).toUpperCase();
}
