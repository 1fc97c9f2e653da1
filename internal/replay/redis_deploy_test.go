package replay_test

// The store on the deployments production runs: Sentinel (one master, one
// replica, three sentinels) and Cluster (three masters), each started from
// Debian's redis-server and redis-sentinel.

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

func sentinelRaw(t *testing.T, s *replaytest.Sentinel) redis.UniversalClient {
	addrs := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		addrs[i] = sn.Addr()
	}
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: replaytest.SentinelMaster, SentinelAddrs: addrs})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// The conformance suites, on Sentinel and on Cluster.
func TestSentinelConformance(t *testing.T) {
	s := replaytest.StartSentinel(t, replaytest.SentinelOptions{})
	h := deploymentHarness(s.URL(), sentinelRaw(t, s))
	t.Run("Store", func(t *testing.T) { replaytest.RunStore(t, h) })
	t.Run("Revocations", func(t *testing.T) { replaytest.RunRevocations(t, h) })
}

func TestClusterConformance(t *testing.T) {
	c := replaytest.StartCluster(t, replaytest.ClusterOptions{})
	h := deploymentHarness(c.URL(), c.Client())
	t.Run("Store", func(t *testing.T) { replaytest.RunStore(t, h) })
	t.Run("Revocations", func(t *testing.T) { replaytest.RunRevocations(t, h) })
}

