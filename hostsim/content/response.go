package content

import (
	"encoding/json"
	"net/url"

	"github.com/mspguest/msp/agent/rawhttp"
	"github.com/mspguest/msp/agent/sign"
)

// Response is an answer; the emulator frames it (status line, Date,
// Content-Length, x-ms-azure-host-date).
type Response struct {
	Status      int
	ContentType string
	Header      []rawhttp.Header
	Body        []byte
}

// JSON is a JSON answer.
func JSON(status int, body []byte) Response {
	return Response{Status: status, ContentType: "application/json; charset=utf-8", Body: body}
}

// Error is a JSON error answer {"error": code, "message": msg}.
func Error(status int, code, msg string) Response {
	b, _ := json.Marshal(map[string]string{"error": code, "message": msg})
	return JSON(status, b)
}

// targetParts splits a raw request-target into the path and decoded query.
func targetParts(target string) (string, url.Values) {
	path, rawQuery := sign.SplitTarget(target)
	q, _ := url.ParseQuery(rawQuery) // lenient: a bad piece is skipped
	return path, q
}
