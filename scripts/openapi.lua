-- openapi.lua — the OpenAPI 3.0.3 document of every route, as Lua data
-- (served as GET /openapi.json). app.self_check refuses a script generation
-- whose router and document disagree (openapi.check), so a route cannot be
-- added without documenting it, nor documented without existing.
--
-- JSON notes: tables that must be JSON arrays even when empty are marked with
-- json.array; cjson.null is JSON null.
local json = require "host.json"
local cjson = require "cjson.safe"
local info = require "host.info"
local config = require "lib.config"
local audit = require "lib.audit"

local pairs, ipairs, sort, concat, upper, format = pairs, ipairs, table.sort, table.concat,
  string.upper, string.format
local array, null = json.array, cjson.null

local openapi = {}

-- ---- building blocks ----------------------------------------------------------

local function schema(name) return {["$ref"] = "#/components/schemas/" .. name} end
local function response(name) return {["$ref"] = "#/components/responses/" .. name} end
local function parameter(name) return {["$ref"] = "#/components/parameters/" .. name} end

local function json_body(s, example)
  return {["application/json"] = {schema = s, example = example}}
end

local TS = "2026-12-01T13:45:00Z"
local EXAMPLE = {
  admin = {id = 1, email = "ada@example.com", name = "ada", confirmed = true, created_at = TS, updated_at = TS},
  user = {id = 42, email = "grace@example.com", name = "Grace Hopper", active = true, created_by = 1,
          created_at = TS, updated_at = TS},
  access = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIiwic2lkIjoiNyIsInR5cCI6ImFjY2VzcyJ9.c2lnbmF0dXJl",
  refresh = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIiwic2lkIjoiNyIsInR5cCI6InJlZnJlc2gifQ.c2lnbmF0dXJl",
  cursor = "dXNlcnM6NDI.3f1c0e0b9a7d4c2e8f6a5b4c3d2e1f00",
}

local function error_example(code, message, fields)
  return {error = {code = code, message = message, fields = fields}}
end

-- Error responses by status; every operation lists the ones it can answer.
local ERRORS = {
  ["304"] = "NotModified", ["400"] = "BadRequest", ["401"] = "Unauthorized", ["403"] = "NotConfirmed",
  ["404"] = "NotFound", ["405"] = "MethodNotAllowed", ["409"] = "Conflict",
  ["413"] = "PayloadTooLarge", ["415"] = "UnsupportedMediaType",
  ["422"] = "ValidationFailed", ["429"] = "RateLimited", ["500"] = "Internal",
  ["503"] = "Unavailable",
}

