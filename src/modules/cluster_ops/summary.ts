import { deviceResources, type DeviceType } from './accelerators.js'
import type { Resources } from './capacity.js'
import type { NodeFacts } from './hardware.js'

export interface DeviceTypeSummary {
  /** Nodes with at least one device of this type (for `cpu` and `cpu_high`: nodes of that class without accelerators). */
  nodes: number
  /** Physical devices (0 for the CPU classes). */
  devices: number
  /** Schedulable units (MIG instances, time-sliced replicas; 0 for the CPU classes). */
  slices: number
  /** In `unit`: device slices for accelerators, millicores for the CPU classes. */
  allocatable: number
  used: number
  /** Allocatable minus used on schedulable nodes only: a cordoned or NotReady node's devices are never free. */
  free: number
  unit: 'slices' | 'millicores'
  /** By product (`unknown` when nothing names it); empty for the CPU classes. */
  byProduct: Record<string, { devices: number; slices: number; free: number; memoryMiB: number | null }>
}

export interface ClusterSummary {
  nodes: { total: number; ready: number; schedulable: number }
  byDeviceType: Record<string, DeviceTypeSummary>
  /** `allocatable` and `used` over every node; `free` over schedulable nodes only. */
  cpu: { allocatableMillis: number; usedMillis: number; freeMillis: number }
  memory: { allocatableBytes: number; usedBytes: number; freeBytes: number }
  /** Present types, accelerators first. */
  deviceTypes: DeviceType[]
}

const ORDER: DeviceType[] = ['cuda', 'rocm', 'hpu', 'cpu_high', 'cpu']

export function summarizeCluster(nodes: Array<{ facts: NodeFacts; used: Resources }>): ClusterSummary {
  const summary: ClusterSummary = {
    nodes: { total: 0, ready: 0, schedulable: 0 },
    byDeviceType: {},
    cpu: { allocatableMillis: 0, usedMillis: 0, freeMillis: 0 },
    memory: { allocatableBytes: 0, usedBytes: 0, freeBytes: 0 },
    deviceTypes: [],
  }
  const entry = (type: DeviceType, unit: DeviceTypeSummary['unit']) =>
    (summary.byDeviceType[type] ??= { nodes: 0, devices: 0, slices: 0, allocatable: 0, used: 0, free: 0, unit, byProduct: {} })

  for (const { facts, used } of nodes) {
    const open = facts.schedulable
    summary.nodes.total++
    if (facts.ready) summary.nodes.ready++
    if (open) summary.nodes.schedulable++
    const freeCpu = open ? Math.max(0, facts.allocatable.cpuMillis - used.cpuMillis) : 0
    summary.cpu.allocatableMillis += facts.allocatable.cpuMillis
    summary.cpu.usedMillis += used.cpuMillis
    summary.cpu.freeMillis += freeCpu
    summary.memory.allocatableBytes += facts.allocatable.memoryBytes
    summary.memory.usedBytes += used.memoryBytes
    summary.memory.freeBytes += open ? Math.max(0, facts.allocatable.memoryBytes - used.memoryBytes) : 0

    if (facts.devices.length === 0) {
      const cpuClass = entry(facts.deviceType, 'millicores')
      cpuClass.nodes++
      cpuClass.allocatable += facts.allocatable.cpuMillis
      cpuClass.used += used.cpuMillis
      cpuClass.free += freeCpu
      continue
    }
    const typesHere = new Set<DeviceType>()
    for (const device of facts.devices) {
      const summed = (r: Resources) => deviceResources(device).reduce((n, name) => n + (r.extended[name] ?? 0), 0)
      const allocatable = summed(facts.allocatable)
      const inUse = summed(used)
      const free = open ? Math.max(0, allocatable - inUse) : 0
      const byType = entry(device.type, 'slices')
      if (!typesHere.has(device.type)) byType.nodes++
      typesHere.add(device.type)
      byType.devices += device.count
      byType.slices += device.slices
      byType.allocatable += allocatable
      byType.used += inUse
      byType.free += free
      const product = (byType.byProduct[device.product ?? 'unknown'] ??= { devices: 0, slices: 0, free: 0, memoryMiB: null })
      product.devices += device.count
      product.slices += device.slices
      product.free += free
      product.memoryMiB ??= device.memoryMiB
    }
  }
  summary.deviceTypes = ORDER.filter((type) => summary.byDeviceType[type])
  return summary
}
