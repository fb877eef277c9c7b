"""Authlib (Debian's python3-authlib) at its defaults against a running Commons ID.

Driven by cmd/commonsid/interop_test.go, with Debian's /usr/bin/python3.
Input in the environment: INTEROP_ISSUER, INTEROP_CLIENT_ID,
INTEROP_CLIENT_SECRET, INTEROP_REDIRECT_URI,
INTEROP_POST_LOGOUT_REDIRECT_URI, and INTEROP_AUTH_METHOD: the
token_endpoint_auth_method the registration asked for, empty when it asked
for none (then Authlib keeps its own default). AUTHLIB_INSECURE_TRANSPORT=1
lets Authlib talk to the plain-http loopback issuer.

The script speaks JSON lines on stdout, as the Node one does:
{"op":"authorize"|"visit","url":...} is answered by one line on stdin (the
URL the browser was sent back to); {"op":"step",...} reports a step.
"""

import json
import os
import secrets
import sys
import urllib.parse

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oauth2.rfc7636 import create_s256_code_challenge

TIMEOUT = 15

issuer = os.environ["INTEROP_ISSUER"]
client_id = os.environ["INTEROP_CLIENT_ID"]
client_secret = os.environ["INTEROP_CLIENT_SECRET"]
redirect_uri = os.environ["INTEROP_REDIRECT_URI"]
post_logout_uri = os.environ["INTEROP_POST_LOGOUT_REDIRECT_URI"]
auth_method = os.environ.get("INTEROP_AUTH_METHOD") or None
scope = "openid profile email offline_access"


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def browse(op, url):
    send({"op": op, "url": url})
    line = sys.stdin.readline()
    if not line:
        raise RuntimeError("driver closed stdin")
    return line.strip()


class StepError(Exception):
    def __init__(self, error, message):
        super().__init__(message)
        self.error = error


def describe(err):
    error = getattr(err, "error", None)
    desc = getattr(err, "description", None)
    msg = f"{type(err).__name__}: {err}"
    if desc and desc not in msg:
        msg += f": {desc}"
    return {"error": error or "exception", "message": msg}


def step(name, fn):
    try:
        data = fn() or {}
        send({"op": "step", "step": name, "ok": True, **data})
        return data
    except Exception as err:  # every failure is a result, not a crash
        send({"op": "step", "step": name, "ok": False, **describe(err)})
        return None


def skipped(name, because):
    send({"op": "step", "step": name, "ok": False, "error": "not_run", "message": f"not run: {because} failed"})


def check(resp):
    """Raises StepError with the OAuth error of a refused response."""
    if resp.status_code == 200:
        return resp
    error = None
    try:
        error = resp.json().get("error")
    except ValueError:
        pass
    if not error:
        www = resp.headers.get("WWW-Authenticate", "")
        for part in www.replace(",", " ").split():
            if part.startswith("error="):
                error = part[len("error="):].strip('"')
    raise StepError(error or f"http_{resp.status_code}", f"HTTP {resp.status_code}: {resp.text[:300]}")


meta = {}


def discovery():
    r = check(requests.get(issuer + "/.well-known/openid-configuration", timeout=TIMEOUT))
    meta.update(r.json())
    return {"issuer": meta["issuer"]}


step("discovery", discovery)
if not meta:
    sys.exit(0)

jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=TIMEOUT).json())


def new_session():
    # Only what registration reported is passed; everything else is
    # Authlib's default (revocation_endpoint_auth_method included).
    kw = {}
    if auth_method:
        kw["token_endpoint_auth_method"] = auth_method
    return OAuth2Session(
        client_id, client_secret, scope=scope, redirect_uri=redirect_uri,
        code_challenge_method="S256", default_timeout=TIMEOUT, **kw,
    )


def verify_id_token(raw, nonce):
    claims = jwt.decode(raw, jwks, claims_options={
        "iss": {"essential": True, "value": meta["issuer"]},
        "aud": {"essential": True, "value": client_id},
        "nonce": {"essential": nonce is not None, "value": nonce},
    })
    claims.validate()
    return claims


session = new_session()
verifier = secrets.token_urlsafe(48)
nonce = secrets.token_urlsafe(16)
auth_url, state = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
callback = browse("authorize", auth_url)

tokens = {}


