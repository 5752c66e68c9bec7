// api.js — every request the console makes, and the session it holds.
//
// The session (access token, refresh token, the admin) lives in this
// module's memory and nowhere else: no cookie, no localStorage, no
// sessionStorage, never in a URL. A reload or a new tab starts logged out.
// That is the trade chosen (docs/console.md): with no cookie there is no
// request the browser authenticates by itself, so no CSRF surface, and
// nothing is left at rest for another script or person to read later. The
// refresh token stays in memory too and renews the access token before it
// expires (POST /auth/refresh rotates it; one renewal at a time, since a
// rotated token used twice ends the whole session).

const NETWORK_MESSAGE = "The server could not be reached. Check the connection and try again.";
export const SESSION_ENDED = "Your session has ended. Log in again.";

// An answer other than 2xx, as the API describes it (API.md, error format):
// status, code, message, and fields (which field, and why) on 422 and 409.
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const err = (body && body.error) || {};
    super(err.message || (status ? `The server answered ${status}.` : NETWORK_MESSAGE));
    this.status = status;
    this.code = err.code || (status ? "unknown" : "network");
    this.fields = err.fields || null;
    this.retryAfter = retryAfter ? Number(retryAfter) : null;
  }
}

function url(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

// One request; the parsed JSON body (null for 204), or throws ApiError.
async function send(method, path, { body, query, token } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(url(path, query), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", cache: "no-store", redirect: "error", referrerPolicy: "no-referrer",
    });
  } catch {
    throw new ApiError(0, null);
  }
  let data = null;
  const text = res.status === 204 ? "" : await res.text().catch(() => "");
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) throw new ApiError(res.status, data, res.headers.get("Retry-After"));
  return data;
}

// ---- the session ----------------------------------------------------------

let session = null; // {access, refresh, admin, renewAt (ms)}
let renewing = null; // the one renewal in flight
const listeners = new Set();

function emit(reason) {
  for (const fn of listeners) fn(session, reason);
}

// fn(session or null, reason): called when the session starts, changes
// (the admin was edited) or ends (reason: a message for the login screen).
export function onSession(fn) {
  listeners.add(fn);
}

export function current() {
  return session;
}

// Renew a little before the access token expires: a minute early, or a
// quarter of its life when that is shorter (a server with short tokens).
function start(tokens) {
  const life = Number(tokens.expires_in) || 60;
  session = {
    access: tokens.access_token,
    refresh: tokens.refresh_token,
    admin: tokens.admin,
    renewAt: Date.now() + Math.max(life - 60, life * 0.75) * 1000,
  };
  emit(null);
}

// Forget the tokens. `reason` (or null) is shown on the login screen.
export function end(reason) {
  const had = session !== null;
  session = null;
  if (had) emit(reason);
}

export function setAdmin(admin) {
  if (!session) return;
  session.admin = admin;
  emit(null);
}

function ended() {
  return new ApiError(401, { error: { code: "session_ended", message: SESSION_ENDED } });
}

// Rotates the refresh token once, however many requests are waiting on it.
// A refused refresh (revoked, expired, reused) ends the session; a network
// failure keeps it, so the next action tries again.
function renew() {
  if (!renewing) {
    const was = session;
    renewing = (async () => {
      try {
        const tokens = await send("POST", "/auth/refresh", { body: { refresh_token: was.refresh } });
        if (session === was) start(tokens);
      } catch (e) {
        if (e.status === 400 || e.status === 401) {
          if (session === was) end(SESSION_ENDED);
          throw ended();
        }
        throw e;
      } finally {
        renewing = null;
      }
    })();
  }
  return renewing;
}

// A request with the access token: renewed first when it is about to
// expire, and once more (then retried) when the server says it has.
export async function call(method, path, opts = {}) {
  if (!session) throw ended();
  if (Date.now() >= session.renewAt) await renew();
  if (!session) throw ended();
  try {
    return await send(method, path, { ...opts, token: session.access });
  } catch (e) {
    // invalid_credentials is a wrong current_password, not a lost session
    if (e.status !== 401 || (e.code !== "token_expired" && e.code !== "unauthorized")) throw e;
  }
  await renew();
  try {
    return await send(method, path, { ...opts, token: session.access });
  } catch (e) {
    if (e.status === 401 && e.code !== "invalid_credentials") end(SESSION_ENDED);
    throw e;
  }
}

// A request without a token (login, register, the mailed links).
export function anonymous(method, path, body) {
  return send(method, path, { body });
}

// ---- what the screens use -------------------------------------------------

export async function login(email, password) {
  start(await send("POST", "/auth/login", { body: { email, password } }));
}

// Logs out this session (or, with `everywhere`, every session of the
// admin). The tokens are forgotten here whatever the server answers.
export async function logout(everywhere) {
  try {
    await call("POST", "/auth/logout", { query: everywhere ? { all: "true" } : undefined });
    end(everywhere ? "You are logged out everywhere." : "You are logged out.");
  } catch (e) {
    end(e.status === 401 ? SESSION_ENDED : "You are logged out here, but the server could not be told: "
      + "the session's refresh token stays valid on the server until it expires.");
  }
}
