-- lib/config.lua — the settings the scripts read from the environment,
-- parsed once per script generation (a reload re-reads them). A malformed
-- value raises, so the generation is refused with the reason logged and the
-- old one keeps serving.
--
-- Every variable the scripts read (the host reads its own: see host/base/config.h):
--
--   PUBLIC_URL              http://localhost:$PORT  base of the links in mails (no trailing /)
--   PORT                    5000      only to build the PUBLIC_URL default
--   ACCESS_TOKEN_TTL_S      900       access token lifetime (15 min)
--   REFRESH_TOKEN_TTL_S     2592000   refresh token lifetime (30 days; a refresh extends the session by it)
--   SESSION_MAX_AGE_S       2592000   a session's absolute lifetime from its login (30 days)
--   CONFIRM_TOKEN_TTL_S     86400     email confirmation link lifetime (24 h)
--   RESET_TOKEN_TTL_S       1800      password reset link lifetime (30 min)
--   LOGIN_FAILURE_LIMIT     20        failed logins per email per window before 429
--   LOGIN_FAILURE_WINDOW_S  900       that window (15 min)
--   MAIL_RATE_LIMIT         5         mails per address and kind per window before 429
--   MAIL_RATE_WINDOW_S      900       that window (15 min)
--   CLIENT_HASH_BUDGET_PER_MIN 60     password-hashing requests without a token per
--                                     client address per minute (0: no budget)
--   MAIL_GROUP              moonkeep  the servers that send each other's mail: a server queues its
--                                     mail in this group and sends only this group's (every
--                                     replica of a deployment shares it)
--   MAIL_POLL_S             1         how often each worker looks for due mails (the `mail` job)
--   MAIL_BATCH              50        mails one round of the job sends at most
--   MAIL_RETRY_MAX          8         delivery attempts of a mail before it is given up
--   MAIL_BACKOFF_MAX_S      300       longest wait between two attempts (1 s doubling)
--   MAIL_LEASE_S            120       how long a claimed mail is a worker's before another
--                                     may take it (more than MAIL_TIMEOUT_S)
--   RETENTION_SWEEP_S       600       how often the retention sweeper runs (the `retention` job)
--   RETENTION_BATCH         1000      rows deleted per batch (one short transaction)
--   RETENTION_MAX_BATCHES   100       batches per table per sweep
--   RETENTION_SESSIONS_S    604800    sessions kept after they expire or are revoked (7 days)
--   RETENTION_TOKENS_S      86400     link tokens kept after they expire or are used (1 day)
--   RETENTION_RATE_LIMITS_S 86400     rate-limit windows kept after they start (1 day;
--                                     at least the longest window)
--   RETENTION_MAIL_S        604800    outbox rows kept after they are sent or given up (7 days)
--   AUDIT_RETENTION_DAYS    365       audit events kept (a year)
--   CURSOR_SECRET           $JWT_SECRET  HMAC key of pagination cursors
--   JWT_SECRET              (none)    only as the default of CURSOR_SECRET
--   SWAGGER_UI_DIR          vendor/node_modules/swagger-ui-dist
--                                     where GET /apidocs/<file> reads Swagger UI's assets
--   SERVICE_NAME            moonkeep  the "service" of GET /
local tonumber, tostring, error, format = tonumber, tostring, error, string.format
local match, gsub = string.match, string.gsub

local config = {}

-- Builds the settings from `getenv` (os.getenv, or a table lookup in specs).
function config.load(getenv)
  local function str(name, default)
    local v = getenv(name)
    if v == nil or v == "" then return default end
    return v
  end

  local function int(name, default, min, max)
    local v = getenv(name)
    if v == nil or v == "" then return default end
    local n = match(v, "^%s*(%d+)%s*$") and tonumber(v)
    if not n or n < min or n > max then
      error(format("config: %s=%s is not a whole number in %d..%d", name, tostring(v), min, max), 0)
    end
    return n
  end

  local DAY = 86400
  local c = {
    service_name = str("SERVICE_NAME", "moonkeep"),
    public_url = gsub(str("PUBLIC_URL", "http://localhost:" .. str("PORT", "5000")), "/+$", ""),
    access_ttl = int("ACCESS_TOKEN_TTL_S", 900, 1, DAY),
    refresh_ttl = int("REFRESH_TOKEN_TTL_S", 30 * DAY, 60, 3650 * DAY),
    session_max_age = int("SESSION_MAX_AGE_S", 30 * DAY, 1, 3650 * DAY),
    confirm_ttl = int("CONFIRM_TOKEN_TTL_S", DAY, 60, 365 * DAY),
    reset_ttl = int("RESET_TOKEN_TTL_S", 1800, 60, 7 * DAY),
    login_failure_limit = int("LOGIN_FAILURE_LIMIT", 20, 1, 1000000),
    login_failure_window = int("LOGIN_FAILURE_WINDOW_S", 900, 1, 365 * DAY),
    mail_rate_limit = int("MAIL_RATE_LIMIT", 5, 1, 1000000),
    mail_rate_window = int("MAIL_RATE_WINDOW_S", 900, 1, 365 * DAY),
    client_hash_budget = int("CLIENT_HASH_BUDGET_PER_MIN", 60, 0, 1000000),
    mail_group = str("MAIL_GROUP", "moonkeep"),
    mail_poll = int("MAIL_POLL_S", 1, 1, 3600),
    mail_batch = int("MAIL_BATCH", 50, 1, 10000),
    mail_retry_max = int("MAIL_RETRY_MAX", 8, 1, 100),
    mail_backoff_max = int("MAIL_BACKOFF_MAX_S", 300, 1, DAY),
    mail_lease = int("MAIL_LEASE_S", 120, 10, DAY),
    retention_sweep = int("RETENTION_SWEEP_S", 600, 1, DAY),
    retention_batch = int("RETENTION_BATCH", 1000, 1, 100000),
    retention_max_batches = int("RETENTION_MAX_BATCHES", 100, 1, 1000000),
    retention_sessions = int("RETENTION_SESSIONS_S", 7 * DAY, 0, 3650 * DAY),
    retention_tokens = int("RETENTION_TOKENS_S", DAY, 0, 3650 * DAY),
    retention_rate_limits = int("RETENTION_RATE_LIMITS_S", DAY, 0, 3650 * DAY),
    retention_mail = int("RETENTION_MAIL_S", 7 * DAY, 0, 3650 * DAY),
    retention_audit = int("AUDIT_RETENTION_DAYS", 365, 1, 36500) * DAY,
    cursor_secret = str("CURSOR_SECRET", str("JWT_SECRET")),
    swagger_ui_dir = str("SWAGGER_UI_DIR", "vendor/node_modules/swagger-ui-dist"),
  }
  -- a window deleted before it ends would forget its count
  local longest = math.max(c.login_failure_window, c.mail_rate_window, 60)
  if c.retention_rate_limits < longest then
    error(format("config: RETENTION_RATE_LIMITS_S=%d is shorter than the longest rate-limit window (%d s)",
                 c.retention_rate_limits, longest), 0)
  end
  return c
end

-- The module is the settings of this process, plus `load` for specs that
-- want other values (spec/support/kit.lua).
local settings = config.load(os.getenv)
settings.load = config.load
return settings
