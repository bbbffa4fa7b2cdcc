#!/usr/bin/env python3
"""A receiver for order-webhooks: Python 3.8 or later, standard library only.

Verifies the signatures on the raw body in constant time, drops a repeated event by its
X-Event-Id, then processes the event (here: prints it). One JSON line per request on stdout.

Settings, from the environment (at least one of the secrets):
  WEBHOOK_SECRET             webHook.secret: X-Signature must match it
  WEBHOOK_OLD_SECRET         while webHook.secret changes: X-Signature may match this one instead
  WEBHOOK_SIGNATURE_ENCODING webHook.signatureEncoding: hex (the default) or base64
  WEBHOOK_STANDARD_SECRETS   whsec_ secrets, separated by spaces: Standard Webhooks must match one
  WEBHOOK_TOLERANCE_SECONDS  how far webhook-timestamp may be from this clock (default 300)
  HOST, PORT                 where to listen (default 127.0.0.1 and 8080; PORT=0: any free port)

Answers 204 to a webhook that verifies (a duplicate too: it was processed), 401 to one that does
not, 500 when processing failed (the service retries it later).
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1024 * 1024


class VerificationError(Exception):
    """Every verification failure, with a code: HEADER_MISSING, SIGNATURE_MISMATCH,
    TIMESTAMP_INVALID, TIMESTAMP_TOO_OLD, TIMESTAMP_TOO_NEW, EVENT_ID_MISMATCH, BODY_INVALID."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def verify_x_signature(secrets, body, header, encoding="hex"):
    """X-Signature: HMAC-SHA256 of the body keyed by the secret's UTF-8 bytes, hex or base64."""
    if not header or not header.strip():
        raise VerificationError("HEADER_MISSING", "the X-Signature header is missing")
    given = header.strip()
    if encoding == "hex":
        given = given.lower()  # hex is case-insensitive; base64 is not
    matched = False
    for secret in secrets:  # every one is tried, so the time does not tell which matched
        digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
        expected = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode("ascii")
        matched |= hmac.compare_digest(given.encode("utf-8"), expected.encode("ascii"))
    if not matched:
        raise VerificationError("SIGNATURE_MISMATCH", "X-Signature does not match the body")


