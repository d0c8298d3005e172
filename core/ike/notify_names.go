// Code generated from the IANA "IKEv2 Notify Message Types" registry; DO NOT EDIT.
// Source: https://www.iana.org/assignments/ikev2-parameters (error types 1-48, status types 16384-16446).

package ike

// NotifyType is a Notify message type (RFC 7296 §3.10.1); below 16384 an error, from 16384 a status.
type NotifyType uint16

const (
	NotifyUnsupportedCriticalPayload      NotifyType = 1
	NotifyInvalidIkeSpi                   NotifyType = 4
	NotifyInvalidMajorVersion             NotifyType = 5
	NotifyInvalidSyntax                   NotifyType = 7
	NotifyInvalidMessageId                NotifyType = 9
	NotifyInvalidSpi                      NotifyType = 11
	NotifyNoProposalChosen                NotifyType = 14
	NotifyInvalidKePayload                NotifyType = 17
	NotifyAuthenticationFailed            NotifyType = 24
	NotifySinglePairRequired              NotifyType = 34
	NotifyNoAdditionalSas                 NotifyType = 35
	NotifyInternalAddressFailure          NotifyType = 36
	NotifyFailedCpRequired                NotifyType = 37
	NotifyTsUnacceptable                  NotifyType = 38
	NotifyInvalidSelectors                NotifyType = 39
	NotifyUnacceptableAddresses           NotifyType = 40
	NotifyUnexpectedNatDetected           NotifyType = 41
	NotifyUseAssignedHoa                  NotifyType = 42
	NotifyTemporaryFailure                NotifyType = 43
	NotifyChildSaNotFound                 NotifyType = 44
	NotifyInvalidGroupId                  NotifyType = 45
	NotifyAuthorizationFailed             NotifyType = 46
	NotifyStateNotFound                   NotifyType = 47
	NotifyTsMaxQueue                      NotifyType = 48
	NotifyInitialContact                  NotifyType = 16384
	NotifySetWindowSize                   NotifyType = 16385
	NotifyAdditionalTsPossible            NotifyType = 16386
	NotifyIpcompSupported                 NotifyType = 16387
	NotifyNatDetectionSourceIp            NotifyType = 16388
	NotifyNatDetectionDestinationIp       NotifyType = 16389
	NotifyCookie                          NotifyType = 16390
	NotifyUseTransportMode                NotifyType = 16391
	NotifyHttpCertLookupSupported         NotifyType = 16392
	NotifyRekeySa                         NotifyType = 16393
	NotifyEspTfcPaddingNotSupported       NotifyType = 16394
	NotifyNonFirstFragmentsAlso           NotifyType = 16395
	NotifyMobikeSupported                 NotifyType = 16396
	NotifyAdditionalIp4Address            NotifyType = 16397
	NotifyAdditionalIp6Address            NotifyType = 16398
	NotifyNoAdditionalAddresses           NotifyType = 16399
	NotifyUpdateSaAddresses               NotifyType = 16400
	NotifyCookie2                         NotifyType = 16401
	NotifyNoNatsAllowed                   NotifyType = 16402
	NotifyAuthLifetime                    NotifyType = 16403
	NotifyMultipleAuthSupported           NotifyType = 16404
	NotifyAnotherAuthFollows              NotifyType = 16405
	NotifyRedirectSupported               NotifyType = 16406
	NotifyRedirect                        NotifyType = 16407
	NotifyRedirectedFrom                  NotifyType = 16408
	NotifyTicketLtOpaque                  NotifyType = 16409
	NotifyTicketRequest                   NotifyType = 16410
	NotifyTicketAck                       NotifyType = 16411
	NotifyTicketNack                      NotifyType = 16412
	NotifyTicketOpaque                    NotifyType = 16413
	NotifyLinkId                          NotifyType = 16414
	NotifyUseWespMode                     NotifyType = 16415
	NotifyRohcSupported                   NotifyType = 16416
	NotifyEapOnlyAuthentication           NotifyType = 16417
	NotifyChildlessIkev2Supported         NotifyType = 16418
	NotifyQuickCrashDetection             NotifyType = 16419
	NotifyIkev2MessageIdSyncSupported     NotifyType = 16420
	NotifyIpsecReplayCounterSyncSupported NotifyType = 16421
	NotifyIkev2MessageIdSync              NotifyType = 16422
	NotifyIpsecReplayCounterSync          NotifyType = 16423
	NotifySecurePasswordMethods           NotifyType = 16424
	NotifyPskPersist                      NotifyType = 16425
	NotifyPskConfirm                      NotifyType = 16426
	NotifyErxSupported                    NotifyType = 16427
	NotifyIfomCapability                  NotifyType = 16428
	NotifySenderRequestId                 NotifyType = 16429
	NotifyIkev2FragmentationSupported     NotifyType = 16430
	NotifySignatureHashAlgorithms         NotifyType = 16431
	NotifyCloneIkeSaSupported             NotifyType = 16432
	NotifyCloneIkeSa                      NotifyType = 16433
	NotifyPuzzle                          NotifyType = 16434
	NotifyUsePpk                          NotifyType = 16435
	NotifyPpkIdentity                     NotifyType = 16436
	NotifyNoPpkAuth                       NotifyType = 16437
	NotifyIntermediateExchangeSupported   NotifyType = 16438
	NotifyIp4Allowed                      NotifyType = 16439
	NotifyIp6Allowed                      NotifyType = 16440
	NotifyAdditionalKeyExchange           NotifyType = 16441
	NotifyUseAggfrag                      NotifyType = 16442
	NotifySupportedAuthMethods            NotifyType = 16443
	NotifySaResourceInfo                  NotifyType = 16444
	NotifyUsePpkInt                       NotifyType = 16445
	NotifyPpkIdentityKey                  NotifyType = 16446
)

