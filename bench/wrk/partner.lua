-- Partner: distinct GitHub-signed deliveries on the HMAC route. wrk's Lua has no HMAC, so
-- bench/partner_requests.py pre-signs them: this thread reads its own file
-- ($BENCH_PARTNER_FILE.<thread id>, lines "delivery id<TAB>hex signature<TAB>body"), disjoint
-- from the other threads'. If the file runs out it starts again and counts `wrapped`: those are
-- redeliveries (200 duplicate), so scripts/bench sizes the files to avoid it.
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")
common.install()

local path = "/hooks/github-push"
local headers = { ["Content-Type"] = "application/json", ["X-GitHub-Event"] = "push" }
local deliveries = {}
local next_delivery = 0
local counter = 0

function init(args)
  local file = os.getenv("BENCH_PARTNER_FILE") .. "." .. id
  for line in io.lines(file) do
    local delivery, signature, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
    table.insert(deliveries, { delivery, "sha256=" .. signature, body })
  end
  if #deliveries == 0 then
    error("no signed deliveries in " .. file)
  end
end

function request()
  counter = counter + 1
  next_delivery = next_delivery + 1
  if next_delivery > #deliveries then
    next_delivery = 1
    wrapped = wrapped + 1
  end
  local d = deliveries[next_delivery]
  headers["X-Forwarded-For"] = common.client_address(id, counter)
  headers["X-GitHub-Delivery"] = d[1]
  headers["X-Hub-Signature-256"] = d[2]
  return wrk.format("POST", path, headers, d[3])
end
