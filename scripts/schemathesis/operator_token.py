"""Prints an operator's access token from `biometric-passkey dev`'s sign-in.

Signs in the way the dashboard does (authorization code with PKCE, the
dashboard's client and callback, every management scope ticked) against the
development sign-in of the management runtime at the given origin.

Usage: operator_token.py http://127.0.0.1:PORT [SUB]
"""

import base64
import hashlib
import html.parser
import json
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class HiddenFields(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("type") == "hidden":
            self.fields.append((attrs["name"], attrs.get("value") or ""))


def main():
    origin = sys.argv[1].rstrip("/")
    sub = sys.argv[2] if len(sys.argv) > 2 else "schemathesis"
    opener = urllib.request.build_opener(NoRedirect)

    with opener.open(f"{origin}/runtime-config.json") as response:
        config = json.load(response)
    oidc = config["oidc"]
    with opener.open(oidc["authority"].rstrip("/") + "/.well-known/openid-configuration") as response:
        discovery = json.load(response)

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    callback = f"{origin}/auth/callback"
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": oidc["clientId"],
            "redirect_uri": callback,
            "scope": " ".join(oidc["scopes"]),
            "state": "schemathesis",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    with opener.open(f"{discovery['authorization_endpoint']}?{query}") as response:
        page = HiddenFields()
        page.feed(response.read().decode())

    form = list(page.fields) + [("sub", sub)]
    form += [("scope", s) for s in oidc["scopes"] if s.startswith(oidc["scopePrefix"] + "management.")]
    request = urllib.request.Request(
        discovery["authorization_endpoint"], data=urllib.parse.urlencode(form).encode(), method="POST"
    )
    try:
        opener.open(request)
        sys.exit("operator_token.py: the sign-in did not redirect")
    except urllib.error.HTTPError as redirect:
        if redirect.code != 303:
            sys.exit(f"operator_token.py: the sign-in answered {redirect.code}")
        location = redirect.headers["Location"]
    code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]

    token_form = urllib.parse.urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": callback,
            "client_id": oidc["clientId"],
            "code_verifier": verifier,
        }
    ).encode()
    with opener.open(urllib.request.Request(discovery["token_endpoint"], data=token_form)) as response:
        print(json.load(response)["access_token"])


if __name__ == "__main__":
    main()
