-- wrk script for bench/http/run.sh: sends the request given by the environment and prints,
-- when the run is done, one JSON line that run.sh parses (wrk's own text would need scraping).
--   WRK_METHOD  GET or POST (default GET)
--   WRK_BODY    request body for POST (default none)
local method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY")

wrk.method = method
if body ~= nil and body ~= "" then
    wrk.body = body
    wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
    local e = summary.errors
    local secs = summary.duration / 1e6
    -- Latencies are in microseconds; "ok" excludes non-2xx/3xx answers and socket errors, so a
    -- server that sheds load with 503s is not credited for them.
    local non2xx = e.status
    local sockerr = e.connect + e.read + e.write + e.timeout
    io.write(string.format(
        '{"requests":%d,"duration_s":%.3f,"rps":%.1f,"ok_rps":%.1f,"non2xx":%d,' ..
        '"socket_errors":%d,"timeouts":%d,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,' ..
        '"max_ms":%.3f,"mean_ms":%.3f}\n',
        summary.requests, secs, summary.requests / secs,
        (summary.requests - non2xx) / secs, non2xx, sockerr, e.timeout,
        latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
        latency:percentile(99) / 1e3, latency.max / 1e3, latency.mean / 1e3))
end
