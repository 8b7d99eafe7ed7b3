package hostsig

import (
	"crypto/hmac"
	"crypto/sha256"
)

func rawHMAC(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}
