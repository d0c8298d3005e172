package ikesa

import "github.com/veil-ipsec/veil/core/ike"

// handleCreateChildRequest answers CREATE_CHILD_SA requests.
func (sa *SA) handleCreateChildRequest(id uint32, ps []ike.Payload) {
	sa.respond(ike.CREATE_CHILD_SA, id, []ike.Payload{&ike.Notify{NotifyType: ike.NotifyNoAdditionalSas}})
}
