package ike

import "fmt"

// ExchangeType is the IKE header's exchange type (RFC 7296 §3.1).
type ExchangeType uint8

const (
	IKE_SA_INIT        ExchangeType = 34
	IKE_AUTH           ExchangeType = 35
	CREATE_CHILD_SA    ExchangeType = 36
	INFORMATIONAL      ExchangeType = 37
	IKE_SESSION_RESUME ExchangeType = 38 // RFC 5723
	IKE_INTERMEDIATE   ExchangeType = 43 // RFC 9242
	IKE_FOLLOWUP_KE    ExchangeType = 44 // RFC 9370
)

var exchangeNames = map[ExchangeType]string{
	IKE_SA_INIT: "IKE_SA_INIT", IKE_AUTH: "IKE_AUTH", CREATE_CHILD_SA: "CREATE_CHILD_SA",
	INFORMATIONAL: "INFORMATIONAL", IKE_SESSION_RESUME: "IKE_SESSION_RESUME",
	IKE_INTERMEDIATE: "IKE_INTERMEDIATE", IKE_FOLLOWUP_KE: "IKE_FOLLOWUP_KE",
}

func (e ExchangeType) String() string { return name(exchangeNames, e, "EXCHANGE") }

// PayloadType is the type of a payload in the Next Payload chain (§3.2).
type PayloadType uint8

const (
	PayloadNone    PayloadType = 0
	PayloadSA      PayloadType = 33
	PayloadKE      PayloadType = 34
	PayloadIDi     PayloadType = 35
	PayloadIDr     PayloadType = 36
	PayloadCERT    PayloadType = 37
	PayloadCERTREQ PayloadType = 38
	PayloadAUTH    PayloadType = 39
	PayloadNonce   PayloadType = 40
	PayloadNotify  PayloadType = 41
	PayloadDelete  PayloadType = 42
	PayloadVendor  PayloadType = 43
	PayloadTSi     PayloadType = 44
	PayloadTSr     PayloadType = 45
	PayloadSK      PayloadType = 46
	PayloadCP      PayloadType = 47
	PayloadEAP     PayloadType = 48
	PayloadSKF     PayloadType = 53 // RFC 7383
)

var payloadNames = map[PayloadType]string{
	PayloadNone: "NONE", PayloadSA: "SA", PayloadKE: "KE", PayloadIDi: "IDi", PayloadIDr: "IDr",
	PayloadCERT: "CERT", PayloadCERTREQ: "CERTREQ", PayloadAUTH: "AUTH", PayloadNonce: "Nonce",
	PayloadNotify: "N", PayloadDelete: "D", PayloadVendor: "V", PayloadTSi: "TSi", PayloadTSr: "TSr",
	PayloadSK: "SK", PayloadCP: "CP", PayloadEAP: "EAP", PayloadSKF: "SKF",
	// Registered, not implemented here (parsed as UnknownPayload): RFC 6467,
	// G-IKEv2 and RFC 8019 puzzles.
	49: "GSPM", 50: "IDg", 51: "GSA", 52: "KD", 54: "PS",
}

func (p PayloadType) String() string { return name(payloadNames, p, "PAYLOAD") }

// Flags of the IKE header.
type Flags uint8

const (
	FlagInitiator Flags = 0x08
	FlagVersion   Flags = 0x10
	FlagResponse  Flags = 0x20
)

// ProtocolID names the protocol of a proposal, notify or delete (§3.3.1).
type ProtocolID uint8

const (
	ProtoNone ProtocolID = 0
	ProtoIKE  ProtocolID = 1
	ProtoAH   ProtocolID = 2
	ProtoESP  ProtocolID = 3
)

func (p ProtocolID) String() string {
	return name(map[ProtocolID]string{ProtoNone: "NONE", ProtoIKE: "IKE", ProtoAH: "AH", ProtoESP: "ESP"}, p, "PROTO")
}

// TransformType (§3.3.2; ADDKE1-7 from RFC 9370).
type TransformType uint8

const (
	TransformENCR   TransformType = 1
	TransformPRF    TransformType = 2
	TransformINTEG  TransformType = 3
	TransformKE     TransformType = 4
	TransformESN    TransformType = 5
	TransformADDKE1 TransformType = 6
	TransformADDKE7 TransformType = 12
)

func (t TransformType) String() string {
	switch {
	case t >= TransformADDKE1 && t <= TransformADDKE7:
		return fmt.Sprintf("ADDKE%d", t-TransformADDKE1+1)
	}
	return name(map[TransformType]string{TransformENCR: "ENCR", TransformPRF: "PRF",
		TransformINTEG: "INTEG", TransformKE: "KE", TransformESN: "ESN"}, t, "TRANSFORM")
}

// IDType of an Identification payload (§3.5).
type IDType uint8

const (
	IDIPv4      IDType = 1
	IDFQDN      IDType = 2
	IDRFC822    IDType = 3
	IDIPv6      IDType = 5
	IDDERASN1DN IDType = 9
	IDDERASN1GN IDType = 10
	IDKeyID     IDType = 11
	IDNull      IDType = 13 // RFC 7619
)

