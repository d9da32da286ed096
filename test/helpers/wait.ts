/** Polls until condition holds; fails with the message after timeoutMs. For async effects, not timing. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
  message = 'condition not met in time',
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${message} (waited ${timeoutMs} ms)`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
