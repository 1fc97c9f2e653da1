package replay

import "time"

// EventKind names a state change of the Redis store.
type EventKind int

// The Redis store's events. Each is reported once per change, not per
// request: an outage is one EventUnavailable and one EventRecovered.
const (
	// EventNotLoaded: StartWait passed before the revocation mirror's
	// first load (Event.Waited; Event.Err is the cause: the last
	// connection or load error, or that nothing answered).
	EventNotLoaded EventKind = iota + 1
	// EventUnavailable: the first failed request-path command of an
	// outage (Event.Err).
	EventUnavailable
	// EventRecovered: a request-path command succeeded after an outage.
	EventRecovered
	// EventSubscriptionLost: the revocation subscription broke (Event.Err);
	// it reconnects and resyncs.
	EventSubscriptionLost
	// EventLoaded: the mirror's first load (Event.Entries).
	EventLoaded
	// EventResynced: the mirror reloaded after a reconnect (Event.Entries).
	EventResynced
	// EventMalformedAnnouncement: a revocation announcement was ignored.
	EventMalformedAnnouncement
	// EventMalformedKeys: revocation keys were ignored by a load
	// (Event.Entries of them).
	EventMalformedKeys
	// EventPolicyUnknown: maxmemory-policy could not be read (Event.Err
	// when the read failed).
	EventPolicyUnknown
	// EventPolicyEvicts: maxmemory-policy is not noeviction
	// (Event.Policy).
	EventPolicyEvicts
	// EventSubscriptionStale: the end-to-end check failed: a probe
	// published through the request-path client did not come back on the
	// subscription (Event.Err), as when the subscription is still on a
	// demoted master; it resubscribes and resyncs.
	EventSubscriptionStale
	// EventMasterSwitched: the sentinels announced a new master; the
	// subscription moves to it and resyncs.
	EventMasterSwitched
	// EventResyncIncomplete: a load of the mirror left keys or nodes
	// unread (Event.Err; Event.Entries were loaded); announcements are
	// applied meanwhile and the rest is retried.
	EventResyncIncomplete
	// EventRewritten: this instance wrote revocations again (Event.Entries):
	// its recent ones after a master change, in case the promoted replica
	// lacked them, or ones Redis had not taken, once it did.
	EventRewritten
	// EventClaimsNotReturned: too many failed claims were waiting to be
	// given back; those tokens stay used.
	EventClaimsNotReturned
	// EventGapClosed: the periodic full reload found revocations
	// (Event.Entries) that the subscription never delivered, even after a
	// grace for announcements in flight; they are applied now.
	// Announcements are being lost, as when this instance missed a master
	// switch and its subscription hears the new master only through the
	// old one, demoted to its replica.
	EventGapClosed
	// EventUnwrittenDropped: revocations Redis did not take were dropped
	// unwritten (Event.Entries of them), as more than maxUnwritten waited:
	// they hold on this instance only.
	EventUnwrittenDropped
	// EventRestored: a full load found revocations this instance held
	// missing from Redis (restarted without its data, or failed over to a
	// replica that lacked them) and wrote them back (Event.Entries).
	EventRestored
)

// Event is one state change of the Redis store. It never holds a password,
// token id or session id.
type Event struct {
	Kind    EventKind
	Err     error         // the cause, where Kind says so
	Entries int           // for EventLoaded, EventResynced, EventMalformedKeys, EventResyncIncomplete, EventRewritten, EventGapClosed, EventUnwrittenDropped, EventRestored
	Waited  time.Duration // for EventNotLoaded
	Policy  string        // for EventPolicyEvicts
}

// Message says what happened and what it means for requests.
func (e Event) Message() string {
	switch e.Kind {
	case EventNotLoaded:
		return "revocations not loaded from Redis yet; sessions revoked elsewhere are accepted here until they are"
	case EventUnavailable:
		return "Redis unavailable: exchanges and sign-outs fail closed (503) until it answers; existing sessions keep working"
	case EventRecovered:
		return "Redis answers again: exchanges and sign-outs resume"
	case EventSubscriptionLost:
		return "lost the revocation subscription; reconnecting, then resyncing"
	case EventLoaded:
		return "revocations loaded from Redis"
	case EventResynced:
		return "revocations resynced after a reconnect"
	case EventMalformedAnnouncement:
		return "ignored a malformed revocation announcement"
	case EventMalformedKeys:
		return "ignored malformed revocation keys"
	case EventPolicyUnknown:
		return "could not read Redis maxmemory-policy; make sure it is noeviction, or evicted replay keys let used tokens through again"
	case EventPolicyEvicts:
		return "Redis maxmemory-policy is not noeviction: under memory pressure Redis may evict used-token keys " +
			"(each carries a TTL, so allkeys-* and volatile-* policies can all pick them), and an evicted key lets that token " +
			"be exchanged a second time. Set maxmemory-policy noeviction: a full Redis then refuses writes and exchanges fail closed (503)."
	case EventSubscriptionStale:
		return "the revocation subscription stopped receiving announcements (end-to-end check failed); resubscribing, then resyncing"
	case EventMasterSwitched:
		return "Sentinel switched the Redis master; moving the revocation subscription to the new master, then resyncing"
	case EventResyncIncomplete:
		return "revocations only partly loaded from Redis; sessions revoked in the unread part are accepted here until a retry loads them"
	case EventGapClosed:
		return "the periodic reload found revocations the subscription never delivered (they were accepted here until now); " +
			"announcements are being lost, as when this instance missed a master switch: check its connection to the sentinels"
	case EventRewritten:
		return "wrote this instance's revocations again: recent ones after a master change, or ones Redis had not taken"
	case EventUnwrittenDropped:
		return "dropped revocations Redis had not taken, as too many waited to be written: " +
			"the sessions they revoked are refused on this instance only, and accepted on the others"
	case EventRestored:
		return "Redis had lost revocations this instance held (restarted without its data, or failed over to a replica that lacked them); " +
			"wrote them back. Used tokens it lost can be exchanged again: run Redis with persistence (appendonly yes)"
	case EventClaimsNotReturned:
		return "too many failed exchanges to give their tokens back: those tokens now answer 401 replayed, and clients need a fresh token"
	}
	return "redis store event"
}
