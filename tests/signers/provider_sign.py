"""Signs a webhook body with the provider's own library and prints the headers as JSON.

usage: provider_sign.py standard-webhooks|stripe SECRET MSG_ID UNIX_TS BODY_FILE
"""

import datetime
import json
import sys


def main() -> None:
    scheme, secret, msg_id, ts, body_path = sys.argv[1:6]
    with open(body_path, encoding="utf-8") as f:
        body = f.read()
    if scheme == "standard-webhooks":
        from standardwebhooks import Webhook

        when = datetime.datetime.fromtimestamp(int(ts), tz=datetime.timezone.utc)
        signature = Webhook(secret).sign(msg_id, when, body)
        headers = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": signature}
    elif scheme == "stripe":
        from stripe import WebhookSignature

        headers = {"Stripe-Signature": WebhookSignature.generate_signature_header(body, secret, int(ts))}
    else:
        raise SystemExit(f"unknown scheme {scheme}")
    print(json.dumps(headers))


if __name__ == "__main__":
    main()
