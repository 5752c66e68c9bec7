-- routes/meta.lua — the service's own routes: identity, health, and its
-- documentation (the OpenAPI document and Swagger UI from local assets).
local http = require "lib.http"
local info = require "host.info"
local crypto = require "host.crypto"
local log = require "host.log"
local config = require "lib.config"
local store = require "lib.store"
local pages = require "lib.pages"
local openapi = require "openapi"
local metrics = require "host.metrics"

local cjson = require "cjson.safe"

local open = io.open

local function index()
  return http.ok({service = config.service_name, version = info.version, docs = "/apidocs"})
end

-- Liveness: the process answers.
local function healthz()
  return http.ok({status = "ok"})
end

-- The master's record of script generations (host/server/snapshot.c): the active
-- one and the last refused change, or nil before the first publication.
local function scripts_status()
  local text = info.scripts_status()
  return text and cjson.decode(text)
end

-- Readiness: scripts are loaded (this code runs) and the database answers.
-- A refused script change does not make the service unready: the active
-- generation is still correct. Only its time is shown here; the error
-- (with file:line) is for authenticated eyes at /admin/scripts.
local function readyz()
  local ok, err = store:ready()
  if not ok then return err end
  local status = scripts_status()
  local refused = status and status.last_refused
  return http.ok({
    status = "ready", generation = info.generation, digest = info.digest,
    last_refused_at = refused ~= cjson.null and refused and refused.at or http.null,
  })
end

-- Script generations, for operators: what this worker runs, what the
-- master published last, and the last refused change with its error.
local function admin_scripts()
  local status = scripts_status() or {}
  return http.ok({
    worker = {pid = info.pid, generation = info.generation, digest = info.digest},
    active = status.active or http.null,
    last_refused = status.last_refused or http.null,
  })
end

-- Prometheus metrics of the whole server (every worker, summed by the
-- host). Not found here when METRICS_PORT serves them on their own port.
local function metrics_text()
  local text = metrics.render()
  if not text then return http.error("not_found") end
  return http.response(200, text, {["Content-Type"] = metrics.CONTENT_TYPE, ["Cache-Control"] = "no-store"})
end

local function openapi_json()
  return http.ok(openapi.document, {["Cache-Control"] = "no-cache"})
end

-- ---- Swagger UI ------------------------------------------------------------

-- The files of swagger-ui-dist that /apidocs uses, and their types.
local ASSET_TYPES = {
  ["swagger-ui.css"] = "text/css; charset=utf-8",
  ["swagger-ui-bundle.js"] = "application/javascript; charset=utf-8",
  ["swagger-ui-standalone-preset.js"] = "application/javascript; charset=utf-8",
  ["favicon-32x32.png"] = "image/png",
  ["favicon-16x16.png"] = "image/png",
}
local JS = "application/javascript; charset=utf-8"
local ASSET_CACHE = "public, max-age=86400"

-- Read once per script generation (a reload reads them again).
local assets = {}

local function read_asset(file)
  local cached = assets[file]
  if cached ~= nil then return cached end
  local path = config.swagger_ui_dir .. "/" .. file
  local f = open(path, "rb")
  local data = false
  if f then
    data = f:read("*a") or false
    f:close()
  else
    log.warn("Swagger UI asset missing (make deps installs it)", {path = path})
  end
  assets[file] = data
  return data
end

local function apidocs()
  local nonce = crypto.random_token(16)
  return http.html(200, pages.swagger_ui(config.service_name .. " API", nonce), pages.swagger_headers(nonce))
end

local function apidocs_asset(_, params)
  local file = params.file
  if file == "swagger-initializer.js" then
    return http.response(200, pages.SWAGGER_INITIALIZER, {["Content-Type"] = JS, ["Cache-Control"] = "no-cache"})
  end
  local content_type = ASSET_TYPES[file]
  local data = content_type and read_asset(file)
  if not data then return http.error("not_found") end
  return http.response(200, data, {
    ["Content-Type"] = content_type,
    ["Cache-Control"] = ASSET_CACHE,
    ["X-Content-Type-Options"] = "nosniff",
  })
end

return {
  {"GET", "/", index},
  {"GET", "/healthz", healthz},
  {"GET", "/readyz", readyz},
  {"GET", "/admin/scripts", admin_scripts, auth = true},
  {"GET", "/metrics", metrics_text},
  {"GET", "/openapi.json", openapi_json},
  {"GET", "/apidocs", apidocs},
  {"GET", "/apidocs/{file}", apidocs_asset},
}
