import type { Resources } from './capacity.js'

/**
 * Accelerators read from what the cluster already says about a node, in the order of
 * KUBERNETES.md "Hardware": Node Feature Discovery and the vendors' labellers first, then the
 * device plugins' capacity. `detectionMethod` names the source that identified the device;
 * counts always come from the labeller when it gives them and from the device plugin otherwise.
 */

export type DeviceType = 'cuda' | 'rocm' | 'hpu' | 'cpu_high' | 'cpu'
export type DetectionMethod = 'nfd' | 'gpu-feature-discovery' | 'amd-gpu-labeller' | 'device-plugin' | 'node-info'
export type Vendor = 'nvidia' | 'amd' | 'intel' | 'habana' | 'unknown'

export interface Device {
  type: DeviceType
  vendor: Vendor
  /** The product without sharing decorations (`NVIDIA-A100-SXM4-80GB`, `Tesla-T4`), null when nothing names it. */
  product: string | null
  /** The product label's value as the node carries it (`Tesla-T4-SHARED`), for node affinity. */
  productLabel: string | null
  /** Physical devices. */
  count: number
  /** Schedulable units: MIG instances, time-sliced replicas; equal to count when unshared. */
  slices: number
  sharing: 'none' | 'mig' | 'time-slicing' | 'mps'
  /** The resource pods request: nvidia.com/gpu, amd.com/gpu, habana.ai/gaudi; for MIG the profile with most instances. */
  resourceName: string
  /** MIG instances by profile (`1g.10gb`), requested as `nvidia.com/mig-<profile>`. */
  migProfiles?: Record<string, number>
  /** Per physical device. */
  memoryMiB: number | null
  driverVersion: string | null
  cudaVersion: string | null
  detectionMethod: DetectionMethod
}

/** A node's labels, read only through bounds: values longer than a label value may be are ignored. */
export type LabelReader = (key: string) => string | undefined

const NFD = 'feature.node.kubernetes.io/'
const PCI_PRESENT = /^feature\.node\.kubernetes\.io\/pci-([0-9a-f]{4}(?:_[0-9a-f]{4}){0,4})\.present$/
const PCI_VENDORS: Record<string, Vendor> = { '10de': 'nvidia', '1002': 'amd', '1da3': 'habana' }
// NFD's default PCI class allow-list (display, co-processor, processing accelerator); an NVIDIA
// HDMI audio function (class 0403) is not a GPU.
const ACCELERATOR_CLASS = /^(03..|0b40|12..)$/

export interface PciPresence {
  /** The label spelled the vendor alone (`pci-10de`, as the GPU Operator configures NFD) or with its class (`pci-0302_10de`). */
  form: 'vendor' | 'class-vendor'
  deviceIds: string[]
}

/**
 * Accelerator vendors NFD saw on the PCI bus. NFD joins its configured fields in a fixed order
 * (class, vendor, device, …), so a label starting with a known vendor id is the vendor-first form:
 * no PCI class starts 10, 1d (10de, 1002, 1da3 are not classes).
 */
export function pciVendors(labelKeys: Iterable<string>, label: LabelReader): Map<Vendor, PciPresence> {
  const found = new Map<Vendor, PciPresence>()
  for (const key of labelKeys) {
    const match = PCI_PRESENT.exec(key)
    if (!match || label(key) !== 'true') continue
    const fields = match[1]!.split('_')
    let vendor: Vendor | undefined
    let device: string | undefined
    let form: PciPresence['form']
    if (PCI_VENDORS[fields[0]!]) {
      vendor = PCI_VENDORS[fields[0]!]
      device = fields[1]
      form = 'vendor'
    } else {
      if (!ACCELERATOR_CLASS.test(fields[0]!) || !fields[1]) continue
      vendor = PCI_VENDORS[fields[1]]
      device = fields[2]
      form = 'class-vendor'
    }
    if (!vendor) continue
    const seen = found.get(vendor) ?? { form, deviceIds: [] }
    if (device && !seen.deviceIds.includes(device)) seen.deviceIds.push(device)
    found.set(vendor, seen)
  }
  return found
}

