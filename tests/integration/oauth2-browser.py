#!/usr/bin/python3
"""The user's browser for test-oauth2 (BROWSER=this script).

Opens the authorization URL `securemail account oauth2-login` hands it; the
provider (oauth2-provider.py) consents at once and redirects to the CLI's
loopback listener, which this follows, as a browser does.  With
SM_TEST_BROWSER_FORGE_STATE set it changes the state on the way, as a
forged redirect from another site would look.
"""
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class Stop(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


try:
    urllib.request.build_opener(Stop).open(sys.argv[1], timeout=10)
    sys.exit("oauth2-browser: the provider did not redirect")
except urllib.error.HTTPError as e:
    if e.code != 302:
        sys.exit("oauth2-browser: HTTP %d from the provider" % e.code)
    location = e.headers["Location"]

if os.environ.get("SM_TEST_BROWSER_FORGE_STATE"):
    parts = urllib.parse.urlsplit(location)
    q = dict(urllib.parse.parse_qsl(parts.query))
    q["state"] = "forged"
    location = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))
urllib.request.urlopen(location, timeout=10).read()
