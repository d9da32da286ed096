/**
 * One Kubernetes object as modelplane writes it: what server-side apply sends. The platform's
 * apply layer declares the same shape; this local copy keeps the generator free of it.
 */
export interface KubeManifest {
  apiVersion: string
  kind: string
  metadata: {
    name: string
    namespace?: string
    labels?: Record<string, string>
    annotations?: Record<string, string>
  }
  [field: string]: unknown
}