const integer = (text: string | undefined): number | null => (text && /^\d{1,9}$/.test(text) ? Number(text) : null)

interface Inputs {
  label: LabelReader
  pci: Map<Vendor, PciPresence>
  capacity: Resources
}

/** The resources a device is scheduled through (for MIG in the mixed strategy, every profile and any whole GPUs). */
export function deviceResources(device: Device): string[] {
  if (!device.migProfiles) return [device.resourceName]
  return [...Object.keys(device.migProfiles).map((p) => `nvidia.com/mig-${p}`), 'nvidia.com/gpu']
}

// MIG slices a GPU into 7 compute slices; `<n>g` instances of one size fit floor(7 / n) to a GPU.
function gpusForMig(instances: number, profile: string): number {
  const compute = Number(/^(\d)g\./.exec(profile)?.[1] ?? 7)
  return Math.ceil(instances / Math.max(1, Math.floor(7 / Math.max(1, compute))))
}

function nvidiaDevice({ label, pci, capacity }: Inputs): Device | null {
  const productLabel = label('nvidia.com/gpu.product') ?? null
  const gfdCount = integer(label('nvidia.com/gpu.count'))
  const strategy = label('nvidia.com/mig.strategy')
  const whole = capacity.extended['nvidia.com/gpu'] ?? 0
  const renamedShared = capacity.extended['nvidia.com/gpu.shared']
  const migProfiles: Record<string, number> = {}
  for (const [name, value] of Object.entries(capacity.extended)) {
    const profile = /^nvidia\.com\/mig-(.{1,40})$/.exec(name)?.[1]
    if (profile && value > 0) migProfiles[profile] = value
  }
  const mixedMig = Object.keys(migProfiles).length > 0
  const singleMig = strategy === 'single' && /-MIG-\d+g\.\d+gb$/.test(productLabel ?? '')
  const nfd = pci.get('nvidia')
  const byGfd = productLabel !== null || gfdCount !== null
  if (!byGfd && !nfd && whole === 0 && !renamedShared && !mixedMig) return null

  const replicas = integer(label('nvidia.com/gpu.replicas')) ?? 1
  const strategyLabel = label('nvidia.com/gpu.sharing-strategy')
  let sharing: Device['sharing'] = 'none'
  if (mixedMig || singleMig) sharing = 'mig'
  else if (strategyLabel === 'mps') sharing = 'mps'
  else if (strategyLabel === 'time-slicing' || replicas > 1 || renamedShared !== undefined) sharing = 'time-slicing'

  let resourceName = renamedShared !== undefined ? 'nvidia.com/gpu.shared' : 'nvidia.com/gpu'
  let slices = capacity.extended[resourceName] ?? 0
  let count: number
  if (mixedMig) {
    // The profile most pods would ask for: the one with most instances, the larger on a tie.
    const [main] = Object.entries(migProfiles).sort(([a, x], [b, y]) => y - x || b.localeCompare(a))[0]!
    resourceName = `nvidia.com/mig-${main}`
    slices = Object.values(migProfiles).reduce((a, b) => a + b, 0) + whole
    count = gfdCount ?? whole + Object.entries(migProfiles).reduce((n, [p, v]) => n + gpusForMig(v, p), 0)
  } else if (singleMig) {
    // GFD overrides gpu.count with the number of MIG devices: the physical count is estimated.
    count = gpusForMig(slices, /-MIG-(\d+g\.\d+gb)$/.exec(productLabel!)![1]!)
  } else if (sharing !== 'none') {
    count = gfdCount ?? Math.ceil(slices / replicas)
  } else {
    count = gfdCount ?? slices
  }

  const product = productLabel?.replace(/-SHARED$/, '').replace(/-MIG-\d+g\.\d+gb$/, '') ?? null
  const driverMajor = label('nvidia.com/cuda.driver.major')
  const driverParts = [driverMajor, label('nvidia.com/cuda.driver.minor'), label('nvidia.com/cuda.driver.rev')].filter(Boolean)
  const runtimeMajor = label('nvidia.com/cuda.runtime.major')
  return {
    type: 'cuda',
    vendor: 'nvidia',
    product,
    productLabel,
    count,
    slices,
    sharing,
    resourceName,
    ...(mixedMig ? { migProfiles } : {}),
    memoryMiB: singleMig ? null : integer(label('nvidia.com/gpu.memory')),
    driverVersion: label('nvidia.com/cuda.driver-version.full') ?? (driverMajor ? driverParts.join('.') : null),
    cudaVersion:
      label('nvidia.com/cuda.runtime-version.full') ??
      (runtimeMajor ? [runtimeMajor, label('nvidia.com/cuda.runtime.minor')].filter(Boolean).join('.') : null),
    detectionMethod: byGfd ? 'gpu-feature-discovery' : nfd ? 'nfd' : 'device-plugin',
  }
}

