package ikesa

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/veil-ipsec/veil/core/provider"
)

// AddressPools hands out virtual IPs from the children's pools (RFC 7296
// §2.19). An identity gets the same address each time it comes back, as
// long as no one else needed it meanwhile: a released address stays its
// owner's until the pool runs out of never-used ones. Safe for concurrent
// use; one per engine, shared by every connection naming the same prefix.
type AddressPools struct {
	mu    sync.Mutex
	pools map[netip.Prefix]*pool
}

type pool struct {
	prefix netip.Prefix
	next   netip.Addr            // first address never handed out
	owner  map[netip.Addr]string // address -> identity it belongs to
	byID   map[string]netip.Addr // identity -> its address
	online map[netip.Addr]int    // address -> IKE SAs using it
}

// NewAddressPools returns empty pools.
func NewAddressPools() *AddressPools {
	return &AddressPools{pools: map[netip.Prefix]*pool{}}
}

func identityKey(id provider.Identity) string { return fmt.Sprintf("%d:%x", id.Type, id.Data) }

// poolBounds is the first and last address a pool hands out: an IPv4 pool
// larger than /31 leaves out its network and broadcast addresses, an IPv6
// one its subnet-router anycast address.
func poolBounds(p netip.Prefix) (first, last netip.Addr) {
	first = p.Addr()
	last = first
	for i := p.Bits(); i < first.BitLen(); i++ {
		last = setBit(last, i)
	}
	if p.Bits() < first.BitLen()-1 {
		first = first.Next()
		if first.Is4() {
			last = last.Prev()
		}
	}
	return first, last
}

func setBit(a netip.Addr, i int) netip.Addr {
	b := a.AsSlice()
	b[i/8] |= 0x80 >> (i % 8)
	out, _ := netip.AddrFromSlice(b)
	return out
}

// Acquire leases an address of prefix to id: its own if it had one, else a
// never-used one, else one an identity now offline held.
func (ps *AddressPools) Acquire(prefix netip.Prefix, id provider.Identity) (netip.Addr, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.pools[prefix]
	if p == nil {
		first, _ := poolBounds(prefix)
		p = &pool{prefix: prefix, next: first, owner: map[netip.Addr]string{}, byID: map[string]netip.Addr{}, online: map[netip.Addr]int{}}
		ps.pools[prefix] = p
	}
	k := identityKey(id)
	if a, ok := p.byID[k]; ok {
		p.online[a]++
		return a, nil
	}
	_, last := poolBounds(prefix)
	var a netip.Addr
	if p.next.IsValid() && p.next.Compare(last) <= 0 && prefix.Contains(p.next) {
		a = p.next
		p.next = p.next.Next()
	} else {
		for addr, n := range p.owner {
			if n != "" && p.online[addr] == 0 {
				a = addr
				delete(p.byID, n)
				break
			}
		}
	}
	if !a.IsValid() {
		return a, fmt.Errorf("address pool %s exhausted: every address is leased to a connected peer", prefix)
	}
	p.owner[a], p.byID[k] = k, a
	p.online[a]++
	return a, nil
}

// Release ends one lease of a; the address stays its owner's for next time.
func (ps *AddressPools) Release(prefix netip.Prefix, a netip.Addr) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p := ps.pools[prefix]; p != nil && p.online[a] > 0 {
		p.online[a]--
		if p.online[a] == 0 {
			delete(p.online, a)
		}
	}
}

// Online returns how many leases of prefix are held.
func (ps *AddressPools) Online(prefix netip.Prefix) int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p := ps.pools[prefix]; p != nil {
		return len(p.online)
	}
	return 0
}
