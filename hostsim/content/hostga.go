package content

import (
	"strings"

	"github.com/mspguest/msp/agent/rawhttp"
)

// VMSettingsETag is the ETag of the fixed vmSettings document; a request
// with a matching If-None-Match gets 304, as from the real HostGAPlugin.
const VMSettingsETag = "7936478712829573164"

const vmSettingsJSON = `{"hostGAPluginVersion":"1.0.8.159","vmSettingsSchemaVersion":"0.0","activityId":"00000000-0000-0000-0000-000000000001","correlationId":"00000000-0000-0000-0000-000000000002","inSvdSeqNo":1,"extensionsLastModifiedTickCount":638712000000000000,"extensionGoalStatesSource":"FastTrack","onHold":false,"statusUploadBlob":{"statusBlobType":"BlockBlob","value":"http://127.0.0.1/status-blob"},"gaFamilies":[],"extensionGoalStates":[]}`

// HostGA answers the HostGAPlugin endpoints: GET /health, GET /vmSettings
// (with ETag and If-None-Match), PUT /status and PUT /vmAgentLog (the
// exempt log upload, host-protocol.md §8.8).
func HostGA(req *rawhttp.Request) Response {
	path, _ := targetParts(req.Target)
	lp := strings.ToLower(path)
	switch {
	case lp == "/health" && req.Method == "GET":
		return Response{Status: 200, ContentType: "text/plain; charset=utf-8", Body: []byte("OK")}
	case lp == "/vmsettings" && req.Method == "GET":
		if v, ok := req.Get("If-None-Match"); ok && strings.Trim(v, `"`) == VMSettingsETag {
			return Response{Status: 304, Header: []rawhttp.Header{{Name: "ETag", Value: VMSettingsETag}}}
		}
		r := JSON(200, []byte(vmSettingsJSON))
		r.Header = []rawhttp.Header{{Name: "ETag", Value: VMSettingsETag}}
		return r
	case lp == "/status" && req.Method == "PUT":
		return Response{Status: 200}
	case lp == "/vmagentlog" && req.Method == "PUT":
		return Response{Status: 200} // the emulator streamed and counted the body
	}
	return Error(404, "not-found", "hostgaplugin: want GET /health, GET /vmSettings, PUT /status or PUT /vmAgentLog")
}
