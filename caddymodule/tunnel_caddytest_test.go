package caddymodule_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// newEchoUpstream is an app that accepts any WebSocket handshake and then
// echoes what the tunnel carries until either end closes it.
func newEchoUpstream(t *testing.T) *upstream {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "not a handshake", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		if brw.Flush() == nil {
			_, _ = io.Copy(conn, brw)
		}
	}))
	t.Cleanup(srv.Close)
	return &upstream{addr: strings.TrimPrefix(srv.URL, "http://")}
}

// TestCaddytestSignoutClosesOpenWebSocket stops a WebSocket from outliving
// its session: the handshake is the only request the gateway sees, then
// Caddy's proxy tunnels bytes no check reads, so a socket opened before a
// sign-out kept the user's access to the app open for as long as it stayed
// up. Through the real proxy, the sign-out now closes the tunnel within
// the gateway's check interval (a second).
func TestCaddytestSignoutClosesOpenWebSocket(t *testing.T) {
	tester, _ := startGateway(t, newEchoUpstream(t), "")
	tester.Client.Jar = nil
	cookie := login(t, tester, nil)

	conn, err := net.Dial("tcp", strings.TrimPrefix(ctBase, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(conn, "GET /socket HTTP/1.1\r\nHost: "+strings.TrimPrefix(ctBase, "http://")+
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nOrigin: https://app.acme.test\r\nCookie: "+ctCookie+"="+cookie+"\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	echo := func() error {
		if _, err := io.WriteString(conn, "ping"); err != nil {
			return err
		}
		got := make([]byte, 4)
		if _, err := io.ReadFull(br, got); err != nil {
			return err
		}
		if string(got) != "ping" {
			t.Fatalf("the tunnel carried %q", got)
		}
		return nil
	}
	if err := echo(); err != nil {
		t.Fatalf("the tunnel is not open: %v", err)
	}

	do(t, tester, http.MethodPost, "/.embed/signout", cookie, http.StatusNoContent, "Origin", "https://app.acme.test")
	// The next read ends when the proxy closes the tunnel; the deadline
	// (10 s from the handshake) only stops a test that would hang.
	_, err = io.Copy(io.Discard, br)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the tunnel is still open after the sign-out")
	}
}
