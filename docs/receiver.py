"""A webhook receiver for sanctions-timeline that trusts nothing it has not verified.

    WEBHOOK_SECRET=whsec_... python docs/receiver.py 9001

Each POST is checked with the `standardwebhooks` package (the signature over
`<webhook-id>.<webhook-timestamp>.<body>`, and a timestamp within five minutes) before
its body is read: 204 and one line on standard output when it verifies, 401 when it
does not. The service retries anything but a 2xx, so a receiver that cannot store an
event should answer 5xx; `webhook-id` (the event id) tells a redelivery apart.
"""

from __future__ import annotations

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

WEBHOOK = Webhook(os.environ["WEBHOOK_SECRET"])


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            delivery = WEBHOOK.verify(body, dict(self.headers.items()))
        except WebhookVerificationError as error:
            print(f"rejected: {error}", flush=True)
            self.send_response(401)
        else:
            event, status = delivery["event"], delivery["stream_status"]
            measures = ", ".join(status["measures"]) or "none"
            print(
                f"verified {self.headers['webhook-id']}: {event['type']} {event['stream']}"
                f" effective {event['effective_date']} -> {status['status']} ({measures})",
                flush=True,
            )
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass  # one line per delivery is printed above


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9001
    ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()
