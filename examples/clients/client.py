#!/usr/bin/env python3
# Calling genserv from Python with the standard library only (urllib): python3 client.py
# GENSERV_URL is genserv's address (default http://127.0.0.1:8080); GENSERV_TOKEN, when set,
# is sent as a bearer token.
import json
import os
import sys
import urllib.error
import urllib.request

URL = os.environ.get("GENSERV_URL", "http://127.0.0.1:8080")
TOKEN = os.environ.get("GENSERV_TOKEN")


def post(path, body, wait_s=10):
    """POSTs a JSON body; returns (HTTP status, decoded JSON answer), errors included."""
    headers = {"Content-Type": "application/json"}
    if TOKEN:
        headers["Authorization"] = "Bearer " + TOKEN
    request = urllib.request.Request(URL + path, json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=wait_s) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:  # 4xx, 5xx: the body is {"error", "message"}
        return error.code, json.load(error)


def call(server, message, timeout_ms=5000):
    """GenServer.call/3: genserv enforces timeout_ms; the client waits 5 s longer."""
    body = {"server": server, "message": message, "timeout_ms": timeout_ms}
    return post("/call", body, wait_s=timeout_ms / 1000 + 5)


def reply(status, answer):
    if status != 200:
        sys.exit(f"unexpected answer {status}: {answer}")
    return json.dumps(answer["reply"])


print("call counter get_count ->", reply(*call("counter", "get_count")))
status, answer = post("/cast", {"server": "counter", "message": "increment"})
print("cast counter increment ->", status)
print("call counter get_count ->", reply(*call("counter", "get_count")))

# A deferred reply: the batcher holds the call until its next flush (once a second).
print('call batcher ["push", 5] ->', reply(*call("batcher", ["push", 5], timeout_ms=10000)))

# No reply within timeout_ms: 504 and the error "timeout" (a late reply is dropped).
status, answer = call("slow", ["sleep", 2000], timeout_ms=300)
print('call slow ["sleep", 2000] with timeout_ms 300 ->', status, answer["error"])

# Every error is a status and a JSON body {"error": CODE, "message": TEXT}.
status, answer = call("nosuch", "get_count")
print("call nosuch get_count ->", status, f"{answer['error']}: {answer['message']}")