func (t IDType) String() string {
	return name(map[IDType]string{IDIPv4: "ID_IPV4_ADDR", IDFQDN: "ID_FQDN", IDRFC822: "ID_RFC822_ADDR",
		IDIPv6: "ID_IPV6_ADDR", IDDERASN1DN: "ID_DER_ASN1_DN", IDDERASN1GN: "ID_DER_ASN1_GN",
		IDKeyID: "ID_KEY_ID", IDNull: "ID_NULL"}, t, "ID")
}

// AuthMethod of an AUTH payload (§3.8, RFC 7427).
type AuthMethod uint8

const (
	AuthRSASignature  AuthMethod = 1
	AuthSharedKey     AuthMethod = 2
	AuthDSS           AuthMethod = 3
	AuthECDSA256      AuthMethod = 9
	AuthECDSA384      AuthMethod = 10
	AuthECDSA521      AuthMethod = 11
	AuthGSPAM         AuthMethod = 12
	AuthNull          AuthMethod = 13
	AuthDigitalSigned AuthMethod = 14
)

func (m AuthMethod) String() string {
	return name(map[AuthMethod]string{AuthRSASignature: "RSA_SIG", AuthSharedKey: "PSK", AuthDSS: "DSS",
		AuthECDSA256: "ECDSA_256", AuthECDSA384: "ECDSA_384", AuthECDSA521: "ECDSA_521",
		AuthGSPAM: "GSPAM", AuthNull: "NULL", AuthDigitalSigned: "DIGITAL_SIGNATURE"}, m, "AUTH")
}

// CertEncoding of CERT and CERTREQ payloads (§3.6).
type CertEncoding uint8

const (
	CertX509Signature CertEncoding = 4
	CertCRL           CertEncoding = 7
	CertHashURL       CertEncoding = 12
	CertRawPublicKey  CertEncoding = 15 // RFC 7670
)

func (e CertEncoding) String() string {
	return name(map[CertEncoding]string{1: "PKCS7_X509", 2: "PGP", 3: "DNS_SIGNED_KEY",
		CertX509Signature: "X509_SIGNATURE", 6: "KERBEROS_TOKEN", CertCRL: "CRL", 8: "ARL",
		9: "SPKI", 10: "X509_ATTRIBUTE", 11: "RAW_RSA_KEY", CertHashURL: "HASH_URL_X509_CERT",
		13: "HASH_URL_X509_BUNDLE", 14: "OCSP_CONTENT", CertRawPublicKey: "RAW_PUBLIC_KEY"}, e, "CERT")
}

// Configuration payload types and attributes (§3.15).
type CfgType uint8

const (
	CfgRequest CfgType = 1
	CfgReply   CfgType = 2
	CfgSet     CfgType = 3
	CfgAck     CfgType = 4
)

func (t CfgType) String() string {
	return name(map[CfgType]string{CfgRequest: "CFG_REQUEST", CfgReply: "CFG_REPLY",
		CfgSet: "CFG_SET", CfgAck: "CFG_ACK"}, t, "CFG")
}

// CPAttributeName names a configuration attribute type (§3.15.1).
func CPAttributeName(t uint16) string {
	return name(map[uint16]string{CfgInternalIP4Address: "INTERNAL_IP4_ADDRESS",
		CfgInternalIP4Netmask: "INTERNAL_IP4_NETMASK", CfgInternalIP4DNS: "INTERNAL_IP4_DNS",
		4: "INTERNAL_IP4_NBNS", 6: "INTERNAL_IP4_DHCP", 7: "APPLICATION_VERSION",
		CfgInternalIP6Address: "INTERNAL_IP6_ADDRESS", CfgInternalIP6DNS: "INTERNAL_IP6_DNS",
		12: "INTERNAL_IP6_DHCP", CfgInternalIP4Subnet: "INTERNAL_IP4_SUBNET",
		14: "SUPPORTED_ATTRIBUTES", CfgInternalIP6Subnet: "INTERNAL_IP6_SUBNET"}, t&0x7fff, "CP_ATTR")
}

const (
	CfgInternalIP4Address uint16 = 1
	CfgInternalIP4Netmask uint16 = 2
	CfgInternalIP4DNS     uint16 = 3
	CfgInternalIP6Address uint16 = 8
	CfgInternalIP6DNS     uint16 = 10
	CfgInternalIP4Subnet  uint16 = 13
	CfgInternalIP6Subnet  uint16 = 15
)

// Traffic selector types (§3.13.1).
const (
	TSIPv4AddrRange uint8 = 7
	TSIPv6AddrRange uint8 = 8
)

// TSTypeName names a traffic selector type.
func TSTypeName(t uint8) string {
	return name(map[uint8]string{TSIPv4AddrRange: "TS_IPV4_ADDR_RANGE",
		TSIPv6AddrRange: "TS_IPV6_ADDR_RANGE"}, t, "TS")
}

func (f Flags) String() string {
	s := ""
	for _, n := range []struct {
		f    Flags
		name string
	}{{FlagInitiator, "I"}, {FlagVersion, "V"}, {FlagResponse, "R"}} {
		if f&n.f != 0 {
			s += n.name
		}
	}
	if rest := f &^ (FlagInitiator | FlagVersion | FlagResponse); rest != 0 {
		s += fmt.Sprintf("+0x%02x", uint8(rest))
	}
	return "[" + s + "]"
}

func name[K ~uint8 | ~uint16](m map[K]string, k K, prefix string) string {
	if s, ok := m[k]; ok {
		return s
	}
	return fmt.Sprintf("%s(%d)", prefix, k)
}
