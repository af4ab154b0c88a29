/**
 * The one base of every error baton throws on purpose. `code` is stable (callers, the CLI's
 * exit codes and, later, the HTTP API's status table key on it); the message is one sentence
 * naming the cause. Branch on the class with `instanceof`, not on the code's text.
 */
export abstract class BatonError extends Error {
  abstract readonly code: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}
