package replaytest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name the sentinels monitor.
const SentinelMaster = "mymaster"

// Sentinel is a Sentinel deployment on loopback: one master, one replica
// and three sentinels (quorum 2), all stopped when the test ends.
type Sentinel struct {
	t         testing.TB
	Nodes     []*RedisServer // the data nodes; Nodes[0] is the first master
	Sentinels []*RedisServer
	clients   map[*RedisServer]*redis.SentinelClient
}

// SentinelOptions adjust StartSentinel.
type SentinelOptions struct {
	// NodeArgs are more redis-server arguments for both data nodes.
	NodeArgs []string
	// DownAfter is how long a master must not answer before the sentinels
	// fail it over. Default 1s.
	DownAfter time.Duration
}

// StartSentinel starts the deployment and waits until every sentinel knows
// the replica and the other two sentinels, so a failover can run at once.
func StartSentinel(t testing.TB, opts SentinelOptions) *Sentinel {
	t.Helper()
	Require(t, "redis-sentinel")
	if opts.DownAfter <= 0 {
		opts.DownAfter = time.Second
	}
	s := &Sentinel{t: t, clients: map[*RedisServer]*redis.SentinelClient{}}
	master := StartRedisWith(t, RedisOptions{Args: opts.NodeArgs})
	replica := StartRedisWith(t, RedisOptions{Args: append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port)}, opts.NodeArgs...)})
	s.Nodes = []*RedisServer{master, replica}
	s.waitFor("replica in sync", 10*time.Second, func(ctx context.Context) error {
		return wantInfo(ctx, replica.Addr(), "replication", "master_link_status:up")
	})
	conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\nsentinel down-after-milliseconds %s %d\n"+
		"sentinel failover-timeout %s 6000\nsentinel parallel-syncs %s 1\n",
		SentinelMaster, master.Port, SentinelMaster, opts.DownAfter.Milliseconds(), SentinelMaster, SentinelMaster)
	for range 3 {
		sn := StartRedisWith(t, RedisOptions{Sentinel: true, Config: conf})
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
		t.Cleanup(func() { _ = c.Close() })
		s.Sentinels, s.clients[sn] = append(s.Sentinels, sn), c
	}
	s.waitFor("sentinels to know each other and the replica", 20*time.Second, func(ctx context.Context) error {
		for _, sn := range s.Sentinels {
			m, err := s.sentinel(sn).Master(ctx, SentinelMaster).Result()
			if err != nil {
				return err
			}
			if m["num-other-sentinels"] != "2" || m["num-slaves"] != "1" {
				return fmt.Errorf("sentinel %s: %s other sentinels, %s replicas", sn.Addr(), m["num-other-sentinels"], m["num-slaves"])
			}
		}
		return nil
	})
	return s
}

// URL is the redis+sentinel:// URL naming all three sentinels.
func (s *Sentinel) URL() string {
	q := make([]string, 0, len(s.Sentinels))
	q = append(q, "master_name="+SentinelMaster)
	for _, sn := range s.Sentinels[1:] {
		q = append(q, "addr="+sn.Addr())
	}
	return "redis+sentinel://" + s.Sentinels[0].Addr() + "?" + strings.Join(q, "&")
}

func (s *Sentinel) sentinel(sn *RedisServer) *redis.SentinelClient { return s.clients[sn] }

// Master is the data node the sentinels currently name as master.
func (s *Sentinel) Master() *RedisServer {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, sn := range s.Sentinels {
		if !sn.Running() {
			continue
		}
		addr, err := s.sentinel(sn).GetMasterAddrByName(ctx, SentinelMaster).Result()
		if err != nil {
			continue
		}
		if n := s.node(net.JoinHostPort(addr[0], addr[1])); n != nil {
			return n
		}
	}
	s.t.Fatal("no sentinel names a master")
	return nil
}

// Replica is the data node that is not the current master.
func (s *Sentinel) Replica() *RedisServer {
	if m := s.Master(); m == s.Nodes[0] {
		return s.Nodes[1]
	}
	return s.Nodes[0]
}

func (s *Sentinel) node(addr string) *RedisServer {
	for _, n := range s.Nodes {
		if n.Addr() == addr {
			return n
		}
	}
	return nil
}

// Failover runs SENTINEL FAILOVER (a planned switch) and returns the old
// master, without waiting for the switch.
func (s *Sentinel) Failover() *RedisServer {
	s.t.Helper()
	old := s.Master()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.sentinel(s.Sentinels[0]).Failover(ctx, SentinelMaster).Err(); err != nil {
		s.t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	return old
}

// WaitSwitched waits until every running sentinel names a master other than
// old and that node answers as a master, and returns it.
func (s *Sentinel) WaitSwitched(old *RedisServer, within time.Duration) *RedisServer {
	s.t.Helper()
	var m *RedisServer
	s.waitFor("the sentinels to switch master", within, func(ctx context.Context) error {
		for _, sn := range s.Sentinels {
			if !sn.Running() {
				continue
			}
			addr, err := s.sentinel(sn).GetMasterAddrByName(ctx, SentinelMaster).Result()
			if err != nil {
				return err
			}
			if m = s.node(net.JoinHostPort(addr[0], addr[1])); m == nil || m == old {
				return fmt.Errorf("sentinel %s still names %v", sn.Addr(), addr)
			}
		}
		return wantInfo(ctx, m.Addr(), "replication", "role:master")
	})
	return m
}

// WaitReplicaSynced waits until n replicates from the current master and
// the master counts it online (so that WAIT counts it).
func (s *Sentinel) WaitReplicaSynced(n *RedisServer, within time.Duration) {
	s.t.Helper()
	master := s.Master()
	s.waitFor("the replica to sync", within, func(ctx context.Context) error {
		if err := wantInfo(ctx, n.Addr(), "replication", "master_link_status:up"); err != nil {
			return err
		}
		return wantInfo(ctx, master.Addr(), "replication", fmt.Sprintf("port=%d,state=online", n.Port))
	})
}

func (s *Sentinel) waitFor(what string, within time.Duration, check func(ctx context.Context) error) {
	s.t.Helper()
	waitFor(s.t, what, within, check)
}

func waitFor(t testing.TB, what string, within time.Duration, check func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := check(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: %v", within, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantInfo checks that INFO section of the plain server at addr has line.
func wantInfo(ctx context.Context, addr, section, line string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, line) {
		return fmt.Errorf("%s: INFO %s lacks %q", addr, section, line)
	}
	return nil
}
