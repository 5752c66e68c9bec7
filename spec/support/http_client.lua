-- spec/support/http_client.lua — a small HTTP/1.1 client on luasocket for the
-- end-to-end specs: plain requests, keep-alive connections, and raw bytes
-- for malformed-input cases.
local socket = require "socket"
local cjson = require "cjson.safe"

local client = {}

local function read_headers(sock)
  local status_line, err = sock:receive("*l")
  if not status_line then return nil, err end
  local status = tonumber(status_line:match("^HTTP/%d%.%d (%d%d%d)"))
  local headers = {}
  while true do
    local line, lerr = sock:receive("*l")
    if not line then return nil, lerr end
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      name = name:lower()
      headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
    end
  end
  return status, headers
end

local function read_body(sock, headers, method, status)
  if method == "HEAD" or status == 204 or status == 304 then return "" end
  if headers["transfer-encoding"] and headers["transfer-encoding"]:lower():find("chunked") then
    local parts = {}
    while true do
      local size_line, err = sock:receive("*l")
      if not size_line then return nil, err end
      local size = tonumber(size_line:match("^%x+"), 16)
      if not size or size == 0 then sock:receive("*l"); break end
      parts[#parts + 1] = sock:receive(size)
      sock:receive("*l")
    end
    return table.concat(parts)
  end
  local length = tonumber(headers["content-length"])
  if length then
    if length == 0 then return "" end
    return sock:receive(length)
  end
  return sock:receive("*a")
end

local function encode_request(method, path, opts)
  local body = opts.body
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  if type(body) == "table" then
    body = assert(cjson.encode(body))
    if headers["Content-Type"] == nil then headers["Content-Type"] = "application/json" end
  end
  local lines = {method .. " " .. path .. " HTTP/1.1", "Host: " .. (opts.host or "localhost")}
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  if not opts.keepalive then lines[#lines + 1] = "Connection: close" end
  for k, v in pairs(headers) do lines[#lines + 1] = k .. ": " .. v end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

-- A connection that can carry several requests (keep-alive).
local Connection = {}
Connection.__index = Connection

-- A connection to 127.0.0.1:port; from the loopback address `from` when
-- given (a client that is not 127.0.0.1, as a proxy in front would be).
function client.connect(port, timeout, from)
  local sock = assert(socket.tcp())
  sock:settimeout(timeout or 15)
  if from then assert(sock:bind(from, 0)) end
  local ok, err = sock:connect("127.0.0.1", port)
  if not ok then return nil, err end
  return setmetatable({sock = sock}, Connection)
end

-- Returns res = {status, headers, body, json} or nil, err.
function Connection:request(method, path, opts)
  opts = opts or {}
  local ok, err = self.sock:send(encode_request(method, path, opts))
  -- A server may answer before the whole body is sent (413) and close:
  -- the reply is still there to read.
  local status, headers = read_headers(self.sock)
  if not status and not ok then return nil, err end
  if not status then return nil, headers end
  local body, berr = read_body(self.sock, headers, method, status)
  if not body then return nil, berr end
  return {status = status, headers = headers, body = body, json = cjson.decode(body)}
end

function Connection:send_raw(bytes) return self.sock:send(bytes) end

-- Reads one response (after send_raw); nil, "closed" when the server closed.
function Connection:read_response(method)
  local status, headers = read_headers(self.sock)
  if not status then return nil, headers end
  local body = read_body(self.sock, headers, method or "GET", status) or ""
  return {status = status, headers = headers, body = body, json = cjson.decode(body)}
end

function Connection:close() self.sock:close() end

-- One request on a fresh connection.
function client.request(port, method, path, opts)
  opts = opts or {}
  local conn, err = client.connect(port, opts.timeout)
  if not conn then return nil, err end
  local res, rerr = conn:request(method, path, {headers = opts.headers, body = opts.body, keepalive = false})
  conn:close()
  return res, rerr
end

return client
