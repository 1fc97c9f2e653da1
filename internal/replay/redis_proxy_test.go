package replay_test

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// proxy is a TCP relay to a Redis server that a test can cut, to
// disconnect one client while others stay connected.
type proxy struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	subs   map[net.Conn]bool // client connections that sent SUBSCRIBE
	routed map[net.Conn]net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target, conns: map[net.Conn]struct{}{}, subs: map[net.Conn]bool{}, routed: map[net.Conn]net.Conn{}}
	go p.serve()
	t.Cleanup(func() { _ = l.Close(); p.Cut() })
	return p
}

func (p *proxy) Addr() string { return p.l.Addr().String() }

// Cut closes every relayed connection and refuses new ones until Restore.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// Switch sends new connections to target and closes the relayed ones,
// except subscriptions, which stay on the old server: what a client sees
// when a failover moves its pooled connections but not its pub/sub one.
func (p *proxy) Switch(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
	for in, out := range p.routed {
		if !p.subs[in] {
			_ = in.Close()
			_ = out.Close()
		}
	}
}

// Restore relays new connections again.
func (p *proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *proxy) serve() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.relay(in)
	}
}

func (p *proxy) relay(in net.Conn) {
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		_ = in.Close()
		return
	}
	p.mu.Unlock()
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	out, err := net.Dial("tcp", target)
	if err != nil {
		_ = in.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		_ = in.Close()
		_ = out.Close()
		return
	}
	p.conns[in], p.conns[out] = struct{}{}, struct{}{}
	p.routed[in] = out
	p.mu.Unlock()
	go func() { _, _ = io.Copy(out, &sniffer{p: p, c: in}); _ = out.Close(); _ = in.Close() }()
	_, _ = io.Copy(in, out)
	_ = in.Close()
	_ = out.Close()
}

// sniffer marks a client connection that subscribes.
type sniffer struct {
	p    *proxy
	c    net.Conn
	seen bool
}

func (s *sniffer) Read(b []byte) (int, error) {
	n, err := s.c.Read(b)
	if !s.seen && bytes.Contains(bytes.ToLower(b[:n]), []byte("subscribe")) {
		s.seen = true
		s.p.mu.Lock()
		s.p.subs[s.c] = true
		s.p.mu.Unlock()
	}
	return n, err
}
