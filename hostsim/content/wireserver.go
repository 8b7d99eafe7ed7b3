package content

import (
	"fmt"
	"strings"

	"github.com/mspguest/msp/agent/rawhttp"
)

// Fixed identifiers of the emulated role instance.
const (
	containerID  = "8a3c6f4e-2b1d-4e5f-9a7b-0c1d2e3f4a5b"
	roleInstance = "5c08b38e-4d57-4c23-ac45-aca61037f084.msp-test-vm"
	incarnation  = "1"
)

func xmlResponse(status int, body string) Response {
	return Response{Status: status, ContentType: "text/xml; charset=utf-8", Body: []byte(body)}
}

// WireServer answers the WireServer endpoints except the secure channel
// (/secure-channel/*, which the emulator serves with its keys): versions,
// the goal-state family, telemetry and the agent log. Paths are matched
// case-insensitively, as WireServer does.
func WireServer(req *rawhttp.Request) Response {
	path, q := targetParts(req.Target)
	lp := strings.ToLower(path)
	comp := strings.ToLower(q.Get("comp"))
	switch {
	case lp == "/vmagentlog" && req.Method == "PUT":
		return Response{Status: 200}
	case lp == "/" && comp == "versions" && req.Method == "GET":
		return xmlResponse(200, versionsXML)
	case (lp == "/machine" || lp == "/machine/") && comp == "goalstate" && req.Method == "GET":
		return xmlResponse(200, goalStateXML(hostOf(req)))
	case (lp == "/machine" || lp == "/machine/") && comp == "telemetrydata" && req.Method == "POST":
		return Response{Status: 200}
	case strings.HasPrefix(lp, "/machine/") && req.Method == "GET":
		return configDocument(comp, strings.ToLower(q.Get("type")))
	}
	return xmlResponse(404, `<?xml version="1.0" encoding="utf-8"?><Error><Code>ResourceNotFound</Code><Message>The specified resource does not exist.</Message></Error>`)
}

// hostOf is the Host header, used to build goal-state URLs that lead back
// to the emulator under the name the guest used.
func hostOf(req *rawhttp.Request) string {
	h, _ := req.Get("Host")
	if h == "" {
		return "168.63.129.16"
	}
	return h
}

const versionsXML = `<?xml version="1.0" encoding="utf-8"?>
<Versions>
  <Preferred>
    <Version>2015-04-05</Version>
  </Preferred>
  <Supported>
    <Version>2015-04-05</Version>
    <Version>2012-11-30</Version>
    <Version>2012-09-15</Version>
    <Version>2012-05-15</Version>
    <Version>2011-12-31</Version>
    <Version>2011-10-15</Version>
    <Version>2011-08-31</Version>
    <Version>2011-04-07</Version>
    <Version>2010-12-15</Version>
    <Version>2010-28-10</Version>
  </Supported>
</Versions>`