// Item 1: after a planned SENTINEL FAILOVER the old master stays up (a
// PING on the subscription still succeeds), yet the subscription moves to
// the new master: a revocation on A after the switch reaches B within 1s.
// A revocation written on the old master in the moments of the switch is
// written again by A to the new master, so an instance started after the
// failover knows it too.
func TestSentinelFailoverMovesSubscription(t *testing.T) {
	s := replaytest.StartSentinel(t, replaytest.SentinelOptions{})
	prefix := uniquePrefix()
	events := newEventLog()
	a := newRedis(t, replay.RedisConfig{URL: s.URL(), KeyPrefix: prefix})
	b := newRedis(t, replay.RedisConfig{URL: s.URL(), KeyPrefix: prefix, Report: events.report})
	<-a.Synced()
	<-b.Synced()
	ctx := context.Background()
	iat := time.Now().Add(-time.Minute)
	old := s.Failover()
	// Written in the first moments of the switch: may land on the old
	// master after the replica was promoted.
	first := replay.SessionRef{ID: "sid-early", Tenant: "acme", Subject: "jane", IssuedAt: iat}
	firstErr := a.Revoke(ctx, first.ID, time.Now().Add(time.Hour))
	if firstErr != nil {
		// Refused (503): the user sees the sign-out fail and retries, so
		// nothing is promised about it.
		t.Logf("revoke during the switch: %v", firstErr)
	}
	s.WaitSwitched(old, 15*time.Second)
	events.waitFor(t, replay.EventMasterSwitched, 5*time.Second)

	// Revocations once the new master takes A's writes reach B within 1s;
	// those A still wrote to the old master (its pool had not moved yet)
	// within two health intervals, rewritten by A.
	newMaster := rawClient(t, s.Master())
	var early []replay.SessionRef
	if firstErr == nil {
		early = append(early, first)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		sess := replay.SessionRef{ID: "sid-after-" + strconv.Itoa(i), Tenant: "acme", Subject: "bob", IssuedAt: iat}
		began := time.Now()
		err := a.Revoke(ctx, sess.ID, time.Now().Add(time.Hour))
		if err == nil && newMaster.Exists(ctx, prefix+"rev:sid:"+sess.ID).Val() == 1 {
			waitRevoked(t, b, sess, time.Second)
			t.Logf("a revocation on A after the failover reached B in %v", time.Since(began))
			break
		}
		if err == nil {
			early = append(early, sess)
		}
		if time.Now().After(deadline) {
			t.Fatalf("revocations still fail 10s after the failover: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, e := range early {
		waitRevoked(t, b, e, 5*time.Second)
	}
	c := newRedis(t, replay.RedisConfig{URL: s.URL(), KeyPrefix: prefix})
	<-c.Synced()
	for _, e := range early {
		if !c.Revoked(e) {
			t.Fatalf("a revocation made during the switch (%s) is lost for an instance started after it", e.ID)
		}
	}
}

// Item 2: an instance started during a slot migration, with the key of a
// revoked session already moved to the importing node (where it answers
// MOVED unless asked with ASKING), loads it, and applies live announcements.
func TestClusterResyncDuringMigration(t *testing.T) {
	c := replaytest.StartCluster(t, replaytest.ClusterOptions{})
	prefix := uniquePrefix()
	a := newRedis(t, replay.RedisConfig{URL: c.URL(), KeyPrefix: prefix})
	<-a.Synced()
	ctx := context.Background()
	iat := time.Now().Add(-time.Minute)
	moved := replay.SessionRef{ID: "sid-moved", Tenant: "acme", Subject: "jane", IssuedAt: iat}
	stays := replay.SessionRef{ID: "sid-stays", Tenant: "acme", Subject: "jane", IssuedAt: iat}
	for _, s := range []replay.SessionRef{moved, stays} {
		if err := a.Revoke(ctx, s.ID, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	key := prefix + "rev:sid:" + moved.ID
	_, m := migrateSlotOf(t, c, key)
	m.Move(key)

	events := newEventLog()
	late := newRedis(t, replay.RedisConfig{URL: c.URL(), KeyPrefix: prefix, Report: events.report})
	select {
	case <-late.Synced():
	case <-time.After(5 * time.Second):
		t.Fatalf("no load during the migration:\n%s", events)
	}
	if !late.Revoked(moved) || !late.Revoked(stays) {
		t.Fatalf("started during the migration, the instance accepts a revoked session (moved %v, stays %v):\n%s",
			late.Revoked(moved), late.Revoked(stays), events)
	}
	if events.has(replay.EventResyncIncomplete) {
		t.Fatalf("resync incomplete:\n%s", events)
	}
	// Claims on the migrating slot follow ASK, and announcements apply.
	if err := a.Claim(ctx, "acme", "jti-during-migration", time.Minute); err != nil {
		t.Fatal(err)
	}
	live := replay.SessionRef{ID: "sid-live", Tenant: "acme", Subject: "bob", IssuedAt: iat}
	if err := a.Revoke(ctx, live.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, late, live, time.Second)
	m.Finish()
}

// Item 5: one master of three down (the others keep serving, as with
// cluster-require-full-coverage no): claims on its slots fail, the others
// succeed, interleaved; that is one outage, reported once when it starts
// and once when it ends.
func TestClusterPartialOutageIsOneOutage(t *testing.T) {
	c := replaytest.StartCluster(t, replaytest.ClusterOptions{NodeArgs: []string{"--cluster-require-full-coverage", "no"}})
	events := newEventLog()
	r := newRedis(t, replay.RedisConfig{URL: c.URL(), KeyPrefix: uniquePrefix(), Report: events.report, Timeout: 50 * time.Millisecond})
	<-r.Synced()
	r.SetRecoverQuiet(500 * time.Millisecond)
	ctx := context.Background()
	down := c.Nodes[2]
	down.Stop()
	var ok, failed int
	for i := 0; i < 100 || ok == 0 || failed == 0; i++ {
		err := r.Claim(ctx, "acme", "jti-partial-"+strconv.Itoa(i), time.Minute)
		switch {
		case err == nil:
			ok++
		case reason.Of(err) == reason.StoreUnavailable:
			failed++
		default:
			t.Fatal(err)
		}
		if i > 5000 {
			t.Fatalf("after %d claims: %d ok, %d failed", i, ok, failed)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("one master down: %d claims succeeded, %d failed closed", ok, failed)
	down.Start()
	c.WaitOK(20 * time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; !events.has(replay.EventRecovered); i++ {
		_ = r.Claim(ctx, "acme", "jti-after-"+strconv.Itoa(i), time.Minute)
		if time.Now().After(deadline) {
			t.Fatalf("no recovery:\n%s", events)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if u, rec := events.count(replay.EventUnavailable), events.count(replay.EventRecovered); u != 1 || rec != 1 {
		t.Fatalf("%d outage and %d recovery events for one partial outage, want 1 and 1:\n%s", u, rec, events)
	}
	if e, _ := events.find(replay.EventUnavailable); e.Err == nil || strings.Contains(e.Err.Error(), "jti-partial") {
		t.Fatalf("outage cause %v", e.Err)
	}
}

// The README's ACL line is enough on a Cluster (cluster|slots) and with
// replicas (wait): set on every node, the store claims, revokes and loads
// as that user.
func TestClusterWithREADMEACLUser(t *testing.T) {
	c := replaytest.StartCluster(t, replaytest.ClusterOptions{})
	line := readmeACLLine(t)
	ctx := context.Background()
	for _, n := range c.Nodes {
		raw := rawClient(t, n)
		if err := raw.Do(ctx, line...).Err(); err != nil {
			t.Fatalf("%s: the README's ACL line: %v", n, err)
		}
	}
	url := strings.Replace(c.URL(), "redis+cluster://", "redis+cluster://embedgate:acl-test-pw@", 1)
	events := newEventLog()
	r := newRedis(t, replay.RedisConfig{URL: url, Report: events.report})
	a := newRedis(t, replay.RedisConfig{URL: url})
	select {
	case <-r.Synced():
	case <-time.After(5 * time.Second):
		t.Fatalf("not loaded as the ACL user:\n%s", events)
	}
	<-a.Synced()
	for i := range 20 { // spread over the three masters
		if err := r.Claim(ctx, "acme", "jti-acl-"+strconv.Itoa(i), time.Minute); err != nil {
			t.Fatalf("claim as the ACL user: %v", err)
		}
	}
	s := replay.SessionRef{ID: "sid-acl", Tenant: "acme", Subject: "jane", IssuedAt: time.Now().Add(-time.Minute)}
	if err := a.Revoke(ctx, s.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, r, s, time.Second)
	if events.has(replay.EventPolicyUnknown) || events.has(replay.EventResyncIncomplete) || events.has(replay.EventSubscriptionStale) {
		t.Fatalf("the ACL line lacks a command:\n%s", events)
	}
}

// The README's ACL line is enough while a slot migrates (asking): a fresh
// claim in the migrating slot succeeds, and an instance started during the
// migration loads a revocation key already moved to the importing node.
// Without +asking, the claim was 503 (NOPERM on ASKING) and that instance
// accepted the revoked session until the migration ended.
func TestClusterMigrationWithREADMEACLUser(t *testing.T) {
	c := replaytest.StartCluster(t, replaytest.ClusterOptions{})
	line := readmeACLLine(t)
	ctx := context.Background()
	for _, n := range c.Nodes {
		if err := rawClient(t, n).Do(ctx, line...).Err(); err != nil {
			t.Fatalf("%s: the README's ACL line: %v", n, err)
		}
	}
	url := strings.Replace(c.URL(), "redis+cluster://", "redis+cluster://embedgate:acl-test-pw@", 1)
	const prefix = "embedgate:" // the ACL line's key pattern
	a := newRedis(t, replay.RedisConfig{URL: url, KeyPrefix: prefix})
	<-a.Synced()
	// Braces: the revocation key and the jti key below share a hash tag,
	// so one migrating slot holds both.
	moved := replay.SessionRef{ID: "{migrating}", Tenant: "acme", Subject: "jane", IssuedAt: time.Now().Add(-time.Minute)}
	if err := a.Revoke(ctx, moved.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	key := prefix + "rev:sid:" + moved.ID
	slot, m := migrateSlotOf(t, c, key)
	defer m.Finish()
	m.Move(key)
	// A fresh jti in that slot: not on the old owner, so -ASK.
	jti := "{migrating}-fresh"
	if got := c.Client().ClusterKeySlot(ctx, prefix+"jti:acme:"+jti).Val(); int(got) != slot {
		t.Fatalf("the jti key hashes to slot %d, not %d", got, slot)
	}
	if err := a.Claim(ctx, "acme", jti, time.Minute); err != nil {
		t.Fatalf("a fresh claim in a migrating slot, as the README's ACL user: %v", err)
	}
	events := newEventLog()
	late := newRedis(t, replay.RedisConfig{URL: url, KeyPrefix: prefix, Report: events.report})
	select {
	case <-late.Synced():
	case <-time.After(5 * time.Second):
		t.Fatalf("an instance started during the migration did not load, as the README's ACL user:\n%s", events)
	}
	if events.has(replay.EventResyncIncomplete) || !late.Revoked(moved) {
		t.Fatalf("an instance started during the migration accepts a session revoked before it:\n%s", events)
	}
}

// migrateSlotOf starts migrating the slot of key to another master.
func migrateSlotOf(t *testing.T, c *replaytest.Cluster, key string) (int, *replaytest.Migration) {
	t.Helper()
	slot := int(c.Client().ClusterKeySlot(context.Background(), key).Val())
	for _, n := range c.Nodes {
		if n != c.Owner(slot) {
			return slot, c.StartMigration(slot, n)
		}
	}
	t.Fatal("a cluster of one master")
	return 0, nil
}

// readmeACLLine is the README's ACL SETUSER line for the embedgate user,
// with the password acl-test-pw.
func readmeACLLine(t *testing.T) []any {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(b)) {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "ACL SETUSER embedgate ") {
			var args []any
			for _, f := range strings.Fields(l) {
				args = append(args, strings.Replace(f, ">PASSWORD", ">acl-test-pw", 1))
			}
			return args
		}
	}
	t.Fatal("no ACL line in README.md")
	return nil
}