var notifyNames = map[NotifyType]string{
	NotifyUnsupportedCriticalPayload:      "UNSUPPORTED_CRITICAL_PAYLOAD",
	NotifyInvalidIkeSpi:                   "INVALID_IKE_SPI",
	NotifyInvalidMajorVersion:             "INVALID_MAJOR_VERSION",
	NotifyInvalidSyntax:                   "INVALID_SYNTAX",
	NotifyInvalidMessageId:                "INVALID_MESSAGE_ID",
	NotifyInvalidSpi:                      "INVALID_SPI",
	NotifyNoProposalChosen:                "NO_PROPOSAL_CHOSEN",
	NotifyInvalidKePayload:                "INVALID_KE_PAYLOAD",
	NotifyAuthenticationFailed:            "AUTHENTICATION_FAILED",
	NotifySinglePairRequired:              "SINGLE_PAIR_REQUIRED",
	NotifyNoAdditionalSas:                 "NO_ADDITIONAL_SAS",
	NotifyInternalAddressFailure:          "INTERNAL_ADDRESS_FAILURE",
	NotifyFailedCpRequired:                "FAILED_CP_REQUIRED",
	NotifyTsUnacceptable:                  "TS_UNACCEPTABLE",
	NotifyInvalidSelectors:                "INVALID_SELECTORS",
	NotifyUnacceptableAddresses:           "UNACCEPTABLE_ADDRESSES",
	NotifyUnexpectedNatDetected:           "UNEXPECTED_NAT_DETECTED",
	NotifyUseAssignedHoa:                  "USE_ASSIGNED_HoA",
	NotifyTemporaryFailure:                "TEMPORARY_FAILURE",
	NotifyChildSaNotFound:                 "CHILD_SA_NOT_FOUND",
	NotifyInvalidGroupId:                  "INVALID_GROUP_ID",
	NotifyAuthorizationFailed:             "AUTHORIZATION_FAILED",
	NotifyStateNotFound:                   "STATE_NOT_FOUND",
	NotifyTsMaxQueue:                      "TS_MAX_QUEUE",
	NotifyInitialContact:                  "INITIAL_CONTACT",
	NotifySetWindowSize:                   "SET_WINDOW_SIZE",
	NotifyAdditionalTsPossible:            "ADDITIONAL_TS_POSSIBLE",
	NotifyIpcompSupported:                 "IPCOMP_SUPPORTED",
	NotifyNatDetectionSourceIp:            "NAT_DETECTION_SOURCE_IP",
	NotifyNatDetectionDestinationIp:       "NAT_DETECTION_DESTINATION_IP",
	NotifyCookie:                          "COOKIE",
	NotifyUseTransportMode:                "USE_TRANSPORT_MODE",
	NotifyHttpCertLookupSupported:         "HTTP_CERT_LOOKUP_SUPPORTED",
	NotifyRekeySa:                         "REKEY_SA",
	NotifyEspTfcPaddingNotSupported:       "ESP_TFC_PADDING_NOT_SUPPORTED",
	NotifyNonFirstFragmentsAlso:           "NON_FIRST_FRAGMENTS_ALSO",
	NotifyMobikeSupported:                 "MOBIKE_SUPPORTED",
	NotifyAdditionalIp4Address:            "ADDITIONAL_IP4_ADDRESS",
	NotifyAdditionalIp6Address:            "ADDITIONAL_IP6_ADDRESS",
	NotifyNoAdditionalAddresses:           "NO_ADDITIONAL_ADDRESSES",
	NotifyUpdateSaAddresses:               "UPDATE_SA_ADDRESSES",
	NotifyCookie2:                         "COOKIE2",
	NotifyNoNatsAllowed:                   "NO_NATS_ALLOWED",
	NotifyAuthLifetime:                    "AUTH_LIFETIME",
	NotifyMultipleAuthSupported:           "MULTIPLE_AUTH_SUPPORTED",
	NotifyAnotherAuthFollows:              "ANOTHER_AUTH_FOLLOWS",
	NotifyRedirectSupported:               "REDIRECT_SUPPORTED",
	NotifyRedirect:                        "REDIRECT",
	NotifyRedirectedFrom:                  "REDIRECTED_FROM",
	NotifyTicketLtOpaque:                  "TICKET_LT_OPAQUE",
	NotifyTicketRequest:                   "TICKET_REQUEST",
	NotifyTicketAck:                       "TICKET_ACK",
	NotifyTicketNack:                      "TICKET_NACK",
	NotifyTicketOpaque:                    "TICKET_OPAQUE",
	NotifyLinkId:                          "LINK_ID",
	NotifyUseWespMode:                     "USE_WESP_MODE",
	NotifyRohcSupported:                   "ROHC_SUPPORTED",
	NotifyEapOnlyAuthentication:           "EAP_ONLY_AUTHENTICATION",
	NotifyChildlessIkev2Supported:         "CHILDLESS_IKEV2_SUPPORTED",
	NotifyQuickCrashDetection:             "QUICK_CRASH_DETECTION",
	NotifyIkev2MessageIdSyncSupported:     "IKEV2_MESSAGE_ID_SYNC_SUPPORTED",
	NotifyIpsecReplayCounterSyncSupported: "IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED",
	NotifyIkev2MessageIdSync:              "IKEV2_MESSAGE_ID_SYNC",
	NotifyIpsecReplayCounterSync:          "IPSEC_REPLAY_COUNTER_SYNC",
	NotifySecurePasswordMethods:           "SECURE_PASSWORD_METHODS",
	NotifyPskPersist:                      "PSK_PERSIST",
	NotifyPskConfirm:                      "PSK_CONFIRM",
	NotifyErxSupported:                    "ERX_SUPPORTED",
	NotifyIfomCapability:                  "IFOM_CAPABILITY",
	NotifySenderRequestId:                 "SENDER_REQUEST_ID",
	NotifyIkev2FragmentationSupported:     "IKEV2_FRAGMENTATION_SUPPORTED",
	NotifySignatureHashAlgorithms:         "SIGNATURE_HASH_ALGORITHMS",
	NotifyCloneIkeSaSupported:             "CLONE_IKE_SA_SUPPORTED",
	NotifyCloneIkeSa:                      "CLONE_IKE_SA",
	NotifyPuzzle:                          "PUZZLE",
	NotifyUsePpk:                          "USE_PPK",
	NotifyPpkIdentity:                     "PPK_IDENTITY",
	NotifyNoPpkAuth:                       "NO_PPK_AUTH",
	NotifyIntermediateExchangeSupported:   "INTERMEDIATE_EXCHANGE_SUPPORTED",
	NotifyIp4Allowed:                      "IP4_ALLOWED",
	NotifyIp6Allowed:                      "IP6_ALLOWED",
	NotifyAdditionalKeyExchange:           "ADDITIONAL_KEY_EXCHANGE",
	NotifyUseAggfrag:                      "USE_AGGFRAG",
	NotifySupportedAuthMethods:            "SUPPORTED_AUTH_METHODS",
	NotifySaResourceInfo:                  "SA_RESOURCE_INFO",
	NotifyUsePpkInt:                       "USE_PPK_INT",
	NotifyPpkIdentityKey:                  "PPK_IDENTITY_KEY",
}

func (t NotifyType) String() string { return name(notifyNames, t, "NOTIFY") }

// IsError reports whether t is an error type (RFC 7296 §3.10.1).
func (t NotifyType) IsError() bool { return t < 16384 }
