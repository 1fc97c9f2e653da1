package session

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"time"
	"unsafe"
)

// The sealed plaintext, version 1, in order (uvarint = unsigned LEB128,
// varint = zig-zag signed, both as encoding/binary):
//
//	ID, Tenant, Subject, Origin   uvarint length + bytes each
//	Origins                       uvarint count+1 (0 = nil), then each as a string
//	Claims                        uvarint length+1 (0 = nil), then the bytes
//	IssuedAt, LastSeen, ExpiresAt varint unix seconds each
//
// The +1 on the optional fields keeps nil distinct from empty: a nil Origins
// means "the tenant's own allowlist", an empty one means "no ancestor".
// Nothing may follow ExpiresAt.

// plainBound returns an upper bound on the encoded size of s, so Seal
// allocates once.
func plainBound(s *Session) int {
	n := len(s.ID) + len(s.Tenant) + len(s.Subject) + len(s.Origin) + len(s.Claims)
	fields := 4 + 2 + len(s.Origins) + 3
	for _, o := range s.Origins {
		n += len(o)
	}
	return n + fields*binary.MaxVarintLen64
}

// appendPlain appends the version 1 encoding of s to dst.
func appendPlain(dst []byte, s *Session) []byte {
	dst = appendString(dst, s.ID)
	dst = appendString(dst, s.Tenant)
	dst = appendString(dst, s.Subject)
	dst = appendString(dst, s.Origin)
	if s.Origins == nil {
		dst = binary.AppendUvarint(dst, 0)
	} else {
		dst = binary.AppendUvarint(dst, uint64(len(s.Origins))+1)
		for _, o := range s.Origins {
			dst = appendString(dst, o)
		}
	}
	if s.Claims == nil {
		dst = binary.AppendUvarint(dst, 0)
	} else {
		dst = binary.AppendUvarint(dst, uint64(len(s.Claims))+1)
		dst = append(dst, s.Claims...)
	}
	dst = binary.AppendVarint(dst, s.IssuedAt.Unix())
	dst = binary.AppendVarint(dst, s.LastSeen.Unix())
	dst = binary.AppendVarint(dst, s.ExpiresAt.Unix())
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decoder reads the plaintext. Every string field is a substring of str, one
// copy of the whole plaintext, so decoding costs one allocation for all of
// them. The first failure sticks in bad; later reads return zero values.
type decoder struct {
	b   []byte
	str string // the same bytes as b
	off int
	bad string
}

func (d *decoder) fail(what string) {
	if d.bad == "" {
		d.bad = what
	}
}

func (d *decoder) uvarint() uint64 {
	if d.bad != "" {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

// varint reads a zig-zag signed varint: the unsigned one, decoded as
// binary.Varint does, so there is one reader and one failure rule for both.
func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

// length reads a length or count and bounds it by the bytes left, which also
// caps any allocation sized from it.
func (d *decoder) length() int {
	v := d.uvarint()
	if v > uint64(len(d.b)-d.off) {
		d.fail("length out of bounds")
		return 0
	}
	return int(v)
}

func (d *decoder) string() string {
	n := d.length()
	if d.bad != "" {
		return ""
	}
	s := d.str[d.off : d.off+n]
	d.off += n
	return s
}

func (d *decoder) time() time.Time {
	return time.Unix(d.varint(), 0).UTC()
}

// decodePlain decodes a version 1 plaintext. On failure it returns a detail
// naming what was wrong (never the content).
//
// The session's strings and Claims share pt's memory instead of copying
// it (one allocation less on every request), so pt must belong to the
// session and never be written again: Open decrypts into a buffer of its
// own and hands it over whole. Claims is capped at its own end, so an
// append to it cannot reach the bytes behind it.
func decodePlain(pt []byte) (*Session, string) {
	var str string
	if len(pt) > 0 {
		str = unsafe.String(&pt[0], len(pt))
	}
	d := decoder{b: pt, str: str}
	s := &Session{}
	s.ID = d.string()
	s.Tenant = d.string()
	s.Subject = d.string()
	s.Origin = d.string()
	if n := d.length(); n > 0 {
		s.Origins = make([]string, n-1)
		for i := range s.Origins {
			s.Origins[i] = d.string()
		}
	}
	if n := d.length(); n > 0 {
		// length bounded n by the bytes left, so n-1 fits. The cap stops
		// an append by the caller from overwriting the bytes that follow.
		end := d.off + n - 1
		s.Claims = pt[d.off:end:end]
		d.off = end
	}
	s.IssuedAt = d.time()
	s.LastSeen = d.time()
	s.ExpiresAt = d.time()
	if d.bad != "" {
		return nil, d.bad
	}
	if d.off != len(pt) {
		return nil, "trailing bytes"
	}
	return s, ""
}

// DecodeClaims decodes a session's kept claims (Session.Claims), numbers as
// json.Number; nil when there are none or the bytes are not a JSON object
// (they were written by the gateway, so that is a bug, not an input error).
func DecodeClaims(raw []byte) map[string]any {
	if len(raw) == 0 {
		return nil
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&m) != nil {
		return nil
	}
	return m
}
