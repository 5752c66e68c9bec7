-- routes/console.lua — the admin console: GET /admin (one HTML page) and
-- GET /admin/assets/{file} (its ES modules, style sheet and icon), served
-- read-only from scripts/console/ (docs/console.md).
--
-- The files live beside the scripts, so they are part of each script
-- generation: a reload serves the new console with the new routes, and a
-- request that started on the old generation gets the old files. They are
-- read once per generation (a few small files), each with a strong ETag
-- (the start of its SHA-256); `Cache-Control: no-cache` makes the browser
-- ask again every time, and If-None-Match turns the answer into a 304.
--
-- Only names of one segment, letters, digits, `_` and `-` before one known
-- extension, are looked up: no `/`, no `..`, no dot file, and never a `.lua`
-- (the scripts' own source sits in the folder above).
local http = require "lib.http"
local crypto = require "host.crypto"
local log = require "host.log"

local open, match, gmatch, gsub, sub = io.open, string.match, string.gmatch, string.gsub, string.sub
local getinfo = debug.getinfo

-- The folder of this generation's scripts (package.path points at it; this
-- file is <scripts>/routes/console.lua), and the console's files inside.
local SCRIPTS_DIR = match(getinfo(1, "S").source, "^@(.*)/routes/[^/]+$") or "scripts"
local DIR = SCRIPTS_DIR .. "/console"

local TYPES = {
  js = "text/javascript; charset=utf-8",
  css = "text/css; charset=utf-8",
  svg = "image/svg+xml",
  png = "image/png",
}
local HTML = "text/html; charset=utf-8"
local ASSET_NAME = "^[%w][%w_-]*%.(%a+)$"

-- The console's Content-Security-Policy: scripts, styles and images from
-- this origin only (no inline script or style, no eval), requests only to
-- this origin, no form posts anywhere (every form is handled by script), no
-- <base>, no framing; Chromium also enforces Trusted Types (the console
-- never writes HTML as a string: every element is built with the DOM API).
local CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
  .. "form-action 'none'; base-uri 'none'; frame-ancestors 'none'; "
  .. "require-trusted-types-for 'script'; trusted-types 'none'"

local function headers(content_type, etag)
  return {
    ["Content-Type"] = content_type,
    ["ETag"] = etag,
    ["Cache-Control"] = "no-cache",
    ["Content-Security-Policy"] = CSP,
    ["Referrer-Policy"] = "no-referrer",
    ["X-Content-Type-Options"] = "nosniff",
    ["X-Frame-Options"] = "DENY",
    ["Cross-Origin-Opener-Policy"] = "same-origin",
    ["Cross-Origin-Resource-Policy"] = "same-origin",
  }
end

-- name -> {body, etag}, or false when the file is missing (logged once).
local files = {}

local function read(name)
  local cached = files[name]
  if cached ~= nil then return cached end
  local path = DIR .. "/" .. name
  local f = open(path, "rb")
  local entry = false
  if f then
    local body = f:read("*a")
    f:close()
    if body then entry = {body = body, etag = '"' .. sub(crypto.sha256(body), 1, 32) .. '"'} end
  else
    log.warn("console file missing", {path = path})
  end
  files[name] = entry
  return entry
end

-- True when If-None-Match names `etag` (weak comparison, RFC 9110 13.1.2).
local function not_modified(req, etag)
  local header = req.headers["if-none-match"]
  if not header then return false end
  for tag in gmatch(header, "[^,]+") do
    tag = gsub(gsub(tag, "^%s+", ""), "%s+$", "")
    if tag == "*" or gsub(tag, "^W/", "") == etag then return true end
  end
  return false
end

local function serve(req, name, content_type)
  local file = read(name)
  if not file then return http.error("not_found") end
  local h = headers(content_type, file.etag)
  if not_modified(req, file.etag) then return http.response(304, nil, h) end
  return http.response(200, file.body, h)
end

-- GET /admin: the page (it only loads /admin/assets/main.js and the style).
local function page(req)
  return serve(req, "index.html", HTML)
end

-- GET /admin/assets/{file}
local function asset(req, params)
  local ext = match(params.file, ASSET_NAME)
  local content_type = ext and TYPES[ext]
  if not content_type then return http.error("not_found") end
  return serve(req, params.file, content_type)
end

return {
  {"GET", "/admin", page},
  {"GET", "/admin/assets/{file}", asset},
}
