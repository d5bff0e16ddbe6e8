/**
 * An error the server answers with its HTTP status and OpenAI's error body:
 * `{"error": {"message", "type", "code"}}` (type: invalid_request_error, authentication_error,
 * not_found_error, rate_limit_error, server_error).
 */
export class ServeError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ServeError";
  }

  toBody(): { error: { message: string; type: string; code: string } } {
    return { error: { message: this.message, type: this.type, code: this.code } };
  }
}

export const badRequest = (message: string, code = "invalid_value") => new ServeError(400, "invalid_request_error", code, message);
export const notFound = (message: string, code = "model_not_found") => new ServeError(404, "not_found_error", code, message);
export const overloaded = (message: string) => new ServeError(429, "rate_limit_error", "overloaded", message);
