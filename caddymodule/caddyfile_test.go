package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    string // expected JSON of the handler
		wantErr string // substring of the parse error
	}{
		{
			name: "full syntax",
			input: `embed_session {
				tenant acme {
					key {env.ACME_SECRET} k1
					key {file./run/secrets/acme_old}
					public_key /etc/embedgate/acme.pem k2
					frame_ancestors https://app.acme.com https://staging.acme.com
					hosts acme.portal.example.com
					login_url https://app.acme.com/login
				}
				tenant globex {
					key {env.GLOBEX_SECRET}
					frame_ancestors https://globex.example
				}
				session_key {env.SK1} {env.SK2}
				session_ttl 4h
				idle_timeout 15m
				max_token_age 60s
				leeway 10s
				cookie_name __Host-s
				prefix /_gate
				token_param t
				forward_claim org.id X-Embed-Org
				forward_claim email X-Embed-Email
				require scope deals:read
				require claim org.id {http.request.uri.path.1}
			}`,
			want: `{"tenants":[{"id":"acme","keys":[{"secret":"{env.ACME_SECRET}","kid":"k1"},{"secret":"{file./run/secrets/acme_old}"}],"public_keys":[{"file":"/etc/embedgate/acme.pem","kid":"k2"}],"frame_ancestors":["https://app.acme.com","https://staging.acme.com"],"hosts":["acme.portal.example.com"],"login_url":"https://app.acme.com/login"},{"id":"globex","keys":[{"secret":"{env.GLOBEX_SECRET}"}],"frame_ancestors":["https://globex.example"]}],"session_keys":["{env.SK1}","{env.SK2}"],"session_ttl":14400000000000,"idle_timeout":900000000000,"max_token_age":60000000000,"leeway":10000000000,"cookie_name":"__Host-s","prefix":"/_gate","token_param":"t","forward_claims":[{"claim":"org.id","header":"X-Embed-Org"},{"claim":"email","header":"X-Embed-Email"}],"require":[{"scope":"deals:read"},{"claim":"org.id","value":"{http.request.uri.path.1}"}]}`,
		},
		{
			name:  "minimal: defaults stay out of the JSON",
			input: "embed_session {\n tenant acme {\n key s\n }\n}",
			want:  `{"tenants":[{"id":"acme","keys":[{"secret":"s"}]}]}`,
		},
		{
			name:  "token API keys and jwks",
			input: "embed_session {\n tenant acme {\n key {env.S} k1\n api_key 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n api_key {env.ACME_API_KEY_2}\n jwks https://idp.acme.example/.well-known/jwks.json\n }\n}",
			want:  `{"tenants":[{"id":"acme","keys":[{"secret":"{env.S}","kid":"k1"}],"api_keys":["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","{env.ACME_API_KEY_2}"],"jwks":"https://idp.acme.example/.well-known/jwks.json"}]}`,
		},
		{name: "api_key without digest", input: "embed_session {\n tenant a {\n api_key\n }\n}", wantErr: `tenant "a": api_key takes <sha256-hex>`},
		{name: "api_key with two digests", input: "embed_session {\n tenant a {\n api_key x y\n }\n}", wantErr: `tenant "a": api_key takes <sha256-hex>`},
		{name: "jwks without url", input: "embed_session {\n tenant a {\n jwks\n }\n}", wantErr: "jwks takes exactly one argument"},
		// The issuer's user info and query may be credentials: the error names it without them.
		{name: "subject_issuer error hides credentials", input: "embed_session {\n tenant a {\n subject_issuer https://svc:Sup3rS3cret@idp.test/o?k=Sup3rS3cret {\n jwks https://idp.test/j\n jwks https://idp.test/k\n }\n }\n}",
			wantErr: `tenant "a": subject_issuer "https://…@idp.test/o?…": jwks given twice`},
		{name: "jwks twice", input: "embed_session {\n tenant a {\n jwks https://a.test/j\n jwks https://b.test/j\n }\n}", wantErr: `tenant "a": jwks given twice`},
		{
			name:  "tenants file and per-tenant metrics",
			input: "embed_session {\n tenants_file {env.TENANTS}\n metrics_per_tenant\n}",
			want:  `{"tenants_file":"{env.TENANTS}","metrics_per_tenant":true}`,
		},
		{name: "tenants_file without path", input: "embed_session {\n tenants_file\n}", wantErr: "tenants_file takes exactly one argument"},
		{name: "metrics_per_tenant with argument", input: "embed_session {\n metrics_per_tenant yes\n}", wantErr: "wrong argument count"},
		{name: "unknown subdirective", input: "embed_session {\n bogus 1\n}", wantErr: `unrecognized subdirective "bogus"`},
		{name: "unknown tenant subdirective", input: "embed_session {\n tenant acme {\n colour red\n }\n}", wantErr: `tenant "acme": unrecognized subdirective "colour"`},
		{name: "tenant without id", input: "embed_session {\n tenant\n}", wantErr: "tenant needs an id"},
		{name: "key without secret", input: "embed_session {\n tenant a {\n key\n }\n}", wantErr: "key takes <secret> [<kid>]"},
		{name: "key with extra args", input: "embed_session {\n tenant a {\n key s k extra\n }\n}", wantErr: "key takes <secret> [<kid>]"},
		{name: "public_key without file", input: "embed_session {\n tenant a {\n public_key\n }\n}", wantErr: "public_key takes"},
		{name: "frame_ancestors empty", input: "embed_session {\n tenant a {\n frame_ancestors\n }\n}", wantErr: "frame_ancestors needs at least one origin"},
		{name: "hosts empty", input: "embed_session {\n tenant a {\n hosts\n }\n}", wantErr: "hosts needs at least one host"},
		{name: "bad duration", input: "embed_session {\n session_ttl forever\n}", wantErr: "session_ttl"},
		{name: "zero duration", input: "embed_session {\n idle_timeout 0s\n}", wantErr: "must be positive"},
		{name: "prefix two args", input: "embed_session {\n prefix /a /b\n}", wantErr: "prefix takes exactly one argument"},
		{name: "forward_claim one arg", input: "embed_session {\n forward_claim email\n}", wantErr: "forward_claim takes"},
		{name: "require bad kind", input: "embed_session {\n require role admin\n}", wantErr: "require takes"},
		{name: "require claim without value", input: "embed_session {\n require claim org.id\n}", wantErr: "require takes"},
		{name: "session_key empty", input: "embed_session {\n session_key\n}", wantErr: "wrong argument count"},
		{name: "inline argument", input: "embed_session acme", wantErr: "wrong argument count"},
		{name: "inject_bridge", input: "embed_session {\n tenant acme {\n key s\n }\n inject_bridge\n}", want: `{"tenants":[{"id":"acme","keys":[{"secret":"s"}]}],"inject_bridge":true}`},
		{name: "inject_bridge with argument", input: "embed_session {\n inject_bridge on\n}", wantErr: "wrong argument count"},
		{name: "caddy_errors", input: "embed_session {\n tenant acme {\n key s\n }\n caddy_errors\n}", want: `{"tenants":[{"id":"acme","keys":[{"secret":"s"}]}],"caddy_errors":true}`},
		{name: "caddy_errors with argument", input: "embed_session {\n caddy_errors on\n}", wantErr: "wrong argument count"},
		{name: "assertion twice", input: "embed_session {\n assertion\n assertion {\n ttl 1m\n }\n}", wantErr: "assertion given twice"},
		{name: "assertion ttl not a duration", input: "embed_session {\n assertion {\n ttl soon\n }\n}", wantErr: "ttl: "},
		{name: "assertion header twice: the last one", input: "embed_session {\n assertion {\n header X-A\n header X-B\n }\n}", want: `{"assertion":{"header":"X-B"}}`},
		{name: "tenant login_url twice: the last one", input: "embed_session {\n tenant a {\n key s\n login_url https://a.test/1\n login_url https://a.test/2\n }\n}", want: `{"tenants":[{"id":"a","keys":[{"secret":"s"}],"login_url":"https://a.test/2"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			got, err := json.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("JSON mismatch\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}
