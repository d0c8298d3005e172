package ikesa

import (
	"bytes"
	"errors"
	"net/netip"

	"github.com/veil-ipsec/veil/core/ike"
)

// MOBIKE (RFC 4555): the initiator moves the IKE SA to a new local address
// with UPDATE_SA_ADDRESSES. The provider interface cannot change an
// installed SA's addresses, so the Child SAs are then rekeyed: the new ones
// are made for the new addresses and the old ones deleted.

// MobikeActive reports whether both sides announced MOBIKE.
func (sa *SA) MobikeActive() bool { return sa.Conn.Mobike && sa.peerMobike }

// UpdateAddress moves the IKE SA to local (initiator only).
func (sa *SA) UpdateAddress(local netip.Addr) error {
	if !sa.Initiator || !sa.MobikeActive() || sa.State != StateEstablished {
		return errors.New("MOBIKE not available on this IKE SA")
	}
	sa.Local = netip.AddrPortFrom(local, sa.Local.Port())
	sa.logger().Info("moving IKE SA to a new address (MOBIKE)", "local", sa.Local)
	// COOKIE2 (RFC 4555 §3.8): the answer must echo it, which shows that
	// the peer is reachable at the address we now use.
	cookie := make([]byte, 16)
	sa.env.randReader().Read(cookie)
	ps := []ike.Payload{&ike.Notify{NotifyType: ike.NotifyUpdateSaAddresses}}
	ps = append(ps, sa.initNotifies()[:2]...) // NAT_DETECTION_SOURCE/DESTINATION_IP
	ps = append(ps, &ike.Notify{NotifyType: ike.NotifyCookie2, Data: cookie})
	r := &request{exchange: ike.INFORMATIONAL, payloads: ps, onResponse: func(resp []ike.Payload) error {
		if c := ike.FindNotify(resp, ike.NotifyCookie2); c == nil || !bytes.Equal(c.Data, cookie) {
			sa.env.Stats.Drop("cookie2-mismatch")
			sa.logger().Info("MOBIKE address update not confirmed: the answer does not echo our COOKIE2; closing the IKE SA")
			sa.destroy("MOBIKE return routability check failed (COOKIE2)")
			return errFatal
		}
		for _, c := range sa.Children {
			if c.State == ChildInstalled {
				if err := sa.startCreateChild(c.Config, c); err != nil {
					sa.logger().Info("rekey after address change failed", "child", c.Config.Name, "err", err)
				}
			}
		}
		return nil
	}}
	// The update goes first; a request in flight is resent from the new address.
	if sa.inflight != nil {
		sa.queue = append([]*request{r}, sa.queue...)
		sa.outbox = append(sa.outbox, sa.inflight.datagrams...)
		return nil
	}
	sa.sendRequest(r)
	return nil
}

// peerMoved applies an authenticated UPDATE_SA_ADDRESSES (responder).
func (sa *SA) peerMoved() {
	if !sa.MobikeActive() || !sa.lastFrom.IsValid() {
		return
	}
	if sa.Remote != sa.lastFrom || sa.Local != sa.lastTo {
		sa.logger().Info("peer moved (MOBIKE)", "from", sa.Remote, "to", sa.lastFrom)
		sa.Remote, sa.Local = sa.lastFrom, sa.lastTo
	}
}
