#!/usr/bin/env python3
"""Pre-signs partner deliveries for scripts/bench (wrk's Lua has no HMAC).

    GITHUB_WEBHOOK_SECRET=... partner_requests.py OUT_PREFIX PER_THREAD THREADS

Writes OUT_PREFIX.1 ... OUT_PREFIX.THREADS, one request per line:
    delivery id <TAB> hex HMAC-SHA256(secret, body) <TAB> body
the GitHub scheme (src/signature/github.rs): X-Hub-Signature-256 = "sha256=" + the hex digest
over the raw body bytes, deduplicated on X-GitHub-Delivery. Every delivery id and body is
distinct across all files, so flowgate's redelivery check never shortcuts one.
"""

import hashlib
import hmac
import os
import sys
import uuid

BODY = (
    '{{"ref":"refs/heads/main","before":"{before}","after":"{after}",'
    '"repository":{{"id":{repo_id},"full_name":"acme/shop","private":true}},'
    '"pusher":{{"name":"bench","email":"bench@example.com"}},'
    '"head_commit":{{"id":"{after}","message":"bench push {n}","timestamp":"2025-12-01T10:00:00Z"}}}}'
)


def main() -> None:
    prefix, per_thread, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    secret = os.environ["GITHUB_WEBHOOK_SECRET"].encode()
    run = uuid.uuid4().hex
    for thread in range(1, threads + 1):
        with open(f"{prefix}.{thread}", "w", encoding="utf-8") as out:
            for i in range(per_thread):
                n = thread * 100_000_000 + i
                after = hashlib.sha1(f"{run}-{n}".encode()).hexdigest()
                body = BODY.format(before="0" * 40, after=after, repo_id=4242, n=n)
                signature = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
                out.write(f"{run[:8]}-{n}\t{signature}\t{body}\n")


if __name__ == "__main__":
    main()
