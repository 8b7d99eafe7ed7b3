// Greenfield: a Linux VM or a VM scale set with the MSP extension and its
// settings. The scale set gets the Application Health extension, the MSP
// extension ordered after it (provisionAfterExtensions) and a rolling upgrade
// policy gated on health. Same parameters and resources as greenfield.json
// (scripts/deploy tests keep the two in step).
//
//   az deployment group create -g RG --template-file greenfield.bicep \
//     --parameters kind=vmss name=msp extensionPublisher=... extensionType=... \
//       typeHandlerVersion=0.1 extensionSettings="$(jq -c . settings.json)" \
//       sshPublicKey="$(cat ~/.ssh/id_rsa.pub)"

@description('Region of every resource.')
param location string = resourceGroup().location

@description('vm: one virtual machine; vmss: a Uniform scale set with rolling upgrades.')
@allowed([
  'vm'
  'vmss'
])
param kind string = 'vm'

@description('Name of the VM or scale set (also the prefix of the network resources).')
@minLength(1)
@maxLength(15)
param name string

param vmSize string = 'Standard_B2s'

@description('Scale set only.')
@minValue(1)
param instanceCount int = 3

param adminUsername string = 'azureuser'

@description('OpenSSH public key of adminUsername; password log-in is disabled.')
param sshPublicKey string

param imageReference object = {
  publisher: 'Debian'
  offer: 'debian-12'
  sku: '12-gen2'
  version: 'latest'
}

@description('publisher from extension.json.')
param extensionPublisher string

@description('type from extension.json.')
param extensionType string

@description('major.minor of version in extension.json; the platform picks the newest build of that line.')
param typeHandlerVersion string

@description('Public settings of the extension (imds, wireServer, logLevel, netnsPolicy).')
param extensionSettings object

@description('Scale set only: ApplicationHealthLinux settings; point them at the workload\'s own health endpoint.')
param healthSettings object = {
  protocol: 'tcp'
  port: 22
  intervalInSeconds: 5
  numberOfProbes: 1
}

@minValue(5)
@maxValue(100)
param maxBatchInstancePercent int = 20

@minValue(5)
@maxValue(100)
param maxUnhealthyInstancePercent int = 20

@minValue(0)
@maxValue(100)
param maxUnhealthyUpgradedInstancePercent int = 20

@description('ISO 8601 pause after each batch, time for health and audit signals to show.')
param pauseTimeBetweenBatches string = 'PT5M'

var vnetName = '${name}-vnet'
var subnetName = 'default'
var subnetId = resourceId('Microsoft.Network/virtualNetworks/subnets', vnetName, subnetName)
var nicName = '${name}-nic'
var linuxConfiguration = {
  disablePasswordAuthentication: true
  ssh: {
    publicKeys: [
      {
        path: '/home/${adminUsername}/.ssh/authorized_keys'
        keyData: sshPublicKey
      }
    ]
  }
}
var mspExtensionProperties = {
  publisher: extensionPublisher
  type: extensionType
  typeHandlerVersion: typeHandlerVersion
  autoUpgradeMinorVersion: true
  settings: extensionSettings
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: vnetName
  location: location
  properties: {
    addressSpace: {
      addressPrefixes: [
        '10.40.0.0/16'
      ]
    }
    subnets: [
      {
        name: subnetName
        properties: {
          addressPrefix: '10.40.0.0/24'
        }
      }
    ]
  }
}

resource nic 'Microsoft.Network/networkInterfaces@2024-05-01' = if (kind == 'vm') {
  name: nicName
  location: location
  dependsOn: [
    vnet
  ]
  properties: {
    ipConfigurations: [
      {
        name: 'ipconfig1'
        properties: {
          privateIPAllocationMethod: 'Dynamic'
          subnet: {
            id: subnetId
          }
        }
      }
    ]
  }
}

resource vm 'Microsoft.Compute/virtualMachines@2024-07-01' = if (kind == 'vm') {
  name: name
  location: location
  properties: {
    hardwareProfile: {
      vmSize: vmSize
    }
    osProfile: {
      computerName: name
      adminUsername: adminUsername
      linuxConfiguration: linuxConfiguration
    }
    storageProfile: {
      imageReference: imageReference
      osDisk: {
        createOption: 'FromImage'
      }
    }
    networkProfile: {
      networkInterfaces: [
        {
          id: nic.id
        }
      ]
    }
  }
}

resource msp 'Microsoft.Compute/virtualMachines/extensions@2024-07-01' = if (kind == 'vm') {
  parent: vm
  name: extensionType
  location: location
  properties: mspExtensionProperties
}

resource vmss 'Microsoft.Compute/virtualMachineScaleSets@2024-07-01' = if (kind == 'vmss') {
  name: name
  location: location
  dependsOn: [
    vnet
  ]
  sku: {
    name: vmSize
    capacity: instanceCount
  }
  properties: {
    orchestrationMode: 'Uniform'
    upgradePolicy: {
      mode: 'Rolling'
      rollingUpgradePolicy: {
        maxBatchInstancePercent: maxBatchInstancePercent
        maxUnhealthyInstancePercent: maxUnhealthyInstancePercent
        maxUnhealthyUpgradedInstancePercent: maxUnhealthyUpgradedInstancePercent
        pauseTimeBetweenBatches: pauseTimeBetweenBatches
        prioritizeUnhealthyInstances: true
        rollbackFailedInstancesOnPolicyBreach: true
      }
    }
    virtualMachineProfile: {
      osProfile: {
        computerNamePrefix: name
        adminUsername: adminUsername
        linuxConfiguration: linuxConfiguration
      }
      storageProfile: {
        imageReference: imageReference
        osDisk: {
          createOption: 'FromImage'
        }
      }
      networkProfile: {
        networkInterfaceConfigurations: [
          {
            name: nicName
            properties: {
              primary: true
              ipConfigurations: [
                {
                  name: 'ipconfig1'
                  properties: {
                    subnet: {
                      id: subnetId
                    }
                  }
                }
              ]
            }
          }
        ]
      }
      extensionProfile: {
        extensionsTimeBudget: 'PT1H'
        extensions: [
          {
            name: 'ApplicationHealthLinux'
            properties: {
              publisher: 'Microsoft.ManagedServices'
              type: 'ApplicationHealthLinux'
              typeHandlerVersion: '2.0'
              autoUpgradeMinorVersion: true
              settings: healthSettings
            }
          }
          {
            name: extensionType
            properties: union(mspExtensionProperties, {
              provisionAfterExtensions: [
                'ApplicationHealthLinux'
              ]
            })
          }
        ]
      }
    }
  }
}

output resourceId string = kind == 'vm' ? vm.id : vmss.id