def verify_standard_webhook(secrets, body, headers, tolerance=300, now=None):
    """webhook-signature: a "v1,<base64>" HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed by the
    base64-decoded part of a whsec_ secret; the timestamp within the tolerance."""
    msg_id, timestamp, signatures = (
        (headers.get(name) or "").strip() for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    for name, value in (("webhook-id", msg_id), ("webhook-timestamp", timestamp), ("webhook-signature", signatures)):
        if not value:
            raise VerificationError("HEADER_MISSING", "the %s header is missing" % name)
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise VerificationError("TIMESTAMP_INVALID", "webhook-timestamp is not a whole number of seconds")
    now = int(time.time()) if now is None else now
    if now - int(timestamp) > tolerance:
        raise VerificationError("TIMESTAMP_TOO_OLD", "webhook-timestamp is more than %d s old" % tolerance)
    if int(timestamp) - now > tolerance:
        raise VerificationError("TIMESTAMP_TOO_NEW", "webhook-timestamp is more than %d s ahead" % tolerance)
    signed = b"%s.%s." % (msg_id.encode("utf-8"), timestamp.encode("ascii")) + body
    given = [entry.encode("utf-8") for entry in signatures.split(" ")]
    matched = False
    for secret in secrets:
        key = base64.b64decode(secret[len("whsec_"):])
        expected = b"v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
        for entry in given:
            matched |= hmac.compare_digest(entry, expected)
    if not matched:
        raise VerificationError("SIGNATURE_MISMATCH", "no webhook-signature matches the body")
    return msg_id


def verify_webhook(body, headers, settings, now=None):
    """Checks what the settings ask for; returns the event: eventId, attempt, orderId, eventType."""
    if settings["secrets"]:
        verify_x_signature(settings["secrets"], body, headers.get("x-signature"), settings["encoding"])
    signed_id = None
    if settings["standard_secrets"]:
        signed_id = verify_standard_webhook(settings["standard_secrets"], body, headers, settings["tolerance"], now)
    # X-Signature does not cover the headers; webhook-id is signed, so it must agree.
    event_id = (headers.get("x-event-id") or "").strip() or signed_id
    if not event_id:
        raise VerificationError("HEADER_MISSING", "the X-Event-Id header is missing")
    if signed_id is not None and event_id != signed_id:
        raise VerificationError("EVENT_ID_MISMATCH", "X-Event-Id differs from the signed webhook-id")
    try:
        event = json.loads(body)
        order_id, event_type = event["orderId"], event["eventType"]
        if not isinstance(order_id, str) or not isinstance(event_type, str):
            raise TypeError("not strings")
    except (ValueError, TypeError, KeyError):
        raise VerificationError("BODY_INVALID", 'the body is not {"orderId": "...", "eventType": "..."}') from None
    attempt = (headers.get("x-event-attempt") or "").strip()
    return {"eventId": event_id, "attempt": int(attempt) if attempt.isdigit() else None, "orderId": order_id, "eventType": event_type}


class ProcessedEvents:
    """The event ids processed, so that a retry or a replay is not processed twice. In memory, for
    one process, forgotten on restart: in production keep them in your database, inserted in the
    same transaction as the work (INSERT ... ON CONFLICT DO NOTHING)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._state = {}

    def claim(self, event_id):
        """'claimed' (process it), 'duplicate' (processed) or 'busy' (being processed)."""
        with self._lock:
            state = self._state.get(event_id)
            if state is None:
                self._state[event_id] = "claimed"
                return "claimed"
            return "duplicate" if state == "done" else "busy"

    def complete(self, event_id):
        with self._lock:
            self._state[event_id] = "done"

    def release(self, event_id):
        with self._lock:
            if self._state.get(event_id) == "claimed":
                del self._state[event_id]


def process(event):
    """Your work goes here; an exception answers 500 and the service sends the event again."""


def settings_from(env):
    secrets = [env[name] for name in ("WEBHOOK_SECRET", "WEBHOOK_OLD_SECRET") if env.get(name)]
    standard = env.get("WEBHOOK_STANDARD_SECRETS", "").split()
    if not secrets and not standard:
        sys.exit("receiver: set WEBHOOK_SECRET, WEBHOOK_STANDARD_SECRETS or both")
    encoding = env.get("WEBHOOK_SIGNATURE_ENCODING", "hex")
    if encoding not in ("hex", "base64"):
        sys.exit("receiver: WEBHOOK_SIGNATURE_ENCODING must be hex or base64")
    return {"secrets": secrets, "encoding": encoding, "standard_secrets": standard, "tolerance": int(env.get("WEBHOOK_TOLERANCE_SECONDS", "300"))}


def report(line):
    print(json.dumps(line), flush=True)


class Handler(BaseHTTPRequestHandler):
    settings = None
    processed = ProcessedEvents()

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            return self.answer(413)
        body = self.rfile.read(length)  # the raw bytes: verified before anything parses them
        try:
            event = verify_webhook(body, self.headers, self.settings)
        except VerificationError as error:
            report({"verified": False, "code": error.code, "eventId": self.headers.get("x-event-id")})
            return self.answer(401)
        claim = self.processed.claim(event["eventId"])
        if claim == "claimed":
            try:
                process(event)
            except Exception:
                self.processed.release(event["eventId"])
                report({"verified": True, "processed": False, **event})
                return self.answer(500)
            self.processed.complete(event["eventId"])
        report({"verified": True, "duplicate": claim != "claimed", **event})
        self.answer(409 if claim == "busy" else 204)

    def answer(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass  # one JSON line per request is printed instead


def main():
    Handler.settings = settings_from(os.environ)
    host = os.environ.get("HOST", "127.0.0.1")
    server = ThreadingHTTPServer((host, int(os.environ.get("PORT", "8080"))), Handler)
    report({"listening": "http://%s:%d" % (host, server.server_address[1])})
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
