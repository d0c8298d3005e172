package ikesa

import "maps"

// Stats are the engine's counters. The engine serialises all SA work, so
// plain fields suffice; Copy takes a snapshot.
type Stats struct {
	Handshakes  map[string]uint64 // "ok", or the failure reason class
	Rekeys      map[string]uint64 // "ike", "child", "collision"
	Retransmits uint64
	DPDSent     uint64
	DPDTimeouts uint64
	Drops       map[string]uint64 // by reason
}

// NewStats returns empty counters.
func NewStats() *Stats {
	return &Stats{Handshakes: map[string]uint64{}, Rekeys: map[string]uint64{}, Drops: map[string]uint64{}}
}

// Drop counts a dropped message.
func (s *Stats) Drop(reason string) { s.Drops[reason]++ }

// Copy returns an independent snapshot.
func (s *Stats) Copy() Stats {
	c := *s
	c.Handshakes = maps.Clone(s.Handshakes)
	c.Rekeys = maps.Clone(s.Rekeys)
	c.Drops = maps.Clone(s.Drops)
	return c
}
