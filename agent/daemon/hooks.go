package daemon

import (
	"sync/atomic"

	"github.com/mspguest/msp/agent/audit"
	"github.com/mspguest/msp/agent/identity"
	"github.com/mspguest/msp/agent/metrics"
	"github.com/mspguest/msp/agent/proxy"
	"github.com/mspguest/msp/agent/rawhttp"
)

const jsonType = "application/json; charset=utf-8"

// serveProvision answers GET /provision (agent.md §3.3).
func (d *Daemon) serveProvision(req *rawhttp.Request, _ *identity.Caller) proxy.Response {
	st, body := d.tracker.Serve(req)
	return proxy.Response{Status: st, ContentType: jsonType, Body: body}
}

// serveStatus answers /gpa-aggregated-status with the status document;
// the proxy lets only a redirected root caller reach it, and it must send
// a Metadata header like every metadata request.
func (d *Daemon) serveStatus(req *rawhttp.Request, _ *identity.Caller) proxy.Response {
	if _, ok := req.Get("Metadata"); !ok {
		return proxy.Response{Status: 400, ContentType: "text/plain", Body: []byte("Metadata header required")}
	}
	doc := d.document()
	body, err := doc.Marshal()
	if err != nil {
		return proxy.Response{Status: 500}
	}
	return proxy.Response{Status: 200, ContentType: jsonType, Body: body}
}

// tee hands every audit entry to the audit log and the metrics.
type tee struct {
	log      *audit.Log
	metrics  *metrics.Registry
	requests atomic.Int64 // proxyConnectionsCount
}

func (t *tee) Record(e audit.Entry) {
	t.requests.Add(1)
	t.metrics.Record(&e)
	t.log.Record(e)
}
