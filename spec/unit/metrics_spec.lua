-- host.metrics, the real binding from build/lua/host.so, outside a server:
-- misuse raises, and there is nothing to render without the master's block.
-- (spec/e2e/metrics_spec.lua checks the numbers against a running server.)
package.cpath = "build/lua/?.so;" .. package.cpath

local metrics = require "host.metrics"

local function error_of(call)
  local ok, err = pcall(call)
  assert.is_false(ok)
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

describe("host.metrics", function()
  it("names the Prometheus text format it renders", function()
    assert.equal("text/plain; version=0.0.4; charset=utf-8", metrics.CONTENT_TYPE)
  end)

  it("route raises for a pattern that is not a string", function()
    assert.equal("bad argument #1 to 'route' (string expected, got no value)", error_of(function() metrics.route() end))
    assert.equal("bad argument #1 to 'route' (string expected, got table)", error_of(function() metrics.route({}) end))
  end)

  it("route raises outside a request", function()
    assert.equal("this function can only be called while the host runs a request",
      error_of(function() metrics.route("/users/{id}") end))
  end)

  it("render answers nil and the reason outside a server", function()
    local text, err = metrics.render()
    assert.is_nil(text)
    assert.equal("not in a server", err)
  end)
end)
