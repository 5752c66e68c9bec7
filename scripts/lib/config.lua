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
    cursor_secret = str("CURSOR_SECRET", str("JWT_SECRET")),
    swagger_ui_dir = str("SWAGGER_UI_DIR", "vendor/node_modules/swagger-ui-dist"),
  }
  return c
end

-- The module is the settings of this process, plus `load` for specs that
-- want other values (spec/support/kit.lua).
local settings = config.load(os.getenv)
settings.load = config.load
return settings
