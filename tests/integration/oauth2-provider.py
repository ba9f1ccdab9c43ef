#!/usr/bin/python3
"""The provider's OAuth 2.0 server for the tests (issue 7), on 127.0.0.1.

It is what a mail provider runs next to its IMAP/SMTP servers: the token
endpoint (RFC 6749 §3.2: refresh_token, authorization_code with PKCE S256
(RFC 7636), and the device grant of RFC 8628), the authorization endpoint
(consent is given at once: the test user is always signed in), the device
authorization endpoint, and the introspection endpoint (RFC 7662) that the
test stack's Dovecot asks about every bearer token (mailstack.sh
SM_STACK_OAUTH2_PORT).

Test control (JSON):
  POST /control/seed      {"username": "alice"} -> {"refresh_token": ...}
  POST /control/config    {"expires_in": N, "device_slow_down": bool,
                           "rotate": bool}
  POST /control/revoke    revokes every refresh and access token
  GET  /control/stats     counters and every token issued (for log checks)

usage: oauth2-provider.py PORT CLIENT_ID
Prints "ready" on stdout once it listens.
"""
import base64
import hashlib
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
CLIENT_ID = sys.argv[2]

lock = threading.Lock()
state = {
    "expires_in": 3600,
    "device_slow_down": True,    # polls: authorization_pending, slow_down, then tokens
    "rotate": False,
    "refresh": {},               # refresh token -> username
    "access": {},                # access token -> (username, expiry)
    "codes": {},                 # code -> (username, code_challenge, redirect_uri)
    "devices": {},               # device_code -> {"username", "polls", "last"}
    "issued": [],                # every token, so the test can look for it in logs
    "stats": {"refresh": 0, "authorization_code": 0, "device_code": 0, "introspect": 0,
              "introspect_active": 0, "slow_down": 0, "pending": 0, "too_fast": 0},
}
USERNAME = "alice"


def new_token(prefix):
    t = prefix + secrets.token_urlsafe(24)
    state["issued"].append(t)
    return t


def issue(username, with_refresh):
    access = new_token("at-")
    state["access"][access] = (username, time.time() + state["expires_in"])
    body = {"access_token": access, "token_type": "Bearer", "expires_in": state["expires_in"]}
    if with_refresh:
        refresh = new_token("rt-")
        state["refresh"][refresh] = username
        body["refresh_token"] = refresh
    return body


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("oauth2-provider: " + (fmt % args) + "\n")

    def reply(self, code, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n).decode() if n else ""
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(raw or "{}")
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        with lock:
            if url.path == "/control/stats":
                return self.reply(200, {"stats": state["stats"], "issued": state["issued"]})
            if url.path == "/authorize":
                return self.authorize(q)
        self.reply(404, {"error": "not_found"})

    def authorize(self, q):
        # RFC 6749 §4.1.1 + RFC 7636 §4.3: only S256, and a loopback
        # redirect (RFC 8252 §7.3) for this native client.
        redirect = q.get("redirect_uri", "")
        r = urllib.parse.urlsplit(redirect)
        if (q.get("client_id") != CLIENT_ID or q.get("response_type") != "code"
                or r.scheme != "http" or r.hostname != "127.0.0.1"
                or q.get("code_challenge_method") != "S256" or not q.get("code_challenge")):
            return self.reply(400, {"error": "invalid_request"})
        code = secrets.token_urlsafe(16)
        state["codes"][code] = (USERNAME, q["code_challenge"], redirect)
        sep = "&" if r.query else "?"
        target = redirect + sep + urllib.parse.urlencode({"code": code, "state": q.get("state", "")})
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        form = self.body()
        with lock:
            if url.path == "/token":
                return self.token(form)
            if url.path == "/device":
                return self.device(form)
            if url.path == "/introspect":
                st = state["stats"]
                st["introspect"] += 1
                entry = state["access"].get(form.get("token", ""))
                if entry is None or entry[1] < time.time():
                    return self.reply(200, {"active": False})
                st["introspect_active"] += 1
                return self.reply(200, {"active": True, "username": entry[0]})
            if url.path == "/control/seed":
                refresh = new_token("rt-")
                state["refresh"][refresh] = form.get("username", USERNAME)
                return self.reply(200, {"refresh_token": refresh})
            if url.path == "/control/config":
                for k in ("expires_in", "device_slow_down", "rotate"):
                    if k in form:
                        state[k] = form[k]
                return self.reply(200, {})
            if url.path == "/control/revoke":
                state["refresh"].clear()
                state["access"].clear()
                return self.reply(200, {})
        self.reply(404, {"error": "not_found"})

    def device(self, form):
        if form.get("client_id") != CLIENT_ID:
            return self.reply(401, {"error": "invalid_client"})
        code = secrets.token_urlsafe(16)
        user_code = "%04d-%04d" % (secrets.randbelow(10000), secrets.randbelow(10000))
        state["devices"][code] = {"username": USERNAME, "polls": 0, "last": 0.0, "interval": 1}
        self.reply(200, {"device_code": code, "user_code": user_code,
                         "verification_uri": "http://127.0.0.1:%d/activate" % PORT,
                         "expires_in": 600, "interval": 1})

    def token(self, form):
        st = state["stats"]
        if form.get("client_id") != CLIENT_ID:
            return self.reply(401, {"error": "invalid_client"})
        grant = form.get("grant_type")
        if grant == "refresh_token":
            st["refresh"] += 1
            user = state["refresh"].get(form.get("refresh_token", ""))
            if user is None:
                return self.reply(400, {"error": "invalid_grant",
                                        "error_description": "the refresh token was revoked"})
            body = issue(user, state["rotate"])
            if state["rotate"]:
                del state["refresh"][form["refresh_token"]]
            return self.reply(200, body)
        if grant == "authorization_code":
            st["authorization_code"] += 1
            entry = state["codes"].pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            if entry is None or entry[2] != form.get("redirect_uri"):
                return self.reply(400, {"error": "invalid_grant"})
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if digest != entry[1]:
                return self.reply(400, {"error": "invalid_grant", "error_description": "PKCE verification failed"})
            return self.reply(200, issue(entry[0], True))
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            st["device_code"] += 1
            d = state["devices"].get(form.get("device_code", ""))
            if d is None:
                return self.reply(400, {"error": "expired_token"})
            now = time.time()
            # RFC 8628 §3.5: a client must wait "interval" seconds between
            # polls, and 5 s more after each slow_down.  A poll sooner than
            # that is counted (the test checks none happens) and slowed.
            if d["last"] and now - d["last"] < d["interval"] - 0.2:
                st["too_fast"] += 1
                d["last"] = now
                return self.reply(400, {"error": "slow_down"})
            d["last"] = now
            d["polls"] += 1
            if d["polls"] == 1:
                st["pending"] += 1
                return self.reply(400, {"error": "authorization_pending"})
            if d["polls"] == 2 and state["device_slow_down"]:
                st["slow_down"] += 1
                d["interval"] += 5
                return self.reply(400, {"error": "slow_down"})
            del state["devices"][form["device_code"]]
            return self.reply(200, issue(d["username"], True))
        return self.reply(400, {"error": "unsupported_grant_type"})


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
