package eap

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 2759 §9.2 and RFC 3079 §3.5.3: the published known answers.
func TestMSCHAPv2KnownAnswers(t *testing.T) {
	user := []byte("User")
	password := []byte("clientPass")
	authChallenge := unhex(t, "5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28")
	peerChallenge := unhex(t, "21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E")

	if got := challengeHash(peerChallenge, authChallenge, user); !bytes.Equal(got, unhex(t, "D0 2E 43 86 BC E9 12 26")) {
		t.Errorf("ChallengeHash = %X", got)
	}
	pwHash := ntPasswordHash(password)
	if !bytes.Equal(pwHash, unhex(t, "44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE")) {
		t.Errorf("NtPasswordHash = %X", pwHash)
	}
	if hh := md4Sum(pwHash); !bytes.Equal(hh[:], unhex(t, "41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F")) {
		t.Errorf("PasswordHashHash = %X", hh)
	}
	nt := ntResponse(authChallenge, peerChallenge, user, pwHash)
	if !bytes.Equal(nt, unhex(t, "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF")) {
		t.Errorf("NT-Response = %X", nt)
	}
	auth := authenticatorResponse(pwHash, nt, peerChallenge, authChallenge, user)
	if got := "S=" + strings.ToUpper(hex.EncodeToString(auth)); got != "S=407A5589115FD0D6209F510FE9C04566932CDA56" {
		t.Errorf("AuthenticatorResponse = %s", got)
	}
	// RFC 3079 §3.5.3 (128-bit keys). SendStartKey128 is the server's send
	// key (IsSend, IsServer: Magic3), the second half of the MSK.
	if got := masterKey(pwHash, nt); !bytes.Equal(got, unhex(t, "FD EC E3 71 7A 8C 83 8C B3 88 E5 27 AE 3C DD 31")) {
		t.Errorf("MasterKey = %X", got)
	}
	msk := mschapMSK(pwHash, nt)
	if len(msk) != 64 {
		t.Fatalf("MSK is %d bytes", len(msk))
	}
	if !bytes.Equal(msk[16:32], unhex(t, "8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB")) {
		t.Errorf("MasterSendKey (server) = %X", msk[16:32])
	}
	if bytes.Equal(msk[:16], msk[16:32]) {
		t.Error("receive and send keys are equal")
	}
	if !bytes.Equal(msk[32:], make([]byte, 32)) {
		t.Errorf("MSK padding = %X", msk[32:])
	}
	// A domain prefix is not hashed (RFC 2759 §8.2).
	if got := challengeHash(peerChallenge, authChallenge, []byte(`EXAMPLE\User`)); !bytes.Equal(got, unhex(t, "D0 2E 43 86 BC E9 12 26")) {
		t.Errorf("ChallengeHash with domain = %X", got)
	}
}

// RFC 1320 appendix A.5.
func TestMD4(t *testing.T) {
	for in, want := range map[string]string{
		"":    "31d6cfe0d16ae931b73c59d7e0c089c0",
		"abc": "a448017aaf21d8525fc10ae87aa6729d",
		"12345678901234567890123456789012345678901234567890123456789012345678901234567890": "e33b4ddc9c38f2199c3e7b164fcc0536",
	} {
		if got := md4Sum([]byte(in)); hex.EncodeToString(got[:]) != want {
			t.Errorf("MD4(%q) = %x, want %s", in, got, want)
		}
	}
}
