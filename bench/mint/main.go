// Command mint writes n one-time tokens for the load harness, one per line,
// so that an exchange-only run never replays a token.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func main() {
	n := flag.Int("n", 1, "number of tokens")
	tenant := flag.String("tenant", "bench", "tenant id (iss and aud)")
	secret := flag.String("secret", os.Getenv("EMBEDGATE_SECRET"), "HS256 secret (default $EMBEDGATE_SECRET)")
	ttl := flag.Duration("ttl", 110*time.Second, "token lifetime")
	flag.Parse()
	if len(*secret) < 32 {
		fmt.Fprintln(os.Stderr, "mint: secret must be at least 32 bytes")
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	now := time.Now()
	jti := make([]byte, 16)
	for i := 0; i < *n; i++ {
		_, _ = rand.Read(jti)
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": *tenant, "aud": *tenant, "sub": fmt.Sprintf("user-%d@bench.test", i),
			"iat": now.Unix(), "exp": now.Add(*ttl).Unix(), "jti": hex.EncodeToString(jti),
		}).SignedString([]byte(*secret))
		if err != nil {
			fmt.Fprintln(os.Stderr, "mint:", err)
			os.Exit(1)
		}
		fmt.Fprintln(out, tok)
	}
}
