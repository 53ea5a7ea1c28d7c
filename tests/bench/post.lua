-- SPDX-License-Identifier: MIT
-- wrk script for the webhook benchmarks: POSTs one Alertmanager body
-- (file named after "--" on wrk's command line; a bearer token may follow)
-- with the headers Alertmanager sends, and prints a one-line JSON summary
-- at the end.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "Alertmanager/0.25.0"

function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.body = f:read("*a")
  f:close()
  if args[2] then
    wrk.headers["Authorization"] = "Bearer " .. args[2]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"non_2xx":%d,' ..
    '"connect_err":%d,"read_err":%d,"write_err":%d,"timeout_err":%d,' ..
    '"lat_p50_us":%d,"lat_p99_us":%d,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
