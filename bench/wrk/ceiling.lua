-- Ceiling: POSTs straight at the Prefect stand-in's create_flow_run (the URL wrk is given), with
-- a body like the one flowgate sends. Nothing flowgate can do is faster than this.
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")
common.install()

local headers = { ["Content-Type"] = "application/json" }
local body = '{"parameters":{"email":"jo@example.com","first_name":"Jo","business_name":"Jo Co",'
  .. '"assessment_score":65,"red_systems":1,"orange_systems":1,"yellow_systems":1,"green_systems":0,'
  .. '"gps_score":50,"money_score":70,"marketing_score":75,"weakest_system_1":"GPS",'
  .. '"weakest_system_2":"Money","revenue_leak_total":624},'
  .. '"tags":["webhook","source:website","campaign:christmas"],"name":"signup-Jo-bench",'
  .. '"idempotency_key":"flowgate:christmas-signup-handler/website:christmas-signup:sha256:bench"}'

function request()
  return wrk.format("POST", nil, headers, body)
end
