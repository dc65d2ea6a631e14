// Shared by the terminal pages: the credential and the phoenix socket (docs/terminals.md, "In a browser").
import { Socket } from "/web/vendor/phoenix.mjs";

const TOKEN_KEY = "parley.token";

/**
 * The credential for the socket: `#token=…` in the URL (then kept in localStorage and removed from the
 * address bar), else the one kept earlier, else null (fine on a hub without authentication).
 */
export function readToken() {
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (match) {
    const token = decodeURIComponent(match[1]);
    try {
      localStorage.setItem(TOKEN_KEY, token);
    } catch {
      // storage may be disabled; the token still works for this page
    }
    history.replaceState(null, "", location.pathname + location.search);
    return token || null;
  }
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/**
 * A phoenix Socket on this hub. onRefused(message) is called when connecting fails and the hub says the
 * credential is missing or wrong (a browser never sees the socket's HTTP status, so the page asks the API).
 */
export function openSocket(token, { onRefused } = {}) {
  const socket = new Socket("/socket", { params: () => (token ? { token } : {}) });
  // Asked once per outage; again after the next successful open (an access token may expire meanwhile).
  let asked = false;
  socket.onOpen(() => {
    asked = false;
  });
  socket.onError(async () => {
    if (asked || !onRefused) {
      return;
    }
    asked = true;
    try {
      const response = await fetch("/api/terminals", { headers: token ? { authorization: `Bearer ${token}` } : {} });
      if (response.status === 401 || response.status === 403) {
        onRefused(token
          ? "The hub refused this token. Open the page as …#token=<a valid token> (an API key, or the access token `parley login --json` prints)."
          : "The hub needs a credential. Open the page as …#token=<your token> (an API key, or the access token `parley login --json` prints).");
      } else {
        asked = false;
      }
    } catch {
      asked = false;
    }
  });
  socket.connect();
  return socket;
}

/** "3 s ago", "5 min ago" for a Unix-ms time. */
export function ago(ms) {
  if (!ms) {
    return "never";
  }
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

/** 1536 → "1.5 KiB". */
export function bytes(n) {
  if (n < 1024) return `${Math.round(n)} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A new element with a class and text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