def callback_error(cb):
    """Raises the error an authorization response carries. Authlib's
    fetch_token only parses responses that carry a code, as its web
    framework integrations do before calling it."""
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(cb).query)
    if "error" in q:
        raise StepError(q["error"][0], "authorization response: " + urllib.parse.urlsplit(cb).query)


def exchange():
    callback_error(callback)
    t = session.fetch_token(meta["token_endpoint"], authorization_response=callback, code_verifier=verifier, state=state)
    claims = verify_id_token(t["id_token"], nonce)
    tokens.update(t)
    tokens["sub"] = claims["sub"]
    return {"sub": claims["sub"], "refresh_token": bool(t.get("refresh_token")), "access_token": bool(t.get("access_token"))}


step("exchange", exchange)

if tokens:
    sub = tokens["sub"]
    first = dict(tokens)

    def userinfo(access_token):
        def run():
            s = new_session()
            s.token = {"access_token": access_token, "token_type": "Bearer"}
            return {"sub": check(s.get(meta["userinfo_endpoint"])).json().get("sub")}
        return run

    step("userinfo", userinfo(first["access_token"]))

    refreshed = {}

    def refresh():
        t = session.refresh_token(meta["token_endpoint"], refresh_token=first["refresh_token"])
        refreshed.update(t)
        return {"rotated": bool(t.get("refresh_token")) and t["refresh_token"] != first["refresh_token"],
                "access_token": bool(t.get("access_token"))}

    step("refresh", refresh)
    live = refreshed or first

    def introspect():
        r = check(session.introspect_token(meta["introspection_endpoint"], token=live["access_token"])).json()
        return {"active": r.get("active"), "client_id": r.get("client_id"), "sub": r.get("sub")}

    def revoke(token):
        return lambda: check(session.revoke_token(meta["revocation_endpoint"], token=token)) and None

    def introspect_revoked():
        r = check(session.introspect_token(meta["introspection_endpoint"], token=live["access_token"])).json()
        return {"active": r.get("active")}

    def refresh_with(token):
        return lambda: session.refresh_token(meta["token_endpoint"], refresh_token=token) and None

    step("introspect", introspect)
    step("revoke", revoke(live["access_token"]))
    step("introspect_revoked", introspect_revoked)
    step("userinfo_revoked", userinfo(live["access_token"]))
    if live.get("refresh_token"):
        step("revoke_refresh", revoke(live["refresh_token"]))
        step("dead_refresh", refresh_with(live["refresh_token"]))
    else:
        skipped("revoke_refresh", "refresh")
        skipped("dead_refresh", "refresh")
    if refreshed:
        step("rotated_refresh", refresh_with(first["refresh_token"]))
    else:
        skipped("rotated_refresh", "refresh")
else:
    for s in ["userinfo", "refresh", "introspect", "revoke", "introspect_revoked", "userinfo_revoked",
              "revoke_refresh", "dead_refresh", "rotated_refresh"]:
        skipped(s, "exchange")


def reused_code():
    callback_error(callback)
    new_session().fetch_token(meta["token_endpoint"], authorization_response=callback, code_verifier=verifier, state=state)


step("reused_code", reused_code)

# A second authorization whose code is exchanged with the wrong verifier.
s2 = new_session()
v2 = secrets.token_urlsafe(48)
url2, state2 = s2.create_authorization_url(meta["authorization_endpoint"], code_verifier=v2)
cb2 = browse("authorize", url2)


def bad_verifier():
    callback_error(cb2)
    s2.fetch_token(meta["token_endpoint"], authorization_response=cb2, code_verifier=secrets.token_urlsafe(48), state=state2)


step("bad_verifier", bad_verifier)


def logout():
    s = secrets.token_urlsafe(16)
    q = urllib.parse.urlencode({"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": post_logout_uri, "state": s})
    landing = urllib.parse.urlsplit(browse("visit", meta["end_session_endpoint"] + "?" + q))
    back = f"{landing.scheme}://{landing.netloc}{landing.path}"
    if back != post_logout_uri:
        raise StepError("wrong_landing", f"logout ended at {landing.geturl()}, not at {post_logout_uri}")
    got = urllib.parse.parse_qs(landing.query).get("state", [None])[0]
    if got != s:
        raise StepError("wrong_state", f"logout returned state {got}, want {s}")
    return {"landing": back}


if tokens.get("id_token"):
    step("logout", logout)
else:
    skipped("logout", "exchange")
send({"op": "done"})
