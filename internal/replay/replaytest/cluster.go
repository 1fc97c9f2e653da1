package replaytest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/embedgate/embedgate/internal/testsupport"
)

// Cluster is a Redis Cluster on loopback made with `redis-cli --cluster
// create`: Masters masters (and ReplicasPerMaster replicas each), stopped
// when the test ends.
type Cluster struct {
	t     testing.TB
	Nodes []*RedisServer
	admin *redis.ClusterClient
	tls   *TLSFiles
}

// ClusterOptions adjust StartCluster.
type ClusterOptions struct {
	Masters           int // default 3
	ReplicasPerMaster int
	// NodeArgs are more redis-server arguments for every node.
	NodeArgs []string
	// TLS serves clients, the cluster bus and replication over TLS only.
	TLS *TLSFiles
}

// StartCluster starts the nodes, creates the cluster and waits until every
// node reports cluster_state:ok.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	Require(t, "redis-cli")
	if opts.Masters <= 0 {
		opts.Masters = 3
	}
	c := &Cluster{t: t, tls: opts.TLS}
	n := opts.Masters * (1 + opts.ReplicasPerMaster)
	addrs := make([]string, 0, n)
	for range n {
		port := freeClusterPort(t)
		args := append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000"}, opts.NodeArgs...)
		if opts.TLS != nil {
			args = append(args, "--tls-cluster", "yes", "--tls-replication", "yes")
		}
		s := &RedisServer{t: t, Port: port, dir: t.TempDir(), opts: RedisOptions{Args: args, TLS: opts.TLS}}
		Require(t, "redis-server")
		s.Start()
		t.Cleanup(s.Stop)
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr())
	}
	var args []string
	if f := opts.TLS; f != nil {
		args = []string{"--tls", "--cacert", f.CA, "--cert", f.ClientCert, "--key", f.ClientKey}
	}
	args = append(append(args, "--cluster", "create"), addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.ReplicasPerMaster), "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(20 * time.Second)
	c.admin = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, DialTimeout: time.Second, TLSConfig: c.tlsConfig()})
	t.Cleanup(func() { _ = c.admin.Close() })
	return c
}

// freeClusterPort is a free port whose cluster bus port (+10000) is free too.
func freeClusterPort(t testing.TB) int {
	t.Helper()
	for range 50 {
		p := testsupport.FreePort(t)
		if p+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		if err != nil {
			continue
		}
		_ = l.Close()
		return p
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

// tlsConfig is the client TLS config, nil without TLS.
func (c *Cluster) tlsConfig() *tls.Config {
	if c.tls == nil {
		return nil
	}
	cfg, err := c.tls.ClientConfig()
	if err != nil {
		c.t.Fatal(err)
	}
	return cfg
}

// URL is the redis+cluster:// (rediss+cluster://) URL naming every node as
// a seed.
func (c *Cluster) URL() string {
	scheme := "redis+cluster://"
	if c.tls != nil {
		scheme = "rediss+cluster://"
	}
	seeds := make([]string, 0, len(c.Nodes)-1)
	for _, n := range c.Nodes[1:] {
		seeds = append(seeds, "addr="+n.Addr())
	}
	return scheme + c.Nodes[0].Addr() + "?" + strings.Join(seeds, "&")
}

// Client is a cluster client for inspecting keys.
func (c *Cluster) Client() *redis.ClusterClient { return c.admin }

// WaitOK waits until every running node reports cluster_state:ok and knows
// all the others.
func (c *Cluster) WaitOK(within time.Duration) {
	c.t.Helper()
	waitFor(c.t, "cluster_state:ok on every node", within, func(ctx context.Context) error {
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			if err := wantClusterInfo(ctx, n.Addr(), c.tlsConfig(), "cluster_state:ok", fmt.Sprintf("cluster_known_nodes:%d", len(c.Nodes))); err != nil {
				return err
			}
		}
		return nil
	})
}

func wantClusterInfo(ctx context.Context, addr string, tlsConfig *tls.Config, lines ...string) error {
	cl := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1, TLSConfig: tlsConfig})
	defer cl.Close()
	info, err := cl.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	for _, l := range lines {
		if !strings.Contains(info, l) {
			return fmt.Errorf("%s: CLUSTER INFO lacks %q", addr, l)
		}
	}
	return nil
}

// node runs fn with a plain client to n.
func (c *Cluster) node(n *RedisServer, fn func(ctx context.Context, cl *redis.Client) error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl := redis.NewClient(&redis.Options{Addr: n.Addr(), DialTimeout: time.Second, MaxRetries: -1, TLSConfig: c.tlsConfig()})
	defer cl.Close()
	if err := fn(ctx, cl); err != nil {
		c.t.Fatalf("%s: %v", n.Addr(), err)
	}
}

func (c *Cluster) id(n *RedisServer) string {
	var id string
	c.node(n, func(ctx context.Context, cl *redis.Client) error {
		var err error
		id, err = cl.Do(ctx, "CLUSTER", "MYID").Text()
		return err
	})
	return id
}

// Owner is the master serving slot.
func (c *Cluster) Owner(slot int) *RedisServer {
	c.t.Helper()
	var owner string
	c.node(c.Nodes[0], func(ctx context.Context, cl *redis.Client) error {
		shards, err := cl.ClusterShards(ctx).Result()
		for _, sh := range shards {
			for _, r := range sh.Slots {
				if r.Start <= int64(slot) && int64(slot) <= r.End {
					for _, n := range sh.Nodes {
						if n.Role == "master" {
							owner = net.JoinHostPort(n.IP, strconv.FormatInt(max(n.Port, n.TLSPort), 10))
						}
					}
				}
			}
		}
		return err
	})
	for _, n := range c.Nodes {
		if n.Addr() == owner {
			return n
		}
	}
	c.t.Fatalf("no node serves slot %d", slot)
	return nil
}

// Migration is a slot being moved from one master to another, by hand, as
// `redis-cli --cluster reshard` does: keys are moved one MIGRATE at a time,
// and until Finish the slot is MIGRATING on From and IMPORTING on To.
type Migration struct {
	c        *Cluster
	Slot     int
	From, To *RedisServer
}

// StartMigration puts slot into migration from its owner to another master.
func (c *Cluster) StartMigration(slot int, to *RedisServer) *Migration {
	c.t.Helper()
	m := &Migration{c: c, Slot: slot, From: c.Owner(slot), To: to}
	fromID, toID := c.id(m.From), c.id(m.To)
	c.node(m.To, func(ctx context.Context, cl *redis.Client) error {
		return cl.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", fromID).Err()
	})
	c.node(m.From, func(ctx context.Context, cl *redis.Client) error {
		return cl.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", toID).Err()
	})
	return m
}

// Move migrates keys (all in the slot) to the new owner.
func (m *Migration) Move(keys ...string) {
	m.c.t.Helper()
	m.c.node(m.From, func(ctx context.Context, cl *redis.Client) error {
		args := make([]any, 0, 7+len(keys))
		args = append(args, "MIGRATE", "127.0.0.1", m.To.Port, "", 0, 5000, "KEYS")
		for _, k := range keys {
			args = append(args, k)
		}
		return cl.Do(ctx, args...).Err()
	})
}

// Finish assigns the slot to the new owner on every master.
func (m *Migration) Finish() {
	m.c.t.Helper()
	toID := m.c.id(m.To)
	for _, n := range []*RedisServer{m.To, m.From} {
		m.c.node(n, func(ctx context.Context, cl *redis.Client) error {
			return cl.Do(ctx, "CLUSTER", "SETSLOT", m.Slot, "NODE", toID).Err()
		})
	}
}
