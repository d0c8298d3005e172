package ikesa

import (
	"fmt"
	"time"

	"github.com/veil-ipsec/veil/core/ike"
)

// handleInformational answers Delete, liveness checks and notifies.
func (sa *SA) handleInformational(id uint32, ps []ike.Payload) {
	var out []ike.Payload
	var deleteIKE bool
	if ike.FindNotify(ps, ike.NotifyUpdateSaAddresses) != nil {
		sa.peerMoved()
	}
	var ours [][]byte
	for _, p := range ps {
		d, ok := p.(*ike.Delete)
		if !ok {
			continue
		}
		switch d.Protocol {
		case ike.ProtoIKE:
			deleteIKE = true
		case ike.ProtoESP:
			for _, spi := range d.SPIs {
				v, ok := spi32(spi)
				if !ok {
					continue
				}
				// After an IKE rekey the children live on the successor.
				for owner := sa; owner != nil; owner = owner.successor {
					for _, c := range owner.Children {
						if c.SPIOut != v || c.State == ChildDeleted {
							continue
						}
						// If we are deleting it too, the peer's request is the
						// answer (§1.4.1): still list it, then remove.
						ours = append(ours, spiBytes(c.SPIIn))
						sa.logger().Info("peer deleted Child SA", "child", c.Config.Name, "spi_out", fmt.Sprintf("%08x", v))
						owner.removeChild(c, "deleted by peer")
					}
					owner.pruneChildren()
					if owner.successor == sa {
						break
					}
				}
			}
		}
	}
	sa.pruneChildren()
	if deleteIKE {
		sa.respond(ike.INFORMATIONAL, id, nil)
		sa.logger().Info("peer deleted IKE SA")
		sa.destroy("deleted by peer")
		return
	}
	if len(ours) > 0 {
		out = append(out, &ike.Delete{Protocol: ike.ProtoESP, SPIs: ours})
	}
	if c := ike.FindNotify(ps, ike.NotifyCookie2); c != nil {
		// RFC 4555 §3.8: the return routability check's cookie comes back.
		out = append(out, &ike.Notify{NotifyType: ike.NotifyCookie2, Data: c.Data})
	}
	sa.respond(ike.INFORMATIONAL, id, out)
}

func (sa *SA) pruneChildren() {
	kept := sa.Children[:0]
	for _, c := range sa.Children {
		if c.State != ChildDeleted {
			kept = append(kept, c)
		}
	}
	clear(sa.Children[len(kept):])
	sa.Children = kept
}

// Delete sends a Delete for the IKE SA; the SA is gone once answered (or
// when the peer stays silent).
func (sa *SA) Delete(reason string) {
	if sa.dead || sa.State == StateDeleting {
		return
	}
	if sa.State == StateConnecting || sa.out == nil {
		sa.destroy(reason)
		return
	}
	sa.State = StateDeleting
	sa.logger().Info("deleting IKE SA", "reason", reason)
	// A delete goes out at once, ahead of queued requests.
	sa.queue = nil
	r := &request{exchange: ike.INFORMATIONAL, payloads: []ike.Payload{&ike.Delete{Protocol: ike.ProtoIKE}},
		onResponse: func([]ike.Payload) error { sa.destroy(reason); return nil }}
	if sa.inflight != nil {
		sa.queue = []*request{r}
		return
	}
	sa.sendRequest(r)
}

// DeleteChild sends a Delete for the named Child SA.
func (sa *SA) DeleteChild(name string) error {
	c := sa.childByName(name)
	if c == nil {
		return fmt.Errorf("no Child SA %q", name)
	}
	sa.deleteChild(c, "deleted locally")
	return nil
}

func (sa *SA) deleteChild(c *ChildSA, reason string) {
	c.State = ChildDeleting
	spi := c.SPIIn
	sa.queueRequest(&request{exchange: ike.INFORMATIONAL,
		payloads: []ike.Payload{&ike.Delete{Protocol: ike.ProtoESP, SPIs: [][]byte{spiBytes(spi)}}},
		onResponse: func([]ike.Payload) error {
			if c.State != ChildDeleted {
				sa.removeChild(c, reason)
				sa.pruneChildren()
			}
			return nil
		}})
}

// queueDeleteChildSPIs tells the peer to delete SAs we never installed.
func (sa *SA) queueDeleteChildSPIs(spis []uint32) {
	d := &ike.Delete{Protocol: ike.ProtoESP}
	for _, s := range spis {
		d.SPIs = append(d.SPIs, spiBytes(s))
	}
	sa.queueRequest(&request{exchange: ike.INFORMATIONAL, payloads: []ike.Payload{d},
		onResponse: func([]ike.Payload) error { return nil }})
}

func (sa *SA) armDPD() {
	if sa.Conn.DPDDelay > 0 {
		sa.dpdDue = sa.lastRecv.Add(sa.Conn.DPDDelay)
	}
}

// dpdTimer sends an empty INFORMATIONAL when the peer was quiet for the
// DPD delay and no request of ours is outstanding.
func (sa *SA) dpdTimer(now time.Time) {
	if sa.Conn.DPDDelay <= 0 || sa.State != StateEstablished {
		sa.dpdDue = time.Time{}
		return
	}
	due := sa.lastRecv.Add(sa.Conn.DPDDelay)
	if now.Before(due) {
		sa.dpdDue = due
		return
	}
	if sa.inflight == nil && len(sa.queue) == 0 {
		sa.env.Stats.DPDSent++
		sa.logger().Debug("liveness check")
		sa.sendRequest(&request{exchange: ike.INFORMATIONAL, onResponse: func([]ike.Payload) error { return nil }})
		if t := sa.Conn.DPDTimeout; t > 0 {
			// A DPD timeout shorter than the retransmit schedule ends the
			// check early: fewer tries.
			sa.inflight.tries = max(1, sa.env.Retransmit.Tries-triesWithin(sa.env.Retransmit, t)+1)
		}
	}
	sa.dpdDue = now.Add(sa.Conn.DPDDelay)
}

// triesWithin returns how many retransmits fit into d.
func triesWithin(r Retransmit, d time.Duration) int {
	var total time.Duration
	n := 0
	for i := 0; i < r.Tries; i++ {
		total += r.after(i)
		if total > d {
			break
		}
		n++
	}
	return n
}

// handleCreateChildRequest is answered in rekey.go.
