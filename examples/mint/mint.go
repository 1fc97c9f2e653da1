// Command mint mints a one-time embedgate SSO token in Go, standard library
// only.
//
// Usage: go run ./examples/mint <tenant> <subject>   (secret in EMBEDGATE_SECRET)
package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

func mintEmbedToken(tenant, secret, sub string, extra map[string]any) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	now := time.Now().Unix()
	claims := map[string]any{"iss": tenant, "aud": tenant, "sub": sub, "iat": now, "exp": now + 60, "jti": hex.EncodeToString(jti)}
	for k, v := range extra {
		claims[k] = v
	}
	head, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	in := b64(head) + "." + b64(body)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(in))
	return in + "." + b64(mac.Sum(nil)), nil
}

func main() {
	if len(os.Args) != 3 || os.Getenv("EMBEDGATE_SECRET") == "" {
		fmt.Fprintln(os.Stderr, "usage: go run ./examples/mint <tenant> <subject>   (secret in EMBEDGATE_SECRET)")
		os.Exit(2)
	}
	tok, err := mintEmbedToken(os.Args[1], os.Getenv("EMBEDGATE_SECRET"), os.Args[2], map[string]any{"email": os.Args[2]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(tok)
}
