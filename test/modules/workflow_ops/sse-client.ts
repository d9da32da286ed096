import { setTimeout as sleep } from 'node:timers/promises'

export interface ServerSentEvent {
  event: string
  id?: string
  data: string
}

export interface EventStreamReader {
  status: number
  contentType: string | null
  events: ServerSentEvent[]
  /** Comment lines received (heartbeats). */
  comments: number
  /** Resolves when the server ends the stream. */
  ended: Promise<void>
  /** The client hangs up. */
  abort(): void
}

/** Opens a server-sent event stream with fetch and parses it as it arrives, the way a browser would. */
export async function openEventStream(url: string, headers: Record<string, string>): Promise<EventStreamReader> {
  const controller = new AbortController()
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal })
  const reader: EventStreamReader = {
    status: response.status,
    contentType: response.headers.get('content-type'),
    events: [],
    comments: 0,
    ended: Promise.resolve(),
    abort: () => controller.abort(),
  }
  if (!response.body) return reader
  const body = response.body.getReader()
  const decoder = new TextDecoder()
  reader.ended = (async () => {
    let buffer = ''
    try {
      for (;;) {
        const { done, value } = await body.read()
        if (done) return
        buffer += decoder.decode(value, { stream: true })
        let cut: number
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut)
          buffer = buffer.slice(cut + 2)
          const event: ServerSentEvent = { event: 'message', data: '' }
          const data: string[] = []
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) reader.comments++
            else if (line.startsWith('event: ')) event.event = line.slice(7)
            else if (line.startsWith('id: ')) event.id = line.slice(4)
            else if (line.startsWith('data: ')) data.push(line.slice(6))
          }
          if (data.length > 0) reader.events.push({ ...event, data: data.join('\n') })
        }
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err
    }
  })()
  return reader
}

/** Rejects if the stream is still open after timeoutMs. */
export async function endsWithin(reader: EventStreamReader, timeoutMs: number): Promise<void> {
  await Promise.race([
    reader.ended,
    sleep(timeoutMs).then(() => {
      throw new Error(`the event stream was still open after ${timeoutMs} ms`)
    }),
  ])
}
