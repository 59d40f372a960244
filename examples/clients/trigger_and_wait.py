#!/usr/bin/env python3
"""Trigger a deployment through flowgate's internal API and wait for the run to finish.

What a backend's hand-written `triggerManualRun` did (look up the deployment, create the run,
poll its state), with the Python standard library only:

    FLOWGATE_API_TOKEN=... python3 examples/clients/trigger_and_wait.py \\
        --url http://127.0.0.1:8080 --deployment christmas-signup-handler/website \\
        --connector 42 --parameters '{"email": "jo@example.com", ...}'

It sends the connector's id as a tag and an Idempotency-Key (a retry of this script makes no
second run), follows a `queued` answer through /api/v1/deliveries/{id} to its run, then polls
/api/v1/runs/{id} until the run is final. Exit status: 0 when the run COMPLETED, 1 otherwise.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request


def call(base, token, method, path, body=None, headers=None):
    """One API call; returns (status, parsed JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + token)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--deployment", required=True, help="flow-name/deployment-name")
    parser.add_argument("--connector", required=True, help="the connector's id")
    parser.add_argument("--parameters", default="{}", help="flow parameters as JSON")
    parser.add_argument("--key", help="Idempotency-Key (default: connector-<id>-<unix minute>)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the run")
    args = parser.parse_args()
    token = os.environ.get("FLOWGATE_API_TOKEN")
    if not token:
        sys.exit("set FLOWGATE_API_TOKEN")
    key = args.key or "connector-%s-%d" % (args.connector, int(time.time() // 60))
    body = {
        "parameters": json.loads(args.parameters),
        "tags": ["connector:%s" % args.connector, "trigger:manual"],
    }
    status, answer = call(
        args.url, token, "POST", "/api/v1/deployments/%s/runs" % args.deployment, body,
        {"Idempotency-Key": key},
    )
    if status not in (200, 202):
        sys.exit("trigger refused (%d): %s" % (status, json.dumps(answer)))
    print("trigger:", answer["status"], answer.get("flow_run_id") or answer.get("delivery_id"))
    deadline = time.monotonic() + args.timeout
    run_id = answer.get("flow_run_id")
    while run_id is None:  # queued: follow the delivery to its run
        status, delivery = call(args.url, token, "GET", "/api/v1/deliveries/%s" % answer["delivery_id"])
        if status != 200 or delivery["status"] in ("dead", "discarded"):
            sys.exit("delivery failed: %s" % json.dumps(delivery))
        run_id = delivery.get("flow_run_id")
        if run_id is None:
            if time.monotonic() > deadline:
                sys.exit("still queued after %s s" % args.timeout)
            time.sleep(1)
    while True:
        status, run = call(args.url, token, "GET", "/api/v1/runs/%s" % run_id)
        if status != 200:
            sys.exit("cannot read run %s (%d): %s" % (run_id, status, json.dumps(run)))
        if run["final"]:
            print("run", run_id, run["state"])
            return 0 if run["state"] == "COMPLETED" else 1
        if time.monotonic() > deadline:
            sys.exit("run %s not final after %s s (%s)" % (run_id, args.timeout, run["state"]))
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