// goalStateXML is a minimal goal state whose configuration URLs point at
// host (the emulator under the guest's Host header).
func goalStateXML(host string) string {
	base := "http://" + host + "/machine/" + containerID + "/" + strings.ReplaceAll(roleInstance, ".", "%2E")
	u := func(query string) string { return base + "?" + strings.ReplaceAll(query, "&", "&amp;") }
	return fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?>
<GoalState xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <Version>2015-04-05</Version>
  <Incarnation>%s</Incarnation>
  <Machine>
    <ExpectedState>Started</ExpectedState>
    <StopRolesDeadlineHint>300000</StopRolesDeadlineHint>
    <LBProbePorts>
      <Port>16001</Port>
    </LBProbePorts>
    <ExpectHealthReport>FALSE</ExpectHealthReport>
  </Machine>
  <Container>
    <ContainerId>%s</ContainerId>
    <RoleInstanceList>
      <RoleInstance>
        <InstanceId>%s</InstanceId>
        <State>Started</State>
        <Configuration>
          <HostingEnvironmentConfig>%s</HostingEnvironmentConfig>
          <SharedConfig>%s</SharedConfig>
          <ExtensionsConfig>%s</ExtensionsConfig>
          <FullConfig>%s</FullConfig>
          <Certificates>%s</Certificates>
          <ConfigName>%s.1.xml</ConfigName>
        </Configuration>
      </RoleInstance>
    </RoleInstanceList>
  </Container>
</GoalState>`, incarnation, containerID, roleInstance,
		u("comp=config&type=hostingEnvironmentConfig&incarnation="+incarnation),
		u("comp=config&type=sharedConfig&incarnation="+incarnation),
		u("comp=config&type=extensionsConfig&incarnation="+incarnation),
		u("comp=config&type=fullConfig&incarnation="+incarnation),
		u("comp=certificates&incarnation="+incarnation),
		roleInstance)
}

// configDocument answers the goal state's configuration URLs.
func configDocument(comp, typ string) Response {
	switch {
	case comp == "certificates":
		return xmlResponse(200, `<?xml version="1.0" encoding="utf-8"?>
<CertificateFile><Version>2012-11-30</Version><Incarnation>1</Incarnation><Format>Pkcs7BlobWithPfxContents</Format><Data></Data></CertificateFile>`)
	case comp != "config":
	case typ == "hostingenvironmentconfig":
		return xmlResponse(200, `<?xml version="1.0" encoding="utf-8"?>
<HostingEnvironmentConfig version="1.0.0.0" goalStateIncarnation="1">
  <StoredCertificates />
  <Deployment name="`+containerID+`" guid="{`+containerID+`}" incarnation="0" isNonCancellableTopologyChangeEnabled="false">
    <Service name="msp-test-vm" guid="{00000000-0000-0000-0000-000000000000}" />
    <ServiceInstance name="`+containerID+`.0" guid="{`+containerID+`}" />
  </Deployment>
  <Incarnation number="1" instance="msp-test-vm" guid="{`+containerID+`}" />
  <Role guid="{`+containerID+`}" name="msp-test-vm" hostingEnvironmentVersion="1" software="" softwareType="ApplicationPackage" entryPoint="" parameters="" />
</HostingEnvironmentConfig>`)
	case typ == "sharedconfig":
		return xmlResponse(200, `<?xml version="1.0" encoding="utf-8"?>
<SharedConfig version="1.0.0.0" goalStateIncarnation="1">
  <Deployment name="`+containerID+`" guid="{`+containerID+`}" incarnation="0" isNonCancellableTopologyChangeEnabled="false">
    <Service name="msp-test-vm" guid="{00000000-0000-0000-0000-000000000000}" />
    <ServiceInstance name="`+containerID+`.0" guid="{`+containerID+`}" />
  </Deployment>
  <Incarnation number="1" instance="msp-test-vm" guid="{`+containerID+`}" />
  <Role guid="{`+containerID+`}" name="msp-test-vm" settleTimeSeconds="10" />
  <Instances>
    <Instance id="msp-test-vm" address="10.0.0.4">
      <FaultDomains randomId="0" updateId="0" updateCount="0" />
      <InputEndpoints />
    </Instance>
  </Instances>
</SharedConfig>`)
	case typ == "extensionsconfig":
		return xmlResponse(200, `<?xml version="1.0" encoding="utf-8"?>
<Extensions version="1.0.0.0" goalStateIncarnation="1">
  <GuestAgentExtension xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
    <GAFamilies />
    <Location>westeurope</Location>
  </GuestAgentExtension>
  <StatusUploadBlob statusBlobType="BlockBlob">http://127.0.0.1/status-blob</StatusUploadBlob>
  <InVMGoalStateMetaData inSvdSeqNo="1" createdOnTicks="638712000000000000" activityId="00000000-0000-0000-0000-000000000001" correlationId="00000000-0000-0000-0000-000000000002" />
</Extensions>`)
	case typ == "fullconfig":
		return xmlResponse(200, `<?xml version="1.0" encoding="utf-8"?>
<RoleInstance xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><Id>`+roleInstance+`</Id><Incarnation>1</Incarnation></RoleInstance>`)
	}
	return xmlResponse(404, `<?xml version="1.0" encoding="utf-8"?><Error><Code>ResourceNotFound</Code><Message>Unknown configuration document; see the goal state for the URLs.</Message></Error>`)
}
