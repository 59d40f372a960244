#!/usr/bin/env python3
"""A connector's deployment through its whole life, with flowgate's lifecycle API.

What a backend's hand-written PrefectService did for every connector a business user made,
with the Python standard library only:

    FLOWGATE_API_TOKEN=... python3 examples/clients/connector_lifecycle.py \\
        --url http://127.0.0.1:8080 --flow connector-sync --connector 42

1. create the connector's deployment with the schedule `0 */4 * * *` (PUT: desired state);
2. reschedule it to `0 */6 * * *` (the same PUT with the new cron);
3. trigger a run now and read its status;
4. deactivate the connector (pause: no more scheduled runs);
5. delete the connector (DELETE: the deployment and its scheduled runs go).

A PUT answers 200 once Prefect holds the state, or 202 `pending` while Prefect cannot take it
(flowgate applies it once Prefect is back: this script waits for that). Exit status 0 when every
step did what it should.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request


def call(base, token, method, path, body=None):
    """One API call; returns (status, parsed JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + token)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def settled(base, token, path, answer, timeout):
    """Waits for a `pending` desired state to be applied; returns the final state."""
    deadline = time.time() + timeout
    while answer.get("sync") == "pending" and time.time() < deadline:
        time.sleep(1)
        _, shown = call(base, token, "GET", path)
        answer = shown.get("managed") or {"sync": "removed"}
    return answer


def step(name, ok, detail):
    print("%-12s %s  %s" % (name, "ok" if ok else "FAILED", detail))
    if not ok:
        sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--flow", default="connector-sync", help="the flow's name")
    parser.add_argument("--connector", required=True, help="the connector's id")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for Prefect")
    args = parser.parse_args()
    token = os.environ.get("FLOWGATE_API_TOKEN")
    if not token:
        sys.exit("set FLOWGATE_API_TOKEN")
    path = "/api/v1/deployments/%s/connector-%s" % (args.flow, args.connector)
    desired = {
        "parameters": {"connector_id": args.connector},
        "tags": ["connector:%s" % args.connector],
        "description": "connector %s" % args.connector,
        "schedules": [{"cron": "0 */4 * * *", "timezone": "UTC"}],
    }

    status, state = call(args.url, token, "PUT", path, desired)
    state = settled(args.url, token, path, state, args.timeout)
    step("create", state.get("sync") == "in_sync", "every 4 hours, generation %s" % state.get("generation"))

    desired["schedules"][0]["cron"] = "0 */6 * * *"
    status, state = call(args.url, token, "PUT", path, desired)
    state = settled(args.url, token, path, state, args.timeout)
    step("reschedule", state.get("sync") == "in_sync", "every 6 hours")

    status, answer = call(
        args.url, token, "POST", path + "/runs",
        {"parameters": {"connector_id": args.connector}, "tags": ["trigger:manual"]},
    )
    run_id = answer.get("flow_run_id")
    if answer.get("status") == "queued":
        delivery = answer["delivery_id"]
        deadline = time.time() + args.timeout
        while not run_id and time.time() < deadline:
            time.sleep(1)
            _, d = call(args.url, token, "GET", "/api/v1/deliveries/%s" % delivery)
            run_id = d.get("flow_run_id")
    step("trigger", bool(run_id), "flow run %s" % run_id)
    status, run = call(args.url, token, "GET", "/api/v1/runs/%s" % run_id)
    step("status", status == 200, "state %s" % run.get("state"))

    status, state = call(args.url, token, "POST", path + "/pause")
    state = settled(args.url, token, path, state, args.timeout)
    step("deactivate", state.get("sync") == "in_sync", "paused")

    status, state = call(args.url, token, "DELETE", path)
    state = settled(args.url, token, path, state, args.timeout)
    step("delete", state.get("sync") == "removed", "gone from Prefect")


if __name__ == "__main__":
    main()
