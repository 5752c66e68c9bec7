-- GET /metrics (routes/meta.lua) and the route label app.lua's dispatch
-- gives every request's metrics (host.metrics.route): the router pattern,
-- never the raw path.
local kit = require "support.kit"

describe("GET /metrics", function()
  local k

  before_each(function()
    k = kit.new()
  end)

  it("answers the host's exposition as Prometheus text, unauthenticated", function()
    local res = k:get("/metrics")
    assert.status(200, res)
    assert.equal("text/plain; version=0.0.4; charset=utf-8", res:header("Content-Type"))
    assert.equal("no-store", res:header("Cache-Control"))
    assert.equal(k.metrics.text, res.body)
  end)

  it("answers 404 not_found when METRICS_PORT serves the metrics instead", function()
    k.metrics.separate_port = true
    local res = k:get("/metrics")
    assert.status(404, res)
    assert.equal("not_found", res.json.error.code)
  end)
end)

describe("the route label of a request's metrics", function()
  local k

  before_each(function()
    k = kit.new()
  end)

  it("is the pattern of the matched route, not the path", function()
    k:get("/users/42")
    k:get("/apidocs/swagger-ui.css")
    assert.same({"/users/{id}", "/apidocs/{file}"}, k.metrics.routes)
  end)

  it("is the pattern of the path for a 405 and an OPTIONS request", function()
    assert.status(405, k:post("/healthz"))
    assert.status(204, k:request("OPTIONS", "/users/7"))
    assert.same({"/healthz", "/users/{id}"}, k.metrics.routes)
  end)

  it("is left unset for an unknown path (the host labels it \"(unmatched)\")", function()
    assert.status(404, k:get("/nope/123"))
    assert.same({}, k.metrics.routes)
  end)

  it("is set before authentication, so a 401 is counted under its route", function()
    assert.status(401, k:get("/users/9"))
    assert.same({"/users/{id}"}, k.metrics.routes)
  end)
end)
