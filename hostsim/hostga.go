package hostsim

import (
	"strings"

	"github.com/mspguest/msp/agent/rawhttp"
)

// vmSettingsETag is the ETag of the fixed vmSettings document; a request
// with a matching If-None-Match gets 304, as from the real HostGAPlugin.
const vmSettingsETag = "7936478712829573164"

const vmSettingsJSON = `{"hostGAPluginVersion":"1.0.8.159","vmSettingsSchemaVersion":"0.0","activityId":"00000000-0000-0000-0000-000000000001","correlationId":"00000000-0000-0000-0000-000000000002","inSvdSeqNo":1,"extensionsLastModifiedTickCount":638712000000000000,"extensionGoalStatesSource":"FastTrack","onHold":false,"statusUploadBlob":{"statusBlobType":"BlockBlob","value":"http://127.0.0.1/status-blob"},"gaFamilies":[],"extensionGoalStates":[]}`

// serveHostGA answers the HostGAPlugin endpoints.
func (e *Emulator) serveHostGA(req *rawhttp.Request) response {
	path, _ := targetParts(req.Target)
	lp := strings.ToLower(path)
	switch {
	case lp == "/health" && req.Method == "GET":
		return response{status: 200, contentType: "text/plain; charset=utf-8", body: []byte("OK")}
	case lp == "/vmsettings" && req.Method == "GET":
		if v, ok := req.Get("If-None-Match"); ok && strings.Trim(v, `"`) == vmSettingsETag {
			return response{status: 304, header: []rawhttp.Header{{Name: "ETag", Value: vmSettingsETag}}}
		}
		r := jsonResponse(200, []byte(vmSettingsJSON))
		r.header = []rawhttp.Header{{Name: "ETag", Value: vmSettingsETag}}
		return r
	case lp == "/status" && req.Method == "PUT":
		return response{status: 200}
	}
	return errorResponse(404, "not-found", "hostgaplugin: want GET /health, GET /vmSettings or PUT /status")
}