-- op{id=, summary=, description=, tag=, auth=, params=, body=, ok=, errors=}
--   body   {schema name, example}: a JSON request body (adds 400/413/415/422)
--   ok     {status, description, content (or nil)}
--   errors extra statuses; 500 always, 401 with auth, 503 with db ~= false
local function op(t)
  local o = {
    operationId = t.id,
    summary = t.summary,
    description = t.description,
    tags = array({t.tag}),
    responses = {[t.ok[1]] = {description = t.ok[2], content = t.ok[3], headers = t.ok[4]}},
  }
  if t.params then o.parameters = array(t.params) end
  if t.auth then o.security = array({{bearerAuth = array()}}) end
  if t.security then o.security = t.security end
  local statuses = {"500"}
  if t.db ~= false then statuses[#statuses + 1] = "503" end
  if t.auth then statuses[#statuses + 1] = "401" end
  if t.body then
    o.requestBody = {required = t.body.optional ~= true, content = json_body(schema(t.body[1]), t.body[2])}
    for _, s in ipairs({"400", "413", "415", "422"}) do statuses[#statuses + 1] = s end
  end
  for _, s in ipairs(t.errors or {}) do statuses[#statuses + 1] = s end
  for _, s in ipairs(statuses) do
    o.responses[s] = o.responses[s] or response(ERRORS[s])
  end
  return o
end

local function ok_json(status, description, schema_name, example)
  return {status, description, json_body(schema(schema_name), example)}
end

local HTML = {["text/html"] = {schema = {type = "string"}}}

-- ---- schemas ---------------------------------------------------------------------

local EMAIL = {type = "string", format = "email", maxLength = 254, pattern = "^[ -~]+$",
               description = "ASCII only (other characters: 422), trimmed, and letters lower-cased: the one "
                 .. "canonical form every lookup, unique index and limit uses; one @ and a dotted domain."}
local ADMIN_NAME = {type = "string", minLength = 3, maxLength = 32, pattern = "^[A-Za-z0-9_.-]{3,32}$",
                    description = "Letters, digits, _ - and .; unique among admins, case-insensitively."}
local PASSWORD = {type = "string", format = "password", minLength = 8, maxLength = 128,
                  description = "8 to 128 characters (Unicode code points); not the email or the name."}
local ID = {type = "integer", format = "int64", minimum = 1}
local TIMESTAMP = {type = "string", format = "date-time", example = TS}
local HASH_BUDGET = " Shares the per-client-address budget of the routes that hash a password without a token "
  .. "(CLIENT_HASH_BUDGET_PER_MIN, 60 per minute; the client is the socket peer, or the right-most "
  .. "X-Forwarded-For entry that is not in TRUSTED_PROXIES when the peer is): 429 past it."
local IGNORED = "Fields not listed here are ignored."

local SCHEMAS = {
  Error = {
    type = "object", required = array({"error"}),
    properties = {
      error = {
        type = "object", required = array({"code", "message"}),
        properties = {
          code = {type = "string", description = "Stable, machine-readable.",
                  enum = array({"bad_request", "invalid_json", "invalid_token", "unauthorized",
                                "invalid_credentials", "token_expired", "account_not_confirmed",
                                "not_found", "method_not_allowed", "conflict", "payload_too_large",
                                "unsupported_media_type", "validation_failed", "rate_limited",
                                "internal", "unavailable", "request_timeout", "headers_too_large"})},
          message = {type = "string", description = "For people; may change."},
          fields = {type = "object", additionalProperties = {type = "string"},
                    description = "Present for validation_failed (and conflict): which field, and why."},
        },
      },
    },
    example = error_example("validation_failed", "some fields are not valid",
                            {email = "is not a valid email address"}),
  },
  Admin = {
    type = "object",
    required = array({"id", "email", "name", "confirmed", "created_at", "updated_at"}),
    properties = {
      id = ID, email = EMAIL, name = ADMIN_NAME,
      confirmed = {type = "boolean", description = "The email address has been confirmed."},
      created_at = TIMESTAMP, updated_at = TIMESTAMP,
    },
    example = EXAMPLE.admin,
  },
  User = {
    type = "object",
    required = array({"id", "email", "name", "active", "created_by", "created_at", "updated_at"}),
    properties = {
      id = ID, email = EMAIL,
      name = {type = "string", maxLength = 100, nullable = true},
      active = {type = "boolean"},
      created_by = {type = "integer", format = "int64", nullable = true,
                    description = "The admin who created the user; null once that admin is deleted."},
      created_at = TIMESTAMP, updated_at = TIMESTAMP,
    },
    example = EXAMPLE.user,
  },
  Tokens = {
    type = "object",
    required = array({"access_token", "refresh_token", "token_type", "expires_in", "admin"}),
    properties = {
      access_token = {type = "string", description = "JWT (HS256), typ access; send as Authorization: Bearer."},
      refresh_token = {type = "string", description = "JWT (HS256), typ refresh; single use: each refresh returns a new one."},
      token_type = {type = "string", enum = array({"Bearer"})},
      expires_in = {type = "integer", description = "Seconds until the access token expires."},
      admin = schema("Admin"),
    },
    example = {access_token = EXAMPLE.access, refresh_token = EXAMPLE.refresh, token_type = "Bearer",
               expires_in = 900, admin = EXAMPLE.admin},
  },
  AdminEnvelope = {type = "object", required = array({"admin"}), properties = {admin = schema("Admin")},
                   example = {admin = EXAMPLE.admin}},
  UserEnvelope = {type = "object", required = array({"user"}), properties = {user = schema("User")},
                  example = {user = EXAMPLE.user}},
  AdminList = {
    type = "object", required = array({"admins", "next_cursor"}),
    properties = {
      admins = {type = "array", items = schema("Admin")},
      next_cursor = {type = "string", nullable = true, description = "Pass as ?cursor= for the next page; null on the last."},
    },
    example = {admins = array({EXAMPLE.admin}), next_cursor = null},
  },
  UserList = {
    type = "object", required = array({"users", "next_cursor"}),
    properties = {
      users = {type = "array", items = schema("User")},
      next_cursor = {type = "string", nullable = true, description = "Pass as ?cursor= for the next page; null on the last."},
    },
    example = {users = array({EXAMPLE.user}), next_cursor = EXAMPLE.cursor},
  },
  AuditEvent = {
    type = "object",
    required = array({"id", "at", "actor_id", "action", "target_type", "target_id", "request_id", "client",
                      "detail"}),
    description = "One state change by or to an admin, recorded in the same transaction as the change.",
    properties = {
      id = ID,
      at = TIMESTAMP,
      actor_id = {type = "integer", format = "int64", nullable = true,
                  description = "The admin who made the change: the access token's, or the one who proved "
                    .. "their password (login) or refresh token (refresh). Null for an anonymous request "
                    .. "(registration, a mailed link, a refused login, a reused refresh token, an import)."},
      action = {type = "string", enum = array(audit.ACTIONS)},
      target_type = {type = "string", enum = array({"admin", "user"}), nullable = true},
      target_id = {type = "integer", format = "int64", nullable = true,
                   description = "Null for a failed login of an unknown email. The target may no longer exist."},
      request_id = {type = "string", nullable = true, description = "The X-Request-Id of the request (the "
                      .. "run's id for an import)."},
      client = {type = "string", nullable = true, description = "The client address, as in the access log."},
      detail = {type = "object", additionalProperties = true,
                description = "A small object that depends on the action (docs/audit.md): e.g. user.updated "
                  .. "has changes = {field: {old, new}} for each field that changed; never a secret."},
    },
    example = {id = 812, at = TS, actor_id = 1, action = "user.updated", target_type = "user", target_id = 42,
               request_id = "5f0c2a9e8b7d4c3e", client = "203.0.113.7",
               detail = {changes = {active = {old = true, new = false}}}},
  },
  AuditList = {
    type = "object", required = array({"events", "next_cursor"}),
    properties = {
      events = {type = "array", items = schema("AuditEvent"), description = "Newest first."},
      next_cursor = {type = "string", nullable = true, description = "Pass as ?cursor= (with the same filters) "
                       .. "for the next, older page; null on the last."},
    },
    example = {events = array({{id = 812, at = TS, actor_id = 1, action = "user.updated", target_type = "user",
               target_id = 42, request_id = "5f0c2a9e8b7d4c3e", client = "203.0.113.7",
               detail = {changes = {active = {old = true, new = false}}}}}), next_cursor = null},
  },
  Accepted = {type = "object", properties = {status = {type = "string", enum = array({"accepted"})}},
              example = {status = "accepted"}},
  Register = {
    type = "object", required = array({"email", "name", "password"}), description = IGNORED,
    properties = {email = EMAIL, name = ADMIN_NAME, password = PASSWORD},
    example = {email = "ada@example.com", name = "ada", password = "correct horse battery"},
  },
  Login = {
    type = "object", required = array({"email", "password"}), description = IGNORED,
    properties = {email = EMAIL, password = {type = "string", format = "password"}},
    example = {email = "ada@example.com", password = "correct horse battery"},
  },
  CurrentPassword = {
    type = "object", required = array({"current_password"}), description = IGNORED,
    properties = {current_password = {type = "string", format = "password"}},
    example = {current_password = "correct horse battery"},
  },
  EmailOnly = {
    type = "object", required = array({"email"}), description = IGNORED,
    properties = {email = EMAIL},
    example = {email = "ada@example.com"},
  },
  Refresh = {
    type = "object", description = "Or send the refresh token as Authorization: Bearer. " .. IGNORED,
    properties = {refresh_token = {type = "string"}},
    example = {refresh_token = EXAMPLE.refresh},
  },
  PasswordReset = {
    type = "object", required = array({"token", "password"}), description = IGNORED,
    properties = {token = {type = "string", description = "The token of the emailed link."}, password = PASSWORD},
    example = {token = "hT3v0bqgJ8tZx9JXq0nqS3Xc4a8Jk1yE0mB2Ff6dW7s", password = "a new long passphrase"},
  },
  AdminUpdate = {
    type = "object", description = "Every field is optional. current_password is required to change "
      .. "the email or the password. A new email makes the admin unconfirmed and is mailed a "
      .. "confirmation link; a new password ends every other session. " .. IGNORED,
    properties = {name = ADMIN_NAME, email = EMAIL, password = PASSWORD,
                  current_password = {type = "string", format = "password"}},
    example = {email = "ada.lovelace@example.com", current_password = "correct horse battery"},
  },
  UserCreate = {
    type = "object", required = array({"email"}), description = IGNORED,
    properties = {
      email = EMAIL,
      name = {type = "string", maxLength = 100, nullable = true},
      active = {type = "boolean", default = true},
    },
    example = {email = "grace@example.com", name = "Grace Hopper"},
  },
  UserUpdate = {
    type = "object", description = "A partial update: absent fields stay as they are; name null clears it. " .. IGNORED,
    properties = {
      email = EMAIL,
      name = {type = "string", maxLength = 100, nullable = true},
      active = {type = "boolean"},
    },
    example = {active = false},
  },
  Service = {type = "object", properties = {service = {type = "string"}, version = {type = "string"},
                                            docs = {type = "string"}},
             example = {service = "moonkeep", version = "0.1.0", docs = "/apidocs"}},
  Status = {type = "object", properties = {status = {type = "string"}, generation = {type = "integer"}},
            example = {status = "ok"}},
  Ready = {type = "object", properties = {
    status = {type = "string"},
    generation = {type = "integer", description = "The script generation this worker serves."},
    digest = {type = "string", description = "SHA-256 of that generation's scripts."},
    last_refused_at = {type = "string", format = "date-time", nullable = true,
                       description = "When a script change was last refused, if ever."},
  }},
  ScriptsStatus = {type = "object", properties = {
    worker = {type = "object", properties = {pid = {type = "integer"}, generation = {type = "integer"},
                                             digest = {type = "string"}}},
    active = {type = "object", nullable = true, properties = {id = {type = "integer"},
              digest = {type = "string"}, published_at = {type = "string", format = "date-time"}}},
    last_refused = {type = "object", nullable = true, properties = {
      at = {type = "string", format = "date-time"}, digest = {type = "string"},
      error = {type = "string", description = "file:line: message of the first error."}}},
  }},
}

local function error_response(description, example, headers)
  return {description = description, content = json_body(schema("Error"), example), headers = headers}
end

local RESPONSES = {
  NotModified = {description = "Not modified: If-None-Match names the file's current ETag (no body)."},
  BadRequest = error_response("Malformed JSON (invalid_json), a bad query parameter (bad_request), "
    .. "or a bad, expired or used link token (invalid_token).",
    error_example("bad_request", "id must be a positive whole number that fits in 64 bits")),
  Unauthorized = error_response("No, invalid, expired (token_expired) or revoked bearer token; "
    .. "or a wrong email or password at login (invalid_credentials).",
    error_example("unauthorized", "a bearer access token is required"),
    {["WWW-Authenticate"] = {schema = {type = "string", example = "Bearer"}}}),
  NotConfirmed = error_response("The admin has not confirmed the email address yet.",
    error_example("account_not_confirmed", "confirm your email address before logging in")),
  NotFound = error_response("Unknown route or id.", error_example("not_found", "no such user")),
  MethodNotAllowed = error_response("Known path, other method; Allow lists the methods.",
    error_example("method_not_allowed", "method not allowed on this resource"),
    {Allow = {schema = {type = "string", example = "GET, HEAD, OPTIONS"}}}),
  Conflict = error_response("The email (or admin name) is already in use.",
    error_example("conflict", "email is already in use", {email = "is already in use"})),
  PayloadTooLarge = error_response("The body is over the limit (64 KiB by default).",
    error_example("payload_too_large", "the request body is larger than this server accepts")),
  UnsupportedMediaType = error_response("A body that is not application/json.",
    error_example("unsupported_media_type", "send the body as application/json")),
  ValidationFailed = error_response("Well-formed JSON that breaks a field rule; fields says which.",
    error_example("validation_failed", "some fields are not valid", {password = "must be 8 to 128 characters long"})),
  RateLimited = error_response("Too many attempts; Retry-After says when to try again.",
    error_example("rate_limited", "too many attempts; try again later"),
    {["Retry-After"] = {schema = {type = "integer", example = 900}, description = "Seconds."}}),
  Internal = error_response("Something unexpected; logged with the request id (X-Request-Id).",
    error_example("internal", "internal server error")),
  Unavailable = error_response("The database is unreachable.",
    error_example("unavailable", "the service is temporarily unavailable")),
}

local PARAMETERS = {
  UserIdPath = {name = "id", ["in"] = "path", required = true, schema = ID,
                description = "The user's id: a positive whole number that fits in 64 bits."},
  UserIdQuery = {name = "id", ["in"] = "query", required = true, schema = ID,
                 description = "The user's id (400 when missing, 0, negative, decimal, too big or not a number)."},
  Limit = {name = "limit", ["in"] = "query", schema = {type = "integer", minimum = 1, maximum = 100, default = 20},
           description = "Page size, 1 to 100."},
  Cursor = {name = "cursor", ["in"] = "query", schema = {type = "string"},
            description = "next_cursor of the previous page, as given (opaque, signed)."},
  Q = {name = "q", ["in"] = "query", schema = {type = "string", maxLength = 254},
       description = "Only entries whose email or name contains this text, case-insensitively."},
  Token = {name = "token", ["in"] = "query", required = true, schema = {type = "string"},
           description = "The token of the emailed link."},
}

-- ---- paths -----------------------------------------------------------------------

local LIST = {parameter("Limit"), parameter("Cursor"), parameter("Q")}

local user_ops = {
  create = function(id) return op{
    id = id, tag = "users", auth = true, summary = "Create a user",
    body = {"UserCreate"}, errors = {"409"},
    ok = {"201", "Created.", json_body(schema("UserEnvelope")),
          {Location = {schema = {type = "string", example = "/users/42"}, description = "The new user."}}},
  } end,
  show = function(id, p) return op{
    id = id, tag = "users", auth = true, summary = "Get a user", params = {parameter(p)},
    ok = ok_json("200", "The user.", "UserEnvelope"), errors = {"400", "404"},
  } end,
  update = function(id, p, summary) return op{
    id = id, tag = "users", auth = true, summary = summary or "Update a user (partial)",
    params = {parameter(p)}, body = {"UserUpdate"},
    ok = ok_json("200", "The updated user.", "UserEnvelope"), errors = {"404", "409"},
  } end,
  delete = function(id, p) return op{
    id = id, tag = "users", auth = true, summary = "Delete a user", params = {parameter(p)},
    description = "Really deletes the user and returns what was deleted.",
    ok = ok_json("200", "The deleted user.", "UserEnvelope"), errors = {"400", "404"},
  } end,
}

local PATHS = {
  ["/"] = {get = op{
    id = "index", tag = "service", summary = "Identify the service", db = false,
    ok = ok_json("200", "Name, version and where the docs are.", "Service"), errors = {"405"},
  }},
  ["/healthz"] = {get = op{
    id = "healthz", tag = "service", summary = "Liveness: the process answers", db = false,
    ok = ok_json("200", "Alive.", "Status", {status = "ok"}),
  }},
  ["/readyz"] = {get = op{
    id = "readyz", tag = "service", summary = "Readiness: the database answers and the scripts are loaded",
    description = "A refused script change leaves the service ready (the active generation keeps "
      .. "serving); `last_refused_at` tells that one happened, /admin/scripts says why.",
    ok = ok_json("200", "Ready.", "Ready", {status = "ready", generation = 3,
      digest = "9f2c...e1", last_refused_at = null}),
  }},
  ["/admin/scripts"] = {get = op{
    id = "adminScripts", tag = "service", auth = true, db = false,
    summary = "Script generations: the active one and the last refused change",
    ok = ok_json("200", "The generations.", "ScriptsStatus"),
  }},
  ["/metrics"] = {get = op{
    id = "metrics", tag = "service", summary = "Prometheus metrics of the whole server", db = false,
    description = "Prometheus text format (0.0.4), summed over every worker: requests by route pattern, "
      .. "method and status, a latency histogram, requests in flight, the database and hashing pools, "
      .. "mail, script reloads, worker restarts and log lines by level. Unauthenticated: keep it off the "
      .. "public listener with METRICS_PORT, which serves it on its own (private) port instead; "
      .. "this route then answers 404. docs/observability.md lists every metric.",
    ok = {"200", "The exposition.", {["text/plain"] = {schema = {type = "string"},
      example = "# TYPE moonkeep_http_requests_in_flight gauge\nmoonkeep_http_requests_in_flight 1\n"}}},
    errors = {"404"},
  }},
  ["/openapi.json"] = {get = op{
    id = "openapi", tag = "service", summary = "This document", db = false,
    ok = {"200", "The OpenAPI 3 document.", {["application/json"] = {schema = {type = "object"}}}},
  }},
  ["/apidocs"] = {get = op{
    id = "apidocs", tag = "service", summary = "Swagger UI for this document", db = false,
    ok = {"200", "An HTML page (assets served locally under /apidocs/).", HTML},
  }},
  ["/apidocs/{file}"] = {get = op{
    id = "apidocsAsset", tag = "service", summary = "A Swagger UI asset", db = false,
    params = {{name = "file", ["in"] = "path", required = true,
               schema = {type = "string", enum = array({"swagger-ui.css", "swagger-ui-bundle.js",
                 "swagger-ui-standalone-preset.js", "swagger-initializer.js", "favicon-32x32.png",
                 "favicon-16x16.png"})}}},
    ok = {"200", "The file (CSS, JavaScript or PNG).", {
      ["text/css"] = {schema = {type = "string"}},
      ["application/javascript"] = {schema = {type = "string"}},
      ["image/png"] = {schema = {type = "string", format = "binary"}},
    }},
    errors = {"404"},
  }},
  ["/admin"] = {get = op{
    id = "console", tag = "service", summary = "The admin console (docs/console.md)", db = false,
    description = "One HTML page that loads its ES modules from /admin/assets/; it logs in through "
      .. "/auth/login and keeps the tokens in the page's memory only. Sent with a strict "
      .. "Content-Security-Policy (scripts and styles from this origin only, frame-ancestors 'none'), "
      .. "an ETag and `Cache-Control: no-cache`.",
    ok = {"200", "The console's page.", HTML},
    errors = {"304"},
  }},
  ["/admin/assets/{file}"] = {get = op{
    id = "consoleAsset", tag = "service", summary = "A file of the admin console", db = false,
    description = "An ES module, the style sheet or the icon of the console (scripts/console/), with "
      .. "an ETag; If-None-Match answers 304. Names are one path segment with one extension "
      .. "(js, css, svg, png); anything else is 404.",
    params = {{name = "file", ["in"] = "path", required = true,
               schema = {type = "string", pattern = "^[A-Za-z0-9][A-Za-z0-9_-]*\\.(js|css|svg|png)$"},
               example = "main.js"}},
    ok = {"200", "The file.", {
      ["text/javascript"] = {schema = {type = "string"}},
      ["text/css"] = {schema = {type = "string"}},
      ["image/svg+xml"] = {schema = {type = "string"}},
    }},
    errors = {"304", "404"},
  }},

  ["/auth/register"] = {post = op{
    id = "register", tag = "auth", summary = "Register an admin",
    description = "Creates an unconfirmed admin and mails a confirmation link "
      .. "(${PUBLIC_URL}/auth/confirm?token=..., single use, expires after CONFIRM_TOKEN_TTL_S, 24 h by default). "
      .. "A mail that cannot be sent does not undo the registration: ask for another with /auth/confirm/resend. "
      .. "A taken email or name is 409 (fields says which) before any password hashing." .. HASH_BUDGET,
    body = {"Register"}, ok = ok_json("201", "Registered; not yet confirmed.", "AdminEnvelope",
      {admin = {id = 1, email = "ada@example.com", name = "ada", confirmed = false, created_at = TS, updated_at = TS}}),
    errors = {"409", "429"},
  }},
  ["/auth/confirm"] = {get = op{
    id = "confirm", tag = "auth", summary = "Confirm an email address (the mailed link)",
    description = "Single use. A browser (Accept: text/html) gets a small HTML page instead of JSON, "
      .. "with the same status.",
    params = {parameter("Token")},
    ok = {"200", "Confirmed.", {["application/json"] = {schema = schema("AdminEnvelope"), example = {admin = EXAMPLE.admin}},
                                ["text/html"] = {schema = {type = "string"}}}},
    errors = {"400"},
  }},
  ["/auth/confirm/resend"] = {post = op{
    id = "resendConfirmation", tag = "auth", summary = "Mail the confirmation link again",
    description = "Always 202, whether or not the address belongs to an admin. At most MAIL_RATE_LIMIT (5) "
      .. "mails per address per MAIL_RATE_WINDOW_S (15 min), counted whether or not the address exists.",
    body = {"EmailOnly"}, ok = ok_json("202", "Accepted.", "Accepted"), errors = {"429"},
  }},
  ["/auth/login"] = {post = op{
    id = "login", tag = "auth", summary = "Log in: start a session",
    description = "One answer (401 invalid_credentials) for an unknown email and a wrong password, in "
      .. "similar time. 403 only once the password is right but the email is not confirmed. After "
      .. "LOGIN_FAILURE_LIMIT (20) failures per email in LOGIN_FAILURE_WINDOW_S (15 min), 429; a "
      .. "successful login or a password reset clears the count. Each attempt is counted before its "
      .. "password is checked, so of a burst of concurrent attempts no more than the limit are tried." .. HASH_BUDGET,
    body = {"Login"}, ok = ok_json("200", "A new session's tokens.", "Tokens"), errors = {"401", "403", "429"},
  }},
  ["/auth/refresh"] = {
    post = op{
      id = "refresh", tag = "auth", summary = "Rotate the refresh token",
      description = "Send the refresh token in the body or as Authorization: Bearer. Returns new tokens; "
        .. "the one sent stops working. Sending an already rotated refresh token again ends the whole "
        .. "session (401). An access token is refused here. A refresh extends the session by "
        .. "REFRESH_TOKEN_TTL_S (30 days), never past SESSION_MAX_AGE_S (30 days) from its login: "
        .. "then 401, and the admin logs in again.",
      security = array({{}, {bearerAuth = array()}}),
      body = {"Refresh", optional = true}, ok = ok_json("200", "New tokens.", "Tokens"), errors = {"401"},
    },
    get = op{
      id = "refreshGet", tag = "auth", summary = "Rotate the refresh token (kept for old clients)",
      description = "As POST, with the refresh token in Authorization: Bearer. It changes the session, so "
        .. "HEAD is not served here (405 with Allow).",
      security = array({{bearerAuth = array()}}),
      ok = ok_json("200", "New tokens.", "Tokens"), errors = {"401"},
    },
  },
  ["/auth/logout"] = {post = op{
    id = "logout", tag = "auth", auth = true, summary = "End this session (or all of them)",
    description = "The session's refresh token and access tokens stop working at once.",
    params = {{name = "all", ["in"] = "query", schema = {type = "boolean", default = false},
               description = "true: end every session of the admin."}},
    ok = {"204", "Logged out."}, errors = {"400"},
  }},
  ["/auth/password/forgot"] = {post = op{
    id = "forgotPassword", tag = "auth", summary = "Mail a password reset link",
    description = "Always 202, whether or not the address belongs to an admin. The link "
      .. "(${PUBLIC_URL}/auth/password/reset?token=...) works once and expires after RESET_TOKEN_TTL_S "
      .. "(30 min). Rate limited like /auth/confirm/resend.",
    body = {"EmailOnly"}, ok = ok_json("202", "Accepted.", "Accepted"), errors = {"429"},
  }},
  ["/auth/password/reset"] = {
    get = op{
      id = "resetPasswordForm", tag = "auth", summary = "The reset form (the mailed link)",
      description = "A small self-contained HTML page whose form posts {token, password} as JSON to this "
        .. "path. Opening it does not use the token; an unusable token gets a 400 page.",
      params = {parameter("Token")},
      ok = {"200", "The form.", HTML}, errors = {"400"},
    },
    post = op{
      id = "resetPassword", tag = "auth", summary = "Set a new password with a reset token",
      description = "Ends every session of the admin, every other unused reset link, and the failed-login "
        .. "count. Marks the admin confirmed (the link reached the address)." .. HASH_BUDGET,
      body = {"PasswordReset"}, ok = {"204", "Password set."}, errors = {"429"},
    },
  },
  ["/auth/me"] = {
    get = op{
      id = "getMe", tag = "auth", auth = true, summary = "The logged-in admin",
      ok = ok_json("200", "The admin.", "AdminEnvelope"),
    },
    put = op{
      id = "updateMe", tag = "auth", auth = true, summary = "Change the name, email or password",
      description = "A new password ends every other session and every unused reset link; a wrong "
        .. "current_password is 422 and counts as a failed login.",
      body = {"AdminUpdate"}, ok = ok_json("200", "The updated admin.", "AdminEnvelope"),
      errors = {"409", "429"},
    },
    delete = op{
      id = "deleteMe", tag = "auth", auth = true, summary = "Delete the logged-in admin",
      description = "Asks for the password again: 422 without current_password, 401 invalid_credentials "
        .. "when it is wrong (counted as a failed login), so an access token alone cannot delete the "
        .. "account. Really deletes the admin; their tokens stop working at once. Users they created "
        .. "stay, with created_by null.",
      body = {"CurrentPassword"}, ok = {"204", "Deleted."}, errors = {"429"},
    },
  },
  ["/auth/admins"] = {get = op{
    id = "listAdmins", tag = "auth", auth = true, summary = "List admins (paginated, ordered by id)",
    params = LIST, ok = ok_json("200", "A page of admins.", "AdminList"), errors = {"400"},
  }},

  ["/user"] = {
    post = user_ops.create("createUserLegacy"),
    get = user_ops.show("getUserLegacy", "UserIdQuery"),
    put = user_ops.update("updateUserLegacy", "UserIdQuery"),
    delete = user_ops.delete("deleteUserLegacy", "UserIdQuery"),
  },
  ["/users"] = {
    get = op{
      id = "listUsers", tag = "users", auth = true, summary = "List users (paginated, ordered by id)",
      description = "Pages are ordered by id and continue from next_cursor. With q, a page holds the users "
        .. "whose email or name contains q, case-insensitively. What a search costs: a q with three letters "
        .. "or digits in a row is looked up in trigram indexes (pg_trgm) when its matches are few, and is "
        .. "taken in id order when they are many, so that a page costs about the same whatever the number "
        .. "of users. A shorter q (one or two letters, or letters broken by other characters) cannot use "
        .. "those indexes: its page is found by reading users in id order from the cursor, at most 20000 of "
        .. "them per request. When those 20000 hold fewer matches than the page, the page is short (it may "
        .. "be empty) and next_cursor continues after the last user read: follow next_cursor until it is "
        .. "null to see every match. So a request costs about the same whatever the number of users. Search "
        .. "with three or more characters where you can.",
      params = LIST, ok = ok_json("200", "A page of users.", "UserList"), errors = {"400"},
    },
    post = user_ops.create("createUser"),
  },
  ["/audit"] = {get = op{
    id = "listAudit", tag = "audit", auth = true, summary = "The audit trail (paginated, newest first)",
    description = "Every state change by or to an admin, recorded in the same transaction as the change "
      .. "(docs/audit.md). Filters combine (all must hold). limit and cursor as /users (400); a malformed "
      .. "filter is 422 with fields naming it. Failed logins are events; the attempts refused once an email is "
      .. "over LOGIN_FAILURE_LIMIT are not one each but one event per window whose detail.refused counts them. "
      .. "Events are kept for AUDIT_RETENTION_DAYS (the retention sweeper's).",
    params = {parameter("Limit"), parameter("Cursor"),
      {name = "actor", ["in"] = "query", schema = ID, description = "Only events by this admin."},
      {name = "action", ["in"] = "query", schema = {type = "string", enum = array(audit.ACTIONS)},
       description = "Only events of this action."},
      {name = "target", ["in"] = "query", schema = {type = "string", pattern = "^(user|admin):[0-9]+$",
       example = "user:42"}, description = "Only events about this user or admin: user:<id> or admin:<id>."},
      {name = "since", ["in"] = "query", schema = {type = "string", format = "date-time"},
       description = "Only events at or after this time (RFC 3339; write + as %2B)."},
      {name = "until", ["in"] = "query", schema = {type = "string", format = "date-time"},
       description = "Only events before this time (RFC 3339)."}},
    ok = ok_json("200", "A page of events.", "AuditList"), errors = {"400", "422"},
  }},
  ["/users/{id}"] = {
    get = user_ops.show("getUser", "UserIdPath"),
    put = user_ops.update("updateUser", "UserIdPath"),
    patch = user_ops.update("patchUser", "UserIdPath", "Update a user (partial; same as PUT)"),
    delete = user_ops.delete("deleteUser", "UserIdPath"),
  },
}

openapi.document = {
  openapi = "3.0.3",
  info = {
    title = config.service_name .. " user management API",
    version = info.version,
    description = "Admins register, confirm their email address and log in; with an access token they "
      .. "manage users. Errors have one shape (Error) with a stable code. Every response carries "
      .. "X-Request-Id. Unknown body fields are ignored. Two errors come from the HTTP layer itself, on "
      .. "any route, before a script runs: 408 `request_timeout` when a request is not fully received "
      .. "within REQUEST_READ_TIMEOUT_S, and 431 `headers_too_large` when the request line and headers "
      .. "exceed MAX_HEADER_BYTES.",
  },
  tags = array({
    {name = "auth", description = "Admins: registration, sessions, password, account."},
    {name = "users", description = "The users admins manage."},
    {name = "audit", description = "The audit trail of admin actions."},
    {name = "service", description = "Health and documentation."},
  }),
  paths = PATHS,
  components = {
    schemas = SCHEMAS,
    responses = RESPONSES,
    parameters = PARAMETERS,
    securitySchemes = {
      bearerAuth = {type = "http", scheme = "bearer", bearerFormat = "JWT",
                    description = "An access token from /auth/login or /auth/refresh."},
    },
  },
}

-- ---- the router check ----------------------------------------------------------------

local METHODS = {get = true, put = true, post = true, delete = true, patch = true,
                 head = true, options = true, trace = true}

-- true, or false and what differs: routes not documented, and documented
-- operations without a route. `routes` is router:routes().
function openapi.check(routes, document)
  document = document or openapi.document
  local documented, routed = {}, {}
  for path, item in pairs(document.paths) do
    for method in pairs(item) do
      if METHODS[method] then documented[upper(method) .. " " .. path] = true end
    end
  end
  for _, route in ipairs(routes) do routed[route[1] .. " " .. route[2]] = true end
  local problems = {}
  for key in pairs(routed) do
    if not documented[key] then problems[#problems + 1] = "not in the OpenAPI document: " .. key end
  end
  for key in pairs(documented) do
    if not routed[key] then problems[#problems + 1] = "documented but not routed: " .. key end
  end
  if #problems == 0 then return true end
  sort(problems)
  return false, format("%d route(s) and the OpenAPI document disagree: %s", #problems, concat(problems, "; "))
end

return openapi
