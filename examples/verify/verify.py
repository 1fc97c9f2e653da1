"""Verify an embedgate identity assertion (X-Embed-Assertion) in Python with
PyJWT (Debian: python3-jwt python3-cryptography), against the gateway's JWKS.

Usage: python3 verify.py <jwks-url> <issuer> <audience> <token>
Prints the claims as JSON, or the reason for refusing and exit status 1.
"""
import json
import sys

import jwt

# PyJWKClient caches the key set and fetches again for a kid it does not
# know (the gateway allows caching for five minutes). Keep one per process.
_clients = {}


def verify_assertion(token, jwks_url, issuer, audience):
    client = _clients.setdefault(jwks_url, jwt.PyJWKClient(jwks_url))
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=["ES256", "EdDSA"],
        issuer=issuer,
        audience=audience,
        leeway=30,
        options={"require": ["iss", "aud", "sub", "iat", "exp"]},
    )


if __name__ == "__main__":
    if len(sys.argv) != 5:
        print("usage: python3 verify.py <jwks-url> <issuer> <audience> <token>", file=sys.stderr)
        sys.exit(2)
    try:
        claims = verify_assertion(sys.argv[4], sys.argv[1], sys.argv[2], sys.argv[3])
    except jwt.PyJWKClientError as e:
        print(f"jwks: {e}", file=sys.stderr)
        sys.exit(1)
    except jwt.InvalidTokenError as e:
        print(f"refused: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(claims))