// The AMD node labeller writes VRAM as `<n><unit>` (`192G`), binary units.
function vramMiB(text: string | undefined): number | null {
  const match = /^(\d{1,7})([KMGT])$/.exec(text ?? '')
  if (!match) return null
  const factor = { K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 }[match[2] as 'K' | 'M' | 'G' | 'T']
  return Math.floor(Number(match[1]) * factor)
}

function amdDevice({ label, pci, capacity }: Inputs): Device | null {
  const productLabel = label('amd.com/gpu.product-name') ?? label('beta.amd.com/gpu.product-name') ?? null
  const count = capacity.extended['amd.com/gpu'] ?? 0
  // The AMD GPU Operator's NodeFeatureRule writes this NFD label instead of the raw PCI one.
  const nfd = pci.has('amd') || label(`${NFD}amd-gpu`) === 'true'
  if (!productLabel && !nfd && count === 0) return null
  return {
    type: 'rocm',
    vendor: 'amd',
    product: productLabel,
    productLabel,
    count,
    slices: count,
    sharing: 'none',
    resourceName: 'amd.com/gpu',
    memoryMiB: vramMiB(label('amd.com/gpu.vram') ?? label('beta.amd.com/gpu.vram')),
    driverVersion: label('amd.com/gpu.driver-version') ?? null,
    cudaVersion: null,
    detectionMethod: productLabel ? 'amd-gpu-labeller' : nfd ? 'nfd' : 'device-plugin',
  }
}

// Habana's PCI device ids (the habanalabs kernel driver's table), for NFD configured to label the
// device field too; the stock class+vendor form does not name the generation.
const GAUDI_BY_DEVICE_ID: Record<string, { product: string; memoryMiB: number }> = {
  '1000': { product: 'Gaudi', memoryMiB: 32 * 1024 },
  '1020': { product: 'Gaudi2', memoryMiB: 96 * 1024 },
}

function habanaDevice({ pci, capacity }: Inputs): Device | null {
  const count = capacity.extended['habana.ai/gaudi'] ?? 0
  const nfd = pci.get('habana')
  if (!nfd && count === 0) return null
  const known = nfd?.deviceIds.length === 1 ? GAUDI_BY_DEVICE_ID[nfd.deviceIds[0]!] : undefined
  return {
    type: 'hpu',
    vendor: 'habana',
    product: known?.product ?? null,
    productLabel: null,
    count,
    slices: count,
    sharing: 'none',
    resourceName: 'habana.ai/gaudi',
    memoryMiB: known?.memoryMiB ?? null,
    driverVersion: null,
    cudaVersion: null,
    detectionMethod: nfd ? 'nfd' : 'device-plugin',
  }
}

export function detectAccelerators(labelKeys: Iterable<string>, label: LabelReader, capacity: Resources): Device[] {
  const inputs: Inputs = { label, pci: pciVendors(labelKeys, label), capacity }
  return [nvidiaDevice(inputs), amdDevice(inputs), habanaDevice(inputs)].filter((d): d is Device => d !== null)
}

/** Taints that pods of each accelerator tolerate (the device plugins' and clouds' conventions). */
export const ACCELERATOR_TAINTS: Record<string, Vendor> = {
  'nvidia.com/gpu': 'nvidia',
  'amd.com/gpu': 'amd',
  'habana.ai/gaudi': 'habana',
}
