package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/embedgate/embedgate/internal/replay"
)

// StoreConfig selects where single-use token ids and revocations live.
type StoreConfig struct {
	// Type is "memory" (this process only). Default: memory.
	Type string `json:"type,omitempty"`
}

// statePool keeps replay and revocation state across config reloads: a token
// used before `embedgate reload` stays used after it.
var statePool = caddy.NewUsagePool()

type memoryState struct{ *replay.Memory }

func (m memoryState) Destruct() error { m.Memory.Close(); return nil }

// provisionStore returns the configured store, held in statePool under a key
// released by Cleanup.
func (h *Handler) provisionStore(ctx caddy.Context) (replay.Store, replay.Revocations, error) {
	const memKey = "memory"
	st, _, err := statePool.LoadOrNew(memKey, func() (caddy.Destructor, error) {
		return memoryState{replay.NewMemory(nil)}, nil
	})
	if err != nil {
		return nil, nil, err
	}
	h.pooled = append(h.pooled, memKey)
	mem := st.(memoryState).Memory
	return mem, mem, nil
}

// parseStore reads `store memory`.
func parseStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	switch d.Val() {
	case "memory":
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		return &StoreConfig{Type: "memory"}, nil
	default:
		return nil, d.Errf("unknown store %q (want memory)", d.Val())
	}
}
