package content

// imdsAPIVersions are the api-version values IMDS accepts, oldest first
// (from /metadata/versions of a 2025 VM).
var imdsAPIVersions = []string{
	"2017-03-01", "2017-04-02", "2017-08-01", "2017-10-01", "2017-12-01",
	"2018-02-01", "2018-04-02", "2018-10-01", "2019-02-01", "2019-03-11",
	"2019-04-30", "2019-06-01", "2019-06-04", "2019-08-01", "2019-08-15",
	"2019-11-01", "2020-06-01", "2020-07-15", "2020-09-01", "2020-10-01",
	"2020-12-01", "2021-01-01", "2021-02-01", "2021-03-01", "2021-05-01",
	"2021-10-01", "2021-11-01", "2021-11-15", "2021-12-13", "2022-02-01",
	"2022-03-01", "2022-07-01", "2022-08-01", "2022-11-01", "2023-07-01",
	"2023-11-15", "2024-03-15", "2025-04-07",
}

// scheduledEventsAPIVersions are the api-version values of Scheduled Events.
var scheduledEventsAPIVersions = []string{"2017-11-01", "2019-01-01", "2019-08-01", "2020-07-01"}

// computeFieldSince gates compute fields by the api-version that
// introduced them (approximate; enough to make api-version observable).
var computeFieldSince = map[string]string{
	"licenseType":                "2020-09-01",
	"priority":                   "2020-09-01",
	"securityProfile":            "2020-06-01",
	"isHostCompatibilityLayerVm": "2020-12-01",
	"osProfile":                  "2021-01-01",
	"userData":                   "2021-01-01",
	"extendedLocation":           "2021-03-01",
	"additionalCapabilities":     "2021-11-01",
	"host":                       "2021-11-15",
	"hostGroup":                  "2021-11-15",
}

// instanceMetadata is a realistic /metadata/instance document of a small
// Ubuntu VM; identifiers are fixed and fictitious.
const instanceMetadata = `{
  "compute": {
    "additionalCapabilities": {"hibernationEnabled": "false"},
    "azEnvironment": "AzurePublicCloud",
    "customData": "",
    "evictionPolicy": "",
    "extendedLocation": {"name": "", "type": ""},
    "host": {"id": ""},
    "hostGroup": {"id": ""},
    "isHostCompatibilityLayerVm": "false",
    "licenseType": "",
    "location": "westeurope",
    "name": "msp-test-vm",
    "offer": "ubuntu-24_04-lts",
    "osProfile": {"adminUsername": "azureuser", "computerName": "msp-test-vm", "disablePasswordAuthentication": "true"},
    "osType": "Linux",
    "placementGroupId": "",
    "plan": {"name": "", "product": "", "publisher": ""},
    "platformFaultDomain": "0",
    "platformUpdateDomain": "0",
    "priority": "",
    "provider": "Microsoft.Compute",
    "publicKeys": [{"keyData": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostsimExampleKeyOnlyForTests azureuser", "path": "/home/azureuser/.ssh/authorized_keys"}],
    "publisher": "canonical",
    "resourceGroupName": "msp-test-rg",
    "resourceId": "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/msp-test-rg/providers/Microsoft.Compute/virtualMachines/msp-test-vm",
    "securityProfile": {"encryptionAtHost": "false", "secureBootEnabled": "true", "securityType": "TrustedLaunch", "virtualTpmEnabled": "true"},
    "sku": "server",
    "storageProfile": {
      "dataDisks": [],
      "imageReference": {"id": "", "offer": "ubuntu-24_04-lts", "publisher": "canonical", "sku": "server", "version": "latest"},
      "osDisk": {"caching": "ReadWrite", "createOption": "FromImage", "diffDiskSettings": {"option": ""}, "diskSizeGB": "30", "encryptionSettings": {"enabled": "false"}, "image": {"uri": ""}, "managedDisk": {"id": "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/msp-test-rg/providers/Microsoft.Compute/disks/msp-test-vm_OsDisk_1", "storageAccountType": "Premium_LRS"}, "name": "msp-test-vm_OsDisk_1", "osType": "Linux", "vhd": {"uri": ""}, "writeAcceleratorEnabled": "false"},
      "resourceDisk": {"size": "0"}
    },
    "subscriptionId": "00000000-1111-2222-3333-444444444444",
    "tags": "env:test;team:msp",
    "tagsList": [{"name": "env", "value": "test"}, {"name": "team", "value": "msp"}],
    "userData": "",
    "version": "24.04.202501010",
    "vmId": "5c08b38e-4d57-4c23-ac45-aca61037f084",
    "vmScaleSetName": "",
    "vmSize": "Standard_D2s_v5",
    "zone": "1"
  },
  "network": {
    "interface": [{
      "ipv4": {"ipAddress": [{"privateIpAddress": "10.0.0.4", "publicIpAddress": ""}], "subnet": [{"address": "10.0.0.0", "prefix": "24"}]},
      "ipv6": {"ipAddress": []},
      "macAddress": "6045BDA1B2C3"
    }]
  }
}`

// identityClientID is the client id of the emulated system-assigned
// identity.
const identityClientID = "7e4a2f1c-1c9b-4a7e-9d0f-3b2a5c6d7e8f"
