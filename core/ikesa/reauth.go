package ikesa

import "time"

// Reauthentication (RFC 7296 §2.8.3): every Conn.ReauthTime the IKE SA's
// original initiator replaces it with a whole new IKE SA (fresh IKE_SA_INIT
// and IKE_AUTH, so credentials are checked again) carrying the same
// children. The engine does the replacing (core/engine/reauth.go); the SA
// keeps the deadline, inherited across IKE rekeys, and says when it is due
// with EventReauth.

// armReauth sets the reauthentication time, with up to 10 % jitter off.
func (sa *SA) armReauth() {
	if t := sa.Conn.ReauthTime; t > 0 && sa.Initiator {
		sa.reauthAt = sa.env.Now().Add(t - sa.env.jitter(t/10))
	}
}

func (sa *SA) reauthTimer(now time.Time) {
	if sa.reauthAt.IsZero() || now.Before(sa.reauthAt) || sa.State != StateEstablished {
		return
	}
	// The SA is about to be deleted: an IKE rekey due now would only make a
	// successor that must be deleted too.
	sa.reauthAt, sa.rekeyAt = time.Time{}, time.Time{}
	sa.logger().Info("reauthenticating: setting up a new IKE SA")
	sa.event(EventReauth, "", "", "")
}
