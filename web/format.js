// format.js: numbers and durations for people.

/** 950 -> "950 ms", 1234 -> "1.2 s", 65000 -> "1 m 05 s". */
export function formatMs(ms) {
  if (!Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 10000) return `${(ms / 1000).toFixed(1)} s`;
  return formatUptime(ms);
}

/** An uptime: "42 s", "3 m 07 s", "2 h 05 m", "4 d 03 h". */
export function formatUptime(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  const s = Math.floor(ms / 1000);
  const pad = (n) => String(n).padStart(2, '0');
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} m ${pad(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${pad(Math.floor(s / 60) % 60)} m`;
  return `${Math.floor(s / 86400)} d ${pad(Math.floor(s / 3600) % 24)} h`;
}

/** 1234567 -> "1,234,567" (the reader's locale). */
export function formatCount(n) {
  return Number.isFinite(n) ? n.toLocaleString() : '–';
}

/** A wall-clock time "12:03:04". */
export function clock(date = new Date()) {
  return date.toLocaleTimeString([], { hour12: false });
}

/** 16777216 -> "16 MiB", 1536 -> "1.5 KiB", 100 -> "100 B" (short: it fits a table column). */
export function formatBytes(n) {
  if (!Number.isFinite(n) || n < 0) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 || Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}

/** An ISO 8601 time as the reader's local date and time, or the text as it came. */
export function formatDate(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString([], { hour12: false });
}
