package manifest

import (
	"encoding/xml"
	"strings"
)

type extensionImage struct {
	XMLName             xml.Name `xml:"ExtensionImage"`
	Xmlns               string   `xml:"xmlns,attr"`
	ProviderNameSpace   string   `xml:"ProviderNameSpace"`
	Type                string   `xml:"Type"`
	Version             string   `xml:"Version"`
	Label               string   `xml:"Label"`
	HostingResources    string   `xml:"HostingResources"`
	MediaLink           string   `xml:"MediaLink"`
	Description         string   `xml:"Description"`
	IsInternalExtension bool     `xml:"IsInternalExtension"`
	IsJSONExtension     bool     `xml:"IsJsonExtension"`
	SupportedOS         string   `xml:"SupportedOS"`
}

// ExtensionImageXML renders manifest.xml, the publishing definition
// (handler-contract.md §6.2). MediaLink is left empty: publishing fills in
// the uploaded package's URL. The version gets four parts, as the
// publishing API wants (0.1.0 ⇒ 0.1.0.0).
func ExtensionImageXML(e Extension) ([]byte, error) {
	v := e.Version
	for strings.Count(v, ".") < 3 {
		v += ".0"
	}
	img := extensionImage{
		Xmlns:             "http://schemas.microsoft.com/windowsazure",
		ProviderNameSpace: e.Publisher, Type: e.Type, Version: v,
		Label: e.Label, HostingResources: "VmRole", Description: e.Description,
		IsInternalExtension: true, IsJSONExtension: true, SupportedOS: e.SupportedOS,
	}
	out, err := xml.MarshalIndent(img, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(append([]byte(xml.Header), out...), '\n'), nil
}
