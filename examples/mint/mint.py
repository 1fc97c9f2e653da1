"""Mint a one-time embedgate SSO token in Python, standard library only.

Usage: python3 mint.py <tenant> <subject>   (secret in EMBEDGATE_SECRET)
"""
import base64, hashlib, hmac, json, os, sys, time, uuid


def mint_embed_token(tenant, secret, sub, **extra):
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"iss": tenant, "aud": tenant, "sub": sub, "iat": now,
                           "exp": now + 60, "jti": str(uuid.uuid4()), **extra}).encode())
    sig = b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


if __name__ == "__main__":
    secret = os.environ.get("EMBEDGATE_SECRET", "")
    if len(sys.argv) != 3 or not secret:
        print("usage: python3 mint.py <tenant> <subject>   (secret in EMBEDGATE_SECRET)", file=sys.stderr)
        sys.exit(2)
    print(mint_embed_token(sys.argv[1], secret, sys.argv[2], email=sys.argv[2]))
